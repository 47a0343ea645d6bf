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

import torch

from honnotate.geometry.multiview import agreeing_views, check_views, projection_matrices

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
    check_views(keypoints, K, world_to_cam, threshold_px)
    if min_views < 3:
        raise ValueError(f"min_views must be >= 3 (two views always agree with their own triangulation), got {min_views}")
    T, C, J, _ = keypoints.shape
    dropped = torch.zeros(T, C, J, dtype=torch.bool, device=keypoints.device)
    if C < min_views:
        return keypoints.clone(), dropped
    kp = keypoints.to(torch.float64)
    seen = torch.isfinite(kp).all(-1) & (kp[..., 2] > 0)  # (T, C, J)
    inliers, count = agreeing_views(torch.nan_to_num(kp[..., :2]), seen, projection_matrices(K.to(kp), world_to_cam.to(kp)),
                                    threshold_px)
    decided = count >= min_views  # (T, J)
    dropped = seen & ~inliers & decided[:, None]
    out = keypoints.clone()
    out[..., 2] = torch.where(dropped, torch.zeros_like(out[..., 2]), out[..., 2])
    return out, dropped
