"""Hand appearance: where the palm side and the nails are, and what it changes in generated data."""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import pytest
import torch

from honnotate.geometry.mesh import vertex_normals
from honnotate.models.hand import HandModel
from honnotate.models.joints import FINGER_JOINTS, TIP_INDICES
from honnotate.models.open_hand import load_open_hand
from honnotate.perception.data import AugmentConfig, CompositeConfig, SyntheticComposites
from honnotate.synth.appearance import hand_colors, hand_regions
from honnotate.synth.generator import SKIN_TONES, SynthConfig, generate_sequence
from honnotate.synth.noise import DepthNoiseConfig


@pytest.fixture(scope="module", params=["right", "left"])
def hand(request):
    return HandModel(load_open_hand(request.param), dtype=torch.float64)


def test_palm_side_is_where_a_fist_closes(hand):
    """Independent of how the regions are found: in a fist (every finger joint flexed toward its
    larger limit) the fingertips come to the palm-side surface of the palm, not the back."""
    r = hand_regions(hand)
    assert 0.25 < r.palmar.mean() < 0.6
    lim = hand.data.joint_limits
    anat = torch.zeros(1, 15, 3, dtype=torch.float64)
    anat[0, :12, 0] = torch.as_tensor(np.minimum(lim[:12, 0, 1], 1.3))  # the four fingers' flexion
    zero = torch.zeros(1, 3, dtype=torch.float64)
    rest = hand(zero, torch.zeros(1, 45, dtype=torch.float64))
    fist = hand(zero, hand.anatomical_to_pose(anat))
    V = fist.vertices[0].numpy()
    J = rest.joints[0].numpy()
    # palm vertices: near the segment wrist -> middle knuckle, away from the fingers
    centre = 0.5 * (J[0] + J[4])
    palm = np.linalg.norm(rest.vertices[0].numpy() - centre, axis=1) < 0.03
    front, back = V[palm & (r.palmar > 0.8)].mean(0), V[palm & (r.palmar < 0.2)].mean(0)
    tips = fist.joints[0].numpy()[[17, 18, 19]]  # index, middle, ring tips
    assert np.all(np.linalg.norm(tips - front, axis=1) < np.linalg.norm(tips - back, axis=1))


def test_nails_lie_on_the_back_of_every_fingertip(hand):
    r = hand_regions(hand)
    out = hand(torch.zeros(1, 3, dtype=torch.float64), torch.zeros(1, 45, dtype=torch.float64))
    V, J = out.vertices[0].numpy(), out.joints[0].numpy()
    nail = r.nail > 0.5
    assert nail.sum() > 25
    n = vertex_normals(torch.as_tensor(V), torch.as_tensor(hand.faces)).numpy()
    for finger, ids in FINGER_JOINTS.items():
        tip, dip = J[ids[3]], J[ids[2]]
        near = np.linalg.norm(V - tip, axis=1) < 0.6 * np.linalg.norm(tip - dip) + 0.004
        mine = nail & near
        assert mine.sum() >= 4, finger
        # a nail faces away from its finger's palm side
        pad = near & (r.palmar > 0.8)
        assert pad.sum() >= 4, finger
        assert n[mine].mean(0) @ n[pad].mean(0) < -0.3, finger
    # nowhere else: every nail vertex is near a fingertip
    d = np.min(np.linalg.norm(V[nail][:, None] - J[list(TIP_INDICES)][None], axis=2), axis=1)
    assert d.max() < 0.03


def test_hand_colors():
    rng = np.random.default_rng(0)
    regions = hand_regions(HandModel(load_open_hand("right"), dtype=torch.float64))
    dark = SKIN_TONES[-1]
    col = hand_colors(regions, dark, rng, noise=0.0)
    assert col.shape == (len(regions.palmar), 3) and col.min() >= 0 and col.max() <= 1
    back = (regions.palmar == 0) & (regions.nail == 0)
    np.testing.assert_allclose(col[back], np.broadcast_to(dark, col[back].shape), atol=1e-9)
    assert col[regions.palmar > 0.95].mean() > dark.mean() + 0.1  # palms carry less pigment
    assert col[regions.nail > 0.95].mean() > col[back].mean() + 0.2


def test_anatomical_captures_change_only_the_hand_colours(tmp_path):
    outs = {}
    for kind in ("uniform", "anatomical"):
        cfg = SynthConfig(frames=1, cameras=2, object="mug", width=160, height=120, seed=3,
                          depth_noise=DepthNoiseConfig(kind="none"), hand_appearance=kind)
        outs[kind] = tmp_path / kind
        generate_sequence(outs[kind], cfg)
    a, b = outs["uniform"], outs["anatomical"]
    changed, hand_pixels = 0, 0
    for cam in ("0", "1"):
        for rel in (f"depth/{cam}/0000.png", f"segmentation/{cam}/0000.png", f"keypoints2d/{cam}/0000.json"):
            assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel
        ra = cv2.imread(str(a / "rgb" / cam / "0000.png")).astype(float)
        rb = cv2.imread(str(b / "rgb" / cam / "0000.png")).astype(float)
        hand = cv2.imread(str(a / "segmentation" / cam / "0000.png"), cv2.IMREAD_UNCHANGED) == 2
        diff = np.abs(ra - rb).sum(-1) > 0
        changed, hand_pixels = changed + diff[hand].sum(), hand_pixels + hand.sum()
        edge = cv2.dilate(hand.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0  # antialiased border
        assert not diff[~edge].any()
    assert changed > 0.1 * hand_pixels  # the palm side of this grasp is in view (the back shows nothing new)
    with pytest.raises(ValueError, match="hand_appearance"):
        SynthConfig(hand_appearance="painted")


def test_composites_anatomical_hands_have_their_own_stream():
    cfg = CompositeConfig(objects=("sphere",), grasps_per_object=1, width=96, height=80, distance=(0.3, 0.4), seed=5,
                          augment=AugmentConfig(enabled=False), table_prob=0.0, hand_only_prob=1.0, arm_prob=0.0)
    plain = SyntheticComposites(cfg)
    anat = SyntheticComposites(dataclasses.replace(cfg, anatomical_prob=1.0))
    for index in range(2):
        x, y = plain.composite(index), anat.composite(index)
        np.testing.assert_array_equal(x["labels"], y["labels"])
        np.testing.assert_array_equal(x["keypoints"], y["keypoints"])
        hand = x["labels"] == 2
        assert not np.array_equal(x["image"][hand], y["image"][hand])
        np.testing.assert_array_equal(x["image"][x["labels"] == 0][:50], y["image"][y["labels"] == 0][:50])
    with pytest.raises(ValueError, match="anatomical_prob"):
        CompositeConfig(anatomical_prob=1.5)
