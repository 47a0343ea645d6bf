"""Grasp synthesis: contact, penetration and joint limits on simple objects."""

import numpy as np
import pytest
import torch
import trimesh

from honnotate.geometry.mesh_query import MeshQuery
from honnotate.models.hand import HandModel
from honnotate.models.open_hand import load_open_hand
from honnotate.synth.grasp import GraspConfig, synthesize_grasp


@pytest.fixture(scope="module")
def hand():
    return HandModel(load_open_hand("right"), dtype=torch.float64)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_power_grasp_of_a_can(hand, seed):
    can = trimesh.creation.cylinder(radius=0.0335, height=0.102, sections=64)
    g = synthesize_grasp(hand, can, config=GraspConfig(kind="power"), seed=seed)
    # Reported figures agree with an independent evaluation of the posed hand.
    out = hand(torch.as_tensor(g.global_orient[None]), torch.as_tensor(g.hand_pose[None]),
               torch.as_tensor(g.betas[None]), torch.as_tensor(g.transl[None]))
    sd = MeshQuery(can.vertices, can.faces).signed_distance(out.vertices[0].numpy())
    assert sd.max() <= 0.002 + 1e-4, "interpenetration <= 2 mm"
    assert abs(max(sd.max(), 0) - g.penetration) < 1e-4
    assert len(g.contacts) >= 3, g.contacts
    lim = hand.data.joint_limits
    assert np.all(g.anatomical >= lim[..., 0] - 1e-9) and np.all(g.anatomical <= lim[..., 1] + 1e-9)
    # The grasp holds the object: the hand is within a few cm of its surface all around.
    assert sd.max() > -0.005


def test_rejects_open_mesh(hand):
    open_mesh = trimesh.Trimesh(np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0.0]]), np.array([[0, 1, 2]]))
    with pytest.raises(ValueError, match="watertight"):
        synthesize_grasp(hand, open_mesh)


@pytest.mark.parametrize("kind", ["precision", "lateral"])
def test_precision_and_lateral_grasps_use_the_thumb(hand, kind):
    can = trimesh.creation.cylinder(radius=0.0335, height=0.102, sections=64)
    ok = 0
    for seed in range(3):
        g = synthesize_grasp(hand, can, config=GraspConfig(kind=kind), seed=seed)
        assert g.penetration <= 0.002 + 1e-6
        ok += int("thumb" in g.contacts and len(g.contacts) >= 2)
    assert ok >= 2, f"{kind}: thumb + another finger in contact in at least 2 of 3 grasps"
