"""The forearm of generated captures: geometry from the wrist, scenery only in the outputs."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from honnotate.models.hand import HandModel
from honnotate.models.open_hand import load_open_hand
from honnotate.perception.data import (
    AugmentConfig,
    CompositeConfig,
    SequenceFrames,
    SyntheticComposites,
)
from honnotate.synth.arm import ForearmSpec, draw_forearm, forearm_mesh, wrist_ring
from honnotate.synth.generator import SynthConfig, generate_sequence
from honnotate.synth.noise import DepthNoiseConfig


@pytest.fixture(scope="module")
def posed():
    hand = HandModel(load_open_hand("right"), dtype=torch.float64)
    z = lambda n: torch.zeros(2, n, dtype=torch.float64)  # noqa: E731
    go = torch.tensor([[0.0, 0.0, 0.0], [0.3, -1.2, 0.7]], dtype=torch.float64)
    out = hand(go, z(45), z(hand.num_betas), torch.tensor([[0.0, 0, 0], [0.1, -0.05, 0.5]], dtype=torch.float64))
    return hand, out.vertices.numpy(), out.joints.numpy()


def test_wrist_ring_is_the_open_hands_wrist_opening(posed):
    hand, V, J = posed
    ring = wrist_ring(np.asarray(hand.faces))
    assert len(ring) >= 8
    # the opening lies around the wrist joint, 4-6 cm across, nowhere near the fingers
    r = np.linalg.norm(V[0, ring] - J[0, 0], axis=1)
    assert r.max() < 0.04 and np.ptp(V[0, ring], axis=0).max() > 0.04
    closed = np.array([[0, 1, 2], [0, 2, 3], [0, 3, 1], [1, 3, 2]])  # a tetrahedron
    assert wrist_ring(closed).size == 0


def test_forearm_starts_at_the_wrist_and_runs_away_from_the_fingers(posed):
    hand, V, J = posed
    ring = wrist_ring(np.asarray(hand.faces))
    spec = ForearmSpec(length=0.25, bend=(0.0, 0.0), swell=(1.2, 1.5), sleeve_from=0.1, sleeve_colour=(0.1, 0.2, 0.9))
    verts, faces, col = forearm_mesh(V, J, ring, spec, np.array([0.8, 0.6, 0.5]))
    assert verts.shape[0] == 2 and verts.shape[2] == 3 and len(col) == verts.shape[1]
    assert faces.min() == 0 and faces.max() == verts.shape[1] - 1
    for t in range(2):  # rigid motion of the hand moves the arm with it: same shape in both frames
        centre = V[t, ring].mean(0)
        away = J[t, 0] - J[t, 4]
        away /= np.linalg.norm(away)
        along = (verts[t] - centre) @ away
        assert along.min() == pytest.approx(-0.01, abs=1e-9) and along.max() == pytest.approx(0.25, abs=1e-9)
        # the cap (last vertex) lies on the axis at the arm's length
        np.testing.assert_allclose(verts[t, -1], centre + 0.25 * away, atol=1e-9)
        # at the wrist station (along = 0) the tube spans the wrist ring's width
        at0 = verts[t, np.abs(along) < 1e-9]
        np.testing.assert_allclose(np.ptp(at0 @ away), 0.0, atol=1e-9)
        width = np.linalg.norm(at0[:, None] - at0[None], axis=-1).max()
        ring_width = np.linalg.norm(V[t, ring][:, None] - V[t, ring][None], axis=-1).max()
        assert 0.8 * ring_width < width < 1.2 * ring_width
    e0 = np.linalg.norm(verts[0][faces[:, 0]] - verts[0][faces[:, 1]], axis=1)
    e1 = np.linalg.norm(verts[1][faces[:, 0]] - verts[1][faces[:, 1]], axis=1)
    np.testing.assert_allclose(e0, e1, atol=1e-6)
    sleeve = np.all(np.isclose(col, (0.1, 0.2, 0.9)), axis=1)
    along0 = (verts[0] - V[0, ring].mean(0)) @ ((J[0, 0] - J[0, 4]) / np.linalg.norm(J[0, 0] - J[0, 4]))
    assert sleeve.any() and along0[sleeve].min() == pytest.approx(0.1, abs=1e-6) and not sleeve[along0 < 0.099].any()
    np.testing.assert_allclose(col[~sleeve], np.broadcast_to(np.array([0.8, 0.6, 0.5]) * 0.97, col[~sleeve].shape))


def test_forearm_draw_avoids_the_object_and_the_table(posed):
    hand, V, J = posed
    ring = wrist_ring(np.asarray(hand.faces))
    # a ball of "object" on the straight arm's axis: straight arms cross it, bent ones can miss it
    away = (J[:, 0] - J[:, 4]) / np.linalg.norm(J[:, 0] - J[:, 4], axis=-1, keepdims=True)

    def inside(pts):  # > 0 inside a 4 cm ball 20 cm down the straight arm
        return 0.04 - np.linalg.norm(pts - (J[:, None, 0] + 0.2 * away[:, None]), axis=-1)

    costs = []
    for seed in range(5):
        spec = draw_forearm(np.random.default_rng(seed), V, J, ring, inside_object=inside, tries=12)
        pts = forearm_mesh(V, J, ring, spec, np.full(3, 0.5))[0][:, ::3]
        costs.append(np.clip(inside(pts), 0, None).sum())
    straight = forearm_mesh(V, J, ring, ForearmSpec(), np.full(3, 0.5))[0][:, ::3]
    assert np.clip(inside(straight), 0, None).sum() > 0
    assert max(costs) == 0.0


def test_captures_with_and_without_the_forearm(tmp_path):
    """The arm is scenery: same ground truth, cues background where it is, RGB and depth changed."""
    outs = {}
    for arm in (False, True):
        cfg = SynthConfig(frames=1, cameras=2, object="mug", width=160, height=120, seed=11,
                          depth_noise=DepthNoiseConfig(kind="none"), forearm=arm)
        outs[arm] = tmp_path / str(arm)
        generate_sequence(outs[arm], cfg)
    a, b = outs[False], outs[True]
    ga, gb = np.load(a / "ground_truth" / "sequence_gt.npz"), np.load(b / "ground_truth" / "sequence_gt.npz")
    for k in ga.files:
        if k != "keypoints_visible" and k != "keypoints2d":
            assert np.array_equal(ga[k], gb[k]), k
    np.testing.assert_array_equal(ga["keypoints2d"][..., :2], gb["keypoints2d"][..., :2])
    assert (gb["keypoints_visible"] <= ga["keypoints_visible"]).all()  # the arm can only hide joints
    arm_pixels = 0
    for cam in ("0", "1"):
        sa = cv2.imread(str(a / "segmentation" / cam / "0000.png"), cv2.IMREAD_UNCHANGED)
        sb = cv2.imread(str(b / "segmentation" / cam / "0000.png"), cv2.IMREAD_UNCHANGED)
        assert set(np.unique(sb)) <= {0, 1, 2}
        da = cv2.imread(str(a / "depth" / cam / "0000.png"), cv2.IMREAD_UNCHANGED).astype(float)
        db = cv2.imread(str(b / "depth" / cam / "0000.png"), cv2.IMREAD_UNCHANGED).astype(float)
        arm = (db != da) & (sb == 0)  # arm pixels: a new surface, background in the mask
        arm_pixels += arm.sum()
        # where the masks agree on hand or object, nothing in front of them changed
        same = (sa == sb) & (sa > 0)
        np.testing.assert_array_equal(da[same], db[same])
        # the arm is nearer than what it hides, and the masks lose only what it hides
        assert (db[arm & (da > 0)] <= da[arm & (da > 0)]).all()
        assert ((sa != sb) <= (sb == 0)).all()
        # the forearm mask: background in the segmentation, and the surface the arm brought
        fm = cv2.imread(str(b / "ground_truth" / "forearm" / cam / "0000.png"), cv2.IMREAD_UNCHANGED)
        assert set(np.unique(fm)) <= {0, 1} and (sb[fm > 0] == 0).all()
        np.testing.assert_array_equal(arm & (da > 0), (fm > 0) & (db != da) & (da > 0))
        assert (fm > 0).sum() >= arm.sum()
    assert arm_pixels > 50
    assert not (a / "ground_truth" / "forearm").exists()
    # segmentation samples with a forearm class: the mask's pixels labelled 3, the rest unchanged
    plain = SequenceFrames([b], augment=AugmentConfig(enabled=False), width=160, height=120)
    four = SequenceFrames([b], augment=AugmentConfig(enabled=False), width=160, height=120, forearm_class=True)
    for i in range(2):
        x, y = plain[i]["labels"], four[i]["labels"]
        fm = cv2.imread(str(b / "ground_truth" / "forearm" / str(i) / "0000.png"), cv2.IMREAD_UNCHANGED) > 0
        np.testing.assert_array_equal(y.numpy() == 3, fm)
        np.testing.assert_array_equal(x[~torch.from_numpy(fm)], y[~torch.from_numpy(fm)])
    with pytest.raises(ValueError, match="segmentation networks only"):
        SequenceFrames([b], "keypoints", forearm_class=True)
    import shutil

    (b / "ground_truth" / "forearm" / "1" / "0000.png").unlink()  # one frame's mask lost
    lost = SequenceFrames([b], augment=AugmentConfig(enabled=False), width=160, height=120, forearm_class=True)
    lost[0]
    with pytest.raises(FileNotFoundError, match=r"forearm[/\\]1[/\\]0000.png: missing forearm mask"):
        lost[1]
    shutil.rmtree(b / "ground_truth" / "forearm")
    with pytest.raises(FileNotFoundError, match="without ground_truth/forearm/ masks"):
        SequenceFrames([b], forearm_class=True)
    SequenceFrames([a], forearm_class=True)  # drawn without a forearm: nothing to miss


def test_composites_forearm_has_its_own_stream():
    """A composite with the forearm: same keypoints, hand and object labels but where the arm
    hides them (background there), the arm drawn in the image; arm_prob=0: the old composites."""
    import dataclasses

    cfg = CompositeConfig(objects=("mug",), grasps_per_object=1, width=160, height=128, distance=(0.5, 0.6), seed=2,
                          augment=AugmentConfig(enabled=False), table_prob=0.0, arm_prob=0.0)
    plain = SyntheticComposites(cfg)
    armed = SyntheticComposites(dataclasses.replace(cfg, arm_prob=1.0))
    four = SyntheticComposites(dataclasses.replace(cfg, arm_prob=1.0), forearm_class=True)
    drawn = 0
    for index in range(3):
        x, y = plain.composite(index, jitter=False), armed.composite(index, jitter=False)
        np.testing.assert_array_equal(x["keypoints"][:, :2], y["keypoints"][:, :2])
        assert (y["keypoints"][:, 2] <= x["keypoints"][:, 2]).all()
        changed = x["labels"] != y["labels"]
        assert (y["labels"][changed] == 0).all()  # only hidden by the arm, which is background
        diff = np.abs(x["image"] - y["image"]).sum(-1) > 1e-6
        assert not diff[(x["labels"] > 0) & ~changed].any()  # nothing in front of what stays seen
        drawn += int((diff & (y["labels"] == 0)).sum())
        # with a forearm class the arm's pixels are labelled 3, all else as before
        z = four.composite(index, jitter=False)["labels"]
        np.testing.assert_array_equal(z == 3, diff & (y["labels"] == 0))
        np.testing.assert_array_equal(np.where(z == 3, 0, z), y["labels"])
    assert drawn > 100
    with pytest.raises(ValueError, match="arm_prob"):
        CompositeConfig(arm_prob=-0.1)
