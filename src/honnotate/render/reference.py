"""Slow, obvious reference renderer: one ray per pixel centre against every triangle.

The fast :func:`honnotate.render.rasterize` is tested against it (same face ids and depths
except at numerically tied pixels). Only for small images and meshes: memory is
O(H * W * F).
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["rasterize_reference"]


def rasterize_reference(
    verts_cam: torch.Tensor, faces: torch.Tensor, K: torch.Tensor, height: int, width: int, *, near: float = 1e-3
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-pixel ray-triangle intersection (Moller-Trumbore, float64, no culling of back faces).

    Args:
        verts_cam: (V, 3) float, metres, camera frame (OpenCV).
        faces: (F, 3) integer.
        K: (3, 3) intrinsics, pixel centres at integer coordinates.
        height, width: image size in pixels.
        near: faces with a vertex at ``z < near`` are culled (same rule as the rasteriser).

    Returns:
        ``face_id`` (H, W) int64 (-1 background), ``depth`` (H, W) float64 camera z in metres
        (+inf background), ``margin`` (H, W) float64: the smallest barycentric of the winning
        hit (near 0 means the pixel centre lies on an edge, a numerical tie).
    """
    v = verts_cam.detach().cpu().double().numpy()
    f = faces.detach().cpu().long().numpy()
    kinv = np.linalg.inv(K.detach().cpu().double().numpy())
    uu, vv = np.meshgrid(np.arange(width, dtype=np.float64), np.arange(height, dtype=np.float64))
    pix = np.stack([uu, vv, np.ones_like(uu)], -1).reshape(-1, 3)
    dirs = pix @ kinv.T  # (P, 3), z = 1 so the ray parameter equals camera depth
    keep = (v[f][..., 2] >= near).all(-1)
    f = f[keep]
    face_index = np.nonzero(keep)[0]
    a, b, c = v[f[:, 0]], v[f[:, 1]], v[f[:, 2]]
    e1, e2 = b - a, c - a  # (F, 3)
    pvec = np.cross(dirs[:, None, :], e2[None])  # (P, F, 3)
    det = (e1[None] * pvec).sum(-1)
    ok_det = np.abs(det) > 1e-15
    inv_det = np.where(ok_det, 1.0 / np.where(ok_det, det, 1.0), 0.0)
    tvec = -a[None]  # ray origin at the camera centre
    bu = (tvec * pvec).sum(-1) * inv_det
    qvec = np.cross(np.broadcast_to(tvec, pvec.shape), e1[None])
    bv = (dirs[:, None, :] * qvec).sum(-1) * inv_det
    t = (e2[None] * qvec).sum(-1) * inv_det
    bw = 1.0 - bu - bv
    hit = ok_det & (bu >= 0) & (bv >= 0) & (bw >= 0) & (t > 0)
    t = np.where(hit, t, np.inf)
    best = np.argmin(t, axis=1) if f.shape[0] else np.zeros(pix.shape[0], dtype=np.int64)
    rows = np.arange(pix.shape[0])
    depth = t[rows, best] if f.shape[0] else np.full(pix.shape[0], np.inf)
    found = np.isfinite(depth)
    face_id = np.where(found, face_index[best] if f.shape[0] else -1, -1)
    margin = np.where(found, np.minimum(np.minimum(bu, bv), bw)[rows, best] if f.shape[0] else 0.0, 0.0)
    return face_id.reshape(height, width), depth.reshape(height, width), margin.reshape(height, width)
