"""Pinhole projection and depth back-projection (pure torch functions, any device).

Conventions: camera frame OpenCV (x right, y down, z forward), metres; pixel centres at
integer coordinates (pixel ``(u, v)`` covers ``[u-0.5, u+0.5] x [v-0.5, v+0.5]``, ``u`` the
column, ``v`` the row). Intrinsics ``K = [[fx, s, cx], [0, fy, cy], [0, 0, 1]]`` in pixels
(the skew ``s`` is honoured, usually 0).
"""

from __future__ import annotations

import torch

__all__ = ["project_points", "unproject_depth_map", "depth_to_points", "pixel_grid", "MIN_DEPTH"]

#: Depth (metres) below which :func:`project_points` clamps ``z`` before dividing.
MIN_DEPTH = 1e-6


def _check_K(K: torch.Tensor) -> None:
    if not isinstance(K, torch.Tensor):
        raise TypeError(f"K must be a torch.Tensor, got {type(K).__name__}")
    if K.dim() < 2 or tuple(K.shape[-2:]) != (3, 3):
        raise ValueError(f"K must have shape (..., 3, 3), got {tuple(K.shape)}")


def project_points(points_cam: torch.Tensor, K: torch.Tensor, min_depth: float = MIN_DEPTH) -> torch.Tensor:
    """Project camera-frame points to pixels: ``u = fx x/z + s y/z + cx``, ``v = fy y/z + cy``.

    Behind-camera and zero-depth points: ``z`` is clamped to ``min_depth`` before dividing, so
    the result is always finite (but meaningless) for ``z <= min_depth``, and the gradient with
    respect to ``z`` is zero there. Callers must mask such points with their ``z`` (see
    :meth:`honnotate.geometry.Camera.project`, which returns it).

    Args:
        points_cam: (..., N, 3) float, metres, camera frame (OpenCV).
        K: (..., 3, 3) intrinsics in pixels; leading dims broadcast with those of ``points_cam``.
        min_depth: clamp for ``z`` in metres.

    Returns:
        (..., N, 2) pixel coordinates ``(u, v)``, same dtype as the inputs.
    """
    if not isinstance(points_cam, torch.Tensor):
        raise TypeError(f"points_cam must be a torch.Tensor, got {type(points_cam).__name__}")
    if points_cam.dim() < 2 or points_cam.shape[-1] != 3:
        raise ValueError(f"points_cam must have shape (..., N, 3), got {tuple(points_cam.shape)}")
    _check_K(K)
    K = K.to(points_cam.dtype)
    z = points_cam[..., 2:3].clamp(min=min_depth)
    xy = points_cam[..., :2] / z
    return xy @ K[..., :2, :2].transpose(-1, -2) + K[..., None, :2, 2]


def pixel_grid(height: int, width: int, *, dtype: torch.dtype = torch.float32,
               device: torch.device | str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Pixel-centre coordinates of an image.

    Returns:
        ``(u, v)``: two (H, W) tensors, ``u[i, j] = j`` (column) and ``v[i, j] = i`` (row).
    """
    v = torch.arange(height, dtype=dtype, device=device)
    u = torch.arange(width, dtype=dtype, device=device)
    vv, uu = torch.meshgrid(v, u, indexing="ij")
    return uu, vv


def unproject_depth_map(depth: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
    """Dense back-projection of a depth map to camera-frame points (differentiable).

    Pixel ``(u, v)`` with depth ``d`` maps to ``d * K^-1 [u, v, 1]``. Zero depth gives the
    point ``(0, 0, 0)``; invalid (zero / NaN) pixels are the caller's to mask.
    Gradients flow to ``depth`` and ``K``.

    Args:
        depth: (..., H, W) float, metres along the camera z axis.
        K: (..., 3, 3) intrinsics in pixels; leading dims broadcast with those of ``depth``.

    Returns:
        (..., H, W, 3) points, metres, camera frame (OpenCV).
    """
    if not isinstance(depth, torch.Tensor):
        raise TypeError(f"depth must be a torch.Tensor, got {type(depth).__name__}")
    if depth.dim() < 2:
        raise ValueError(f"depth must have shape (..., H, W), got {tuple(depth.shape)}")
    _check_K(K)
    if not depth.is_floating_point():
        raise ValueError(f"depth must be a floating-point tensor in metres, got {depth.dtype}")
    K = K.to(depth.dtype)
    h, w = depth.shape[-2:]
    uu, vv = pixel_grid(h, w, dtype=depth.dtype, device=depth.device)
    fx = K[..., 0, 0, None, None]
    fy = K[..., 1, 1, None, None]
    skew = K[..., 0, 1, None, None]
    cx = K[..., 0, 2, None, None]
    cy = K[..., 1, 2, None, None]
    y_n = (vv - cy) / fy
    x_n = (uu - cx - skew * y_n) / fx
    x_n, y_n, d = torch.broadcast_tensors(x_n, y_n, depth)
    return torch.stack([x_n * d, y_n * d, d], dim=-1)


def depth_to_points(depth: torch.Tensor, K: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Camera-frame point cloud of the valid pixels of one depth map.

    Valid pixels have a finite depth ``> 0`` and, when given, ``mask`` true. Points are in
    row-major pixel order (row ``v`` then column ``u``).

    Args:
        depth: (H, W) float, metres.
        K: (3, 3) intrinsics, pixels.
        mask: (H, W) bool (or 0/1) selection, or None.

    Returns:
        (N, 3) points, metres, camera frame (OpenCV), dtype of ``depth``.
    """
    if not isinstance(depth, torch.Tensor) or depth.dim() != 2:
        shape = tuple(depth.shape) if isinstance(depth, torch.Tensor) else type(depth).__name__
        raise ValueError(f"depth must be a (H, W) tensor, got {shape}")
    if not isinstance(K, torch.Tensor) or tuple(K.shape) != (3, 3):
        shape = tuple(K.shape) if isinstance(K, torch.Tensor) else type(K).__name__
        raise ValueError(f"K must have shape (3, 3), got {shape}")
    valid = torch.isfinite(depth) & (depth > 0)
    if mask is not None:
        if not isinstance(mask, torch.Tensor) or mask.shape != depth.shape:
            shape = tuple(mask.shape) if isinstance(mask, torch.Tensor) else type(mask).__name__
            raise ValueError(f"mask must have the depth's shape {tuple(depth.shape)}, got {shape}")
        valid = valid & mask.to(device=depth.device, dtype=torch.bool)
    points = unproject_depth_map(depth, K)
    return points[valid]
