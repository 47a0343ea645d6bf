"""Multi-view keypoints: the annotation's consensus drops wrong views, the detection's fusion
replaces them by the consensus point's reprojection; right views are kept, too few cameras pass
unchanged."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from honnotate.annotate.consensus import keypoint_consensus
from honnotate.perception.multiview import fuse_views


def _rig(C: int = 5):
    """C cameras on a ring 0.6 m around the origin, looking at it; 640x480 intrinsics."""
    K = torch.tensor([[600.0, 0, 320], [0, 600.0, 240], [0, 0, 1]], dtype=torch.float64).expand(C, 3, 3).clone()
    w2c = []
    for c in range(C):
        a = 2 * math.pi * c / C
        eye = torch.tensor([0.6 * math.sin(a), 0.15 * (-1) ** c, -0.6 * math.cos(a)], dtype=torch.float64)
        z = -eye / eye.norm()
        x = torch.linalg.cross(torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64), z)
        x = x / x.norm()
        y = torch.linalg.cross(z, x)
        R = torch.stack([x, y, z])
        T = torch.eye(4, dtype=torch.float64)
        T[:3, :3], T[:3, 3] = R, -R @ eye
        w2c.append(T)
    return K, torch.stack(w2c)


def _project(points, K, w2c):
    """(T, J, 3) world points -> (T, C, J, 3) u, v, confidence 0.5."""
    cam = torch.einsum("cij,tkj->tcki", w2c[:, :3, :3], points) + w2c[:, None, :3, 3][None]
    uv = torch.einsum("cij,tckj->tcki", K, cam)
    uv = uv[..., :2] / uv[..., 2:]
    return torch.cat([uv, torch.full_like(uv[..., :1], 0.5)], -1)


@pytest.fixture(scope="module")
def scene():
    K, w2c = _rig()
    pts = torch.as_tensor(np.random.default_rng(0).uniform(-0.08, 0.08, (4, 21, 3)))
    return K, w2c, _project(pts, K, w2c)


def test_consistent_views_are_all_kept(scene):
    K, w2c, kp = scene
    noisy = kp.clone()
    noisy[..., :2] += torch.as_tensor(np.random.default_rng(1).normal(0, 2.0, kp[..., :2].shape))
    out, dropped = keypoint_consensus(noisy, K, w2c, threshold_px=15.0)
    assert not dropped.any()
    torch.testing.assert_close(out, noisy, atol=0, rtol=0)


def test_a_wrong_view_is_dropped_and_only_it(scene):
    K, w2c, kp = scene
    bad = kp.clone()
    rng = np.random.default_rng(2)
    wrong = torch.zeros(bad.shape[:3], dtype=torch.bool)
    for t in range(bad.shape[0]):
        for j in range(21):
            c = int(rng.integers(5))  # one view per joint 40 px off, in a random direction
            ang = rng.uniform(0, 2 * math.pi)
            bad[t, c, j, :2] += 40 * torch.tensor([math.cos(ang), math.sin(ang)], dtype=bad.dtype)
            wrong[t, c, j] = True
    out, dropped = keypoint_consensus(bad, K, w2c, threshold_px=15.0)
    assert torch.equal(dropped, wrong)
    assert torch.equal(out[..., 2] == 0, wrong)
    torch.testing.assert_close(out[..., :2], bad[..., :2], atol=0, rtol=0)  # positions untouched
    # two wrong views of five still leave a consensus of three
    bad2 = bad.clone()
    bad2[:, 0, :, :2] += 60.0
    _, d2 = keypoint_consensus(bad2, K, w2c, threshold_px=15.0)
    assert d2[:, 0].all()


def test_without_a_consensus_nothing_is_dropped(scene):
    K, w2c, kp = scene
    # only three views seen, all disagreeing: no three agree, so all are kept
    few = kp.clone()
    few[:, 3:, :, 2] = 0.0
    few[:, 1, :, :2] += 50.0
    few[:, 2, :, :2] -= 50.0
    out, dropped = keypoint_consensus(few, K, w2c, threshold_px=15.0)
    assert not dropped.any() and torch.equal(out, few)
    # missing views (confidence 0, or NaN) are never reported as dropped
    few[:, 0, :2, :2] = float("nan")
    _, dropped = keypoint_consensus(few, K, w2c)
    assert not dropped.any()


def test_fewer_cameras_than_needed_pass_unchanged(scene):
    K, w2c, kp = scene
    one = kp[:, :2].clone()
    one[:, 1, :, :2] += 80.0
    out, dropped = keypoint_consensus(one, K[:2], w2c[:2])
    assert torch.equal(out, one) and not dropped.any()


def test_bad_inputs(scene):
    K, w2c, kp = scene
    with pytest.raises(ValueError, match="T, C, J, 3"):
        keypoint_consensus(kp[..., :2], K, w2c)
    with pytest.raises(ValueError, match="for 5 cameras"):
        keypoint_consensus(kp, K[:3], w2c)
    with pytest.raises(ValueError, match="min_views must be >= 3"):
        keypoint_consensus(kp, K, w2c, min_views=2)
    with pytest.raises(ValueError, match="threshold_px"):
        keypoint_consensus(kp, K, w2c, threshold_px=0.0)


def _one_wrong_view_per_joint(kp, seed, C):
    """kp with one view per (frame, joint) moved 40 px in a random direction; and where."""
    bad = kp.clone()
    rng = np.random.default_rng(seed)
    wrong = torch.zeros(bad.shape[:3], dtype=torch.bool)
    for t in range(bad.shape[0]):
        for j in range(21):
            c = int(rng.integers(C))
            ang = rng.uniform(0, 2 * math.pi)
            bad[t, c, j, :2] += 40 * torch.tensor([math.cos(ang), math.sin(ang)], dtype=bad.dtype)
            wrong[t, c, j] = True
    return bad, wrong


@pytest.mark.parametrize("C", [5, 3])
def test_fusion_replaces_wrong_and_missing_views_by_the_reprojection(scene, C):
    K, w2c, kp = scene
    kp = kp[:, :C].clone()
    kp[..., 2] = torch.as_tensor(np.random.default_rng(3).uniform(0.3, 0.9, kp.shape[:3]))
    bad, wrong = _one_wrong_view_per_joint(kp, 4, C)
    if C == 3:  # a wrong view moved along the epipolar line agrees with either other view: a
        # tie of two pairs, which goes to the more confident one
        bad[..., 2] = torch.where(wrong, 0.2, bad[..., 2])
    missing = torch.zeros_like(wrong)
    if C == 5:  # and a second view of joint 0 not detected (confidence 0)
        missing[:, 1, 0] = ~wrong[:, 1, 0]
        bad[:, 1, 0, 2] = torch.where(missing[:, 1, 0], 0.0, bad[:, 1, 0, 2])
    out, replaced = fuse_views(bad, K[:C], w2c[:C])
    assert torch.equal(replaced, wrong | missing)
    torch.testing.assert_close(out[..., :2][replaced], kp[..., :2][replaced], atol=1e-6, rtol=0)
    torch.testing.assert_close(out[~replaced], bad[~replaced], atol=0, rtol=0)  # agreeing views untouched
    agree = ~replaced & (bad[..., 2] > 0.05)
    mean_conf = (bad[..., 2] * agree).sum(1) / agree.sum(1)  # (T, J)
    expected = mean_conf[:, None].expand_as(replaced)[replaced]
    torch.testing.assert_close(out[..., 2][replaced], expected)


def test_fusion_ties_go_to_the_more_confident_views(scene):
    K, w2c, _ = scene
    a = torch.zeros(1, 21, 3, dtype=torch.float64)
    b = a + torch.tensor([0.05, 0.0, 0.0], dtype=torch.float64)  # 5 cm away: far in every view
    kp = torch.cat([_project(a, K[:2], w2c[:2]), _project(b, K[2:4], w2c[2:4])], 1)  # views 0, 1 see a; 2, 3 b
    kp[:, 2:, :, 2] = 0.9
    out, replaced = fuse_views(kp, K[:4], w2c[:4])
    assert replaced[:, :2].all() and not replaced[:, 2:].any()
    torch.testing.assert_close(out[:, :2, :, :2], _project(b, K[:2], w2c[:2])[..., :2], atol=1e-6, rtol=0)


def test_fusion_leaves_disagreement_and_two_cameras_alone(scene):
    K, w2c, kp = scene
    few = kp[:, :3].clone()
    few[:, 1, :, :2] += 50.0
    few[:, 2, :, :2] -= 50.0
    out, replaced = fuse_views(few, K[:3], w2c[:3])
    assert not replaced.any() and torch.equal(out, few)
    two = kp[:, :2].clone()
    two[:, 1, :, :2] += 80.0
    out, replaced = fuse_views(two, K[:2], w2c[:2])
    assert not replaced.any() and torch.equal(out, two)
    with pytest.raises(ValueError, match="T, C, J, 3"):
        fuse_views(kp[..., :2], K, w2c)
    with pytest.raises(ValueError, match="for 5 cameras"):
        fuse_views(kp, K[:3], w2c)
    with pytest.raises(ValueError, match="min_views must be >= 2"):
        fuse_views(kp, K, w2c, min_views=1)
    with pytest.raises(ValueError, match="threshold_px"):
        fuse_views(kp, K, w2c, threshold_px=-1.0)
