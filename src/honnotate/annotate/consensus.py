"""Multi-view consensus of 2D keypoint cues: drop the views of a joint that disagree with the others.

A keypoint detector's errors are not small noise: it puts a whole finger on the neighbouring one,
or a fingertip on the object, with a confidence no lower than its correct detections. With
several calibrated cameras such an error shows as a view whose ray misses the point on which the
other views agree. :func:`keypoint_consensus` finds, per frame and joint, the largest set of
views that agree (RANSAC over camera pairs: triangulate the joint from two views, count the views
whose reprojection lies within ``threshold_px``), and sets the confidence of the other views to 0
when at least ``min_views`` views agree. Joints without such a consensus keep all their views
(nothing says which ones are wrong). One camera: nothing to check, the cues pass unchanged.
"""

from __future__ import annotations

import itertools

import torch

__all__ = ["keypoint_consensus"]


def keypoint_consensus(keypoints: torch.Tensor, K: torch.Tensor, world_to_cam: torch.Tensor, *,
                       threshold_px: float = 15.0, min_views: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    """Keypoint cues with the views that disagree with a multi-view consensus switched off.

    Args:
        keypoints: (T, C, J, 3) cues, u, v pixels and confidence (<= 0 or non-finite: missing).
        K: (C, 3, 3) intrinsics of the pixels of ``keypoints``; world_to_cam: (C, 4, 4).
        threshold_px: a view agrees when the consensus point reprojects within this many pixels.
        min_views: views that must agree before the others are dropped (>= 3: two views always
            agree with their own triangulation).

    Returns:
        ``(cues, dropped)``: (T, C, J, 3) like ``keypoints`` (dtype and device kept) with the
        confidence of dropped views set to 0, and (T, C, J) bool, True where a view was dropped.

    Raises:
        ValueError: shapes that do not match, ``min_views`` < 3 or a non-positive threshold.
    """
    if keypoints.ndim != 4 or keypoints.shape[-1] != 3:
        raise ValueError(f"keypoints must be (T, C, J, 3) (u, v, confidence), got {tuple(keypoints.shape)}")
    T, C, J, _ = keypoints.shape
    if K.shape != (C, 3, 3) or world_to_cam.shape != (C, 4, 4):
        raise ValueError(f"K must be ({C}, 3, 3) and world_to_cam ({C}, 4, 4) for {C} cameras, got "
                         f"{tuple(K.shape)}, {tuple(world_to_cam.shape)}")
    if min_views < 3:
        raise ValueError(f"min_views must be >= 3 (two views always agree with their own triangulation), got {min_views}")
    if not threshold_px > 0:
        raise ValueError(f"threshold_px must be > 0, got {threshold_px}")
    dropped = torch.zeros(T, C, J, dtype=torch.bool, device=keypoints.device)
    if C < min_views:
        return keypoints.clone(), dropped
    dt = torch.float64
    kp = keypoints.to(dt)
    uv = torch.nan_to_num(kp[..., :2])
    seen = torch.isfinite(kp).all(-1) & (kp[..., 2] > 0)  # (T, C, J)
    P = K.to(kp) @ world_to_cam.to(kp)[:, :3, :]  # (C, 3, 4)
    pairs = list(itertools.combinations(range(C), 2))
    best_count = torch.zeros(T, J, dtype=torch.long, device=kp.device)
    best_score = torch.full((T, J), -1.0, dtype=dt, device=kp.device)
    best_inliers = torch.zeros(T, C, J, dtype=torch.bool, device=kp.device)
    for a, b in pairs:
        X = _two_view_points(uv[:, a], uv[:, b], P[a], P[b])  # (T, J, 4) homogeneous
        proj = torch.einsum("cij,tkj->tcki", P, X)  # (T, C, J, 3)
        z = proj[..., 2]
        w = X[..., 3][:, None]  # (T, 1, J); a point in front of camera c has z / w > 0
        front = (z * w) > 0
        err = (proj[..., :2] / torch.where(z.abs() > 1e-12, z, torch.ones_like(z))[..., None] - uv).norm(dim=-1)
        inl = seen & front & (err < threshold_px)  # (T, C, J)
        valid = seen[:, a] & seen[:, b] & front[:, a] & front[:, b]  # (T, J)
        inl = inl & valid[:, None]
        count = inl.sum(1)
        # more agreeing views first; among equals, the smaller mean error
        mean_err = torch.where(inl, err, torch.zeros_like(err)).sum(1) / count.clamp(min=1)
        score = count.to(dt) - 1e-3 * (mean_err / threshold_px)
        better = valid & (score > best_score)
        best_score = torch.where(better, score, best_score)
        best_count = torch.where(better, count, best_count)
        best_inliers = torch.where(better[:, None], inl, best_inliers)
    decided = best_count >= min_views  # (T, J)
    dropped = seen & ~best_inliers & decided[:, None]
    out = keypoints.clone()
    out[..., 2] = torch.where(dropped, torch.zeros_like(out[..., 2]), out[..., 2])
    return out, dropped


def _two_view_points(uv_a: torch.Tensor, uv_b: torch.Tensor, P_a: torch.Tensor, P_b: torch.Tensor) -> torch.Tensor:
    """(T, J, 4) homogeneous points triangulated (linear DLT) from (T, J, 2) pixels of two views."""
    rows = [uv_a[..., 0:1] * P_a[2] - P_a[0], uv_a[..., 1:2] * P_a[2] - P_a[1],
            uv_b[..., 0:1] * P_b[2] - P_b[0], uv_b[..., 1:2] * P_b[2] - P_b[1]]
    A = torch.stack(rows, -2)  # (T, J, 4, 4)
    A = A / A.norm(dim=-1, keepdim=True).clamp(min=1e-12)
    return torch.linalg.svd(A)[2][..., -1, :]
