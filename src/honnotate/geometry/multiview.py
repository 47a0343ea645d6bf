"""Multi-view geometry of 2D point observations: weighted triangulation and the RANSAC vote
for the views that agree on a point (pure torch, any device).

:func:`agreeing_views` is the core shared by the annotation's keypoint consensus (drop the
views that disagree, :mod:`honnotate.annotate.consensus`) and the detection's view fusion
(replace them by the consensus point's reprojection, :mod:`honnotate.perception.multiview`).
"""

from __future__ import annotations

import itertools

import torch

__all__ = ["triangulate_points", "agreeing_views", "projection_matrices", "check_views"]


def projection_matrices(K: torch.Tensor, world_to_cam: torch.Tensor) -> torch.Tensor:
    """(C, 3, 3) intrinsics and (C, 4, 4) extrinsics -> (C, 3, 4) ``P = K [R | t]``."""
    return K.to(world_to_cam) @ world_to_cam[:, :3, :]


def triangulate_points(uv: torch.Tensor, weights: torch.Tensor, K: torch.Tensor,
                       world_to_cam: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Weighted linear (DLT) triangulation of N points seen by C cameras.

    Args:
        uv: (C, N, 2) pixels. weights: (C, N) confidences (0: not seen).
        K: (C, 3, 3); world_to_cam: (C, 4, 4).

    Returns:
        ``(points, ok)``: (N, 3) world points, metres, and (N,) bool (seen by >= 2 cameras).
    """
    if uv.ndim != 3 or uv.shape[-1] != 2 or weights.shape != uv.shape[:2]:
        raise ValueError(f"uv (C, N, 2) and weights (C, N) expected, got {tuple(uv.shape)}, {tuple(weights.shape)}")
    P = projection_matrices(K.to(uv), world_to_cam.to(uv))  # (C, 3, 4)
    rows_u = uv[..., 0:1] * P[:, None, 2] - P[:, None, 0]  # (C, N, 4)
    rows_v = uv[..., 1:2] * P[:, None, 2] - P[:, None, 1]
    w = weights.to(uv)[..., None]
    A = torch.cat([w * rows_u, w * rows_v], dim=0).transpose(0, 1)  # (N, 2C, 4)
    A = A / torch.clamp(A.norm(dim=-1, keepdim=True), min=1e-12)
    _, _, Vh = torch.linalg.svd(A)
    X = Vh[:, -1]
    ok = ((weights > 0).sum(0) >= 2) & (X[:, 3].abs() > 1e-12)
    pts = X[:, :3] / torch.where(ok, X[:, 3], torch.ones_like(X[:, 3]))[:, None]
    return pts, ok


def check_views(keypoints: torch.Tensor, K: torch.Tensor, world_to_cam: torch.Tensor, threshold_px: float) -> None:
    """Raise ValueError unless keypoints are (T, C, J, 3), K (C, 3, 3), world_to_cam (C, 4, 4)
    and ``threshold_px`` > 0 (the inputs of a vote with :func:`agreeing_views`)."""
    if keypoints.ndim != 4 or keypoints.shape[-1] != 3:
        raise ValueError(f"keypoints must be (T, C, J, 3) (u, v, confidence), got {tuple(keypoints.shape)}")
    C = keypoints.shape[1]
    if K.shape != (C, 3, 3) or world_to_cam.shape != (C, 4, 4):
        raise ValueError(f"K must be ({C}, 3, 3) and world_to_cam ({C}, 4, 4) for {C} cameras, got "
                         f"{tuple(K.shape)}, {tuple(world_to_cam.shape)}")
    if not threshold_px > 0:
        raise ValueError(f"threshold_px must be > 0, got {threshold_px}")


def agreeing_views(uv: torch.Tensor, seen: torch.Tensor, P: torch.Tensor, threshold_px: float, *,
                   confidence: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The largest set of views that agree on one 3D point, per frame and point.

    RANSAC over camera pairs: triangulate each point from two views that see it, count the
    views whose observation lies within ``threshold_px`` of the reprojection (in front of the
    camera); the pair with the most agreeing views wins, ties going to the smaller mean error,
    or with ``confidence`` to the larger sum of the agreeing views' confidences.

    Args:
        uv: (T, C, J, 2) pixels (finite). seen: (T, C, J) bool, views that take part.
        P: (C, 3, 4) projection matrices (:func:`projection_matrices`). threshold_px: > 0.
        confidence: (T, C, J) in [0, 1] (larger is clamped to 1) or None.

    Returns:
        ``(inliers, count)``: (T, C, J) bool, the agreeing views (all False where no pair of
        views sees the point), and (T, J) their number.
    """
    T, C, J, _ = uv.shape
    best_count = torch.zeros(T, J, dtype=torch.long, device=uv.device)
    best_score = torch.full((T, J), -1.0, dtype=uv.dtype, device=uv.device)
    best_inliers = torch.zeros(T, C, J, dtype=torch.bool, device=uv.device)
    for a, b in itertools.combinations(range(C), 2):
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
        if confidence is None:  # more agreeing views first; among equals, the smaller mean error
            mean_err = torch.where(inl, err, torch.zeros_like(err)).sum(1) / count.clamp(min=1)
            score = count.to(uv.dtype) - 1e-3 * (mean_err / threshold_px)
        else:  # among equals, the more confident (a sum of C confidences <= 1 is < C + 1)
            conf_sum = torch.where(inl, confidence.to(uv.dtype).clamp(0.0, 1.0), torch.zeros_like(err)).sum(1)
            score = count.to(uv.dtype) + conf_sum / (C + 1)
        better = valid & (score > best_score)
        best_score = torch.where(better, score, best_score)
        best_count = torch.where(better, count, best_count)
        best_inliers = torch.where(better[:, None], inl, best_inliers)
    return best_inliers, best_count


def _two_view_points(uv_a: torch.Tensor, uv_b: torch.Tensor, P_a: torch.Tensor, P_b: torch.Tensor) -> torch.Tensor:
    """(T, J, 4) homogeneous points triangulated (linear DLT) from (T, J, 2) pixels of two views."""
    rows = [uv_a[..., 0:1] * P_a[2] - P_a[0], uv_a[..., 1:2] * P_a[2] - P_a[1],
            uv_b[..., 0:1] * P_b[2] - P_b[0], uv_b[..., 1:2] * P_b[2] - P_b[1]]
    A = torch.stack(rows, -2)  # (T, J, 4, 4)
    A = A / A.norm(dim=-1, keepdim=True).clamp(min=1e-12)
    return torch.linalg.svd(A)[2][..., -1, :]
