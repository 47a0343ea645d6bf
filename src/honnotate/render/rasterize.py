"""Rasterisation: per-pixel visible triangle, perspective-correct barycentrics, depth (no gradient).

Screen space: a vertex is ``[u, v, z]`` with ``(u, v)`` its pixel coordinates (OpenCV camera,
pixel centres at integer coordinates, pixel ``(u, v)`` covers ``[u-0.5, u+0.5] x [v-0.5, v+0.5]``)
and ``z`` its camera depth in metres. A pixel is sampled at its centre. Triangles with any
vertex at ``z < near`` (behind the camera) are culled; there is no back-face culling (open
meshes such as the hand's wrist stay watertight in silhouette).

Gradient contract: :func:`rasterize` returns :class:`Fragments` that carry no gradient (the
visibility decision is discrete). Gradients w.r.t. vertices come from
:func:`honnotate.render.interpolate.screen_barycentrics` (interior pixels: depth, attributes)
and :func:`honnotate.render.antialias.antialias` (silhouette edges).

Backends: ``"numba"`` (CPU, parallel bounding-box scan with a z-buffer) and ``"torch"``
(vectorised candidate pixels + ``scatter_reduce`` min over a packed (depth, face) key; runs on
any device). ``"auto"`` picks numba for CPU tensors and torch otherwise. Both give the same
face ids, ties going to the lowest face id.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = ["Fragments", "project_to_screen", "rasterize", "rescale_intrinsics"]

_MAX_CANDIDATES = 1 << 22  # candidate (pixel, face) pairs per torch chunk


@dataclass(frozen=True)
class Fragments:
    """Output of :func:`rasterize` (no gradient).

    Attributes:
        face_id: (N, H, W) int64, index of the visible face, -1 for background.
        bary: (N, H, W, 3) float32, perspective-correct barycentrics of the pixel centre in
            the visible face (weights of its vertices ``faces[face_id]``); 0 for background.
        depth: (N, H, W) float32, camera z of the visible surface in metres; +inf for background.
    """

    face_id: torch.Tensor
    bary: torch.Tensor
    depth: torch.Tensor

    @property
    def mask(self) -> torch.Tensor:
        """(N, H, W) bool, True where a face is visible."""
        return self.face_id >= 0

    @property
    def shape(self) -> tuple[int, int, int]:
        """(N, H, W)."""
        return tuple(self.face_id.shape)  # type: ignore[return-value]


def project_to_screen(verts_cam: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
    """Pinhole projection to screen space, differentiable.

    Args:
        verts_cam: (N, V, 3) float, metres, camera frame (OpenCV).
        K: (N, 3, 3) or (3, 3) intrinsics in pixels (pixel centres at integer coordinates).

    Returns:
        (N, V, 3) ``[u, v, z]``: pixel coordinates and camera depth in metres. Points with
        ``z <= 0`` get ``u, v`` computed with ``z`` clamped to 1e-8 (they are culled anyway).
    """
    if verts_cam.ndim != 3 or verts_cam.shape[-1] != 3:
        raise ValueError(f"verts_cam must be (N, V, 3), got {tuple(verts_cam.shape)}")
    if K.ndim == 2:
        K = K.unsqueeze(0).expand(verts_cam.shape[0], 3, 3)
    if K.shape != (verts_cam.shape[0], 3, 3):
        raise ValueError(f"K must be (3, 3) or (N, 3, 3) with N={verts_cam.shape[0]}, got {tuple(K.shape)}")
    K = K.to(verts_cam.dtype)
    z = verts_cam[..., 2]
    zc = z.clamp(min=1e-8)
    x = verts_cam[..., 0] / zc
    y = verts_cam[..., 1] / zc
    u = K[:, 0, 0, None] * x + K[:, 0, 1, None] * y + K[:, 0, 2, None]
    v = K[:, 1, 1, None] * y + K[:, 1, 2, None]
    return torch.stack([u, v, z], dim=-1)


def rescale_intrinsics(K: torch.Tensor, src_size: tuple[int, int], dst_size: tuple[int, int]) -> torch.Tensor:
    """Intrinsics for the same camera at another resolution.

    Args:
        K: (..., 3, 3) intrinsics for an image of ``src_size`` = (width, height) pixels.
        dst_size: (width, height) of the new image.

    Returns:
        (..., 3, 3): with pixel centres at integer coordinates, ``u' = s (u + 0.5) - 0.5``.
    """
    sx = dst_size[0] / src_size[0]
    sy = dst_size[1] / src_size[1]
    out = K.clone()
    out[..., 0, 0] = K[..., 0, 0] * sx
    out[..., 0, 1] = K[..., 0, 1] * sx
    out[..., 0, 2] = (K[..., 0, 2] + 0.5) * sx - 0.5
    out[..., 1, 1] = K[..., 1, 1] * sy
    out[..., 1, 2] = (K[..., 1, 2] + 0.5) * sy - 0.5
    return out


def _check_faces(faces: torch.Tensor, n_verts: int) -> None:
    if faces.ndim != 2 or faces.shape[-1] != 3:
        raise ValueError(f"faces must be (F, 3) integer, got {tuple(faces.shape)}")
    if faces.dtype.is_floating_point or faces.dtype == torch.bool:
        raise ValueError(f"faces must be an integer tensor, got {faces.dtype}")
    if faces.numel() and (int(faces.min()) < 0 or int(faces.max()) >= n_verts):
        raise ValueError(f"faces index vertices outside [0, {n_verts})")


@torch.no_grad()
def rasterize(
    screen: torch.Tensor,
    faces: torch.Tensor,
    height: int,
    width: int,
    *,
    near: float = 1e-3,
    backend: str = "auto",
) -> Fragments:
    """Visible triangle per pixel centre with a z-buffer (no gradient).

    Args:
        screen: (N, V, 3) float ``[u, v, z]`` from :func:`project_to_screen`: pixels, pixels,
            metres (camera z).
        faces: (F, 3) integer vertex indices, shared by the N images.
        height, width: image size in pixels.
        near: faces with a vertex at ``z < near`` metres are culled.
        backend: ``"auto"``, ``"numba"`` (CPU only) or ``"torch"`` (any device).

    Returns:
        :class:`Fragments` on ``screen``'s device.
    """
    if screen.ndim != 3 or screen.shape[-1] != 3:
        raise ValueError(f"screen must be (N, V, 3) [u, v, z], got {tuple(screen.shape)}")
    _check_faces(faces, screen.shape[1])
    if int(height) <= 0 or int(width) <= 0:
        raise ValueError(f"height and width must be positive, got {height}x{width}")
    if backend == "auto":
        backend = "numba" if screen.device.type == "cpu" else "torch"
    if backend == "numba":
        if screen.device.type != "cpu":
            raise ValueError("backend 'numba' needs CPU tensors; use backend='torch' on CUDA")
        return _rasterize_numba(screen, faces, int(height), int(width), near)
    if backend == "torch":
        return _rasterize_torch(screen, faces, int(height), int(width), near)
    raise ValueError(f"unknown backend {backend!r}; expected 'auto', 'numba' or 'torch'")


def _rasterize_numba(screen, faces, height, width, near) -> Fragments:
    import numpy as np

    from honnotate.render._numba_kernels import rasterize_numba

    scr = np.ascontiguousarray(screen.detach().to(torch.float64).numpy())
    fcs = np.ascontiguousarray(faces.detach().to(torch.int32).numpy())
    face_id, depth, bary = rasterize_numba(scr, fcs, height, width, near)
    return Fragments(
        face_id=torch.from_numpy(face_id).long(),
        bary=torch.from_numpy(bary),
        depth=torch.from_numpy(depth),
    )


def _rasterize_torch(screen, faces, height, width, near) -> Fragments:
    device = screen.device
    n_img, n_face = screen.shape[0], faces.shape[0]
    scr = screen.detach().to(torch.float64)
    faces = faces.long().to(device)
    tri = scr[:, faces]  # (N, F, 3 verts, 3)
    x, y, z = tri[..., 0], tri[..., 1], tri[..., 2]
    area = (x[..., 1] - x[..., 0]) * (y[..., 2] - y[..., 0]) - (x[..., 2] - x[..., 0]) * (y[..., 1] - y[..., 0])
    valid = (z >= near).all(-1) & (area != 0) & torch.isfinite(area)
    xmin = x.amin(-1).ceil().clamp(min=0)
    xmax = x.amax(-1).floor().clamp(max=width - 1)
    ymin = y.amin(-1).ceil().clamp(min=0)
    ymax = y.amax(-1).floor().clamp(max=height - 1)
    bw = (xmax - xmin + 1).clamp(min=0)
    bh = (ymax - ymin + 1).clamp(min=0)
    count = torch.where(valid, bw * bh, torch.zeros_like(bw)).long().reshape(-1)  # (N*F)

    key_bg = torch.iinfo(torch.int64).max
    best = torch.full((n_img * height * width,), key_bg, dtype=torch.int64, device=device)
    flat_tri = tri.reshape(n_img * n_face, 3, 3)
    xmin_f, ymin_f, bw_f = xmin.reshape(-1).long(), ymin.reshape(-1).long(), bw.reshape(-1).long()
    inv_area = (1.0 / torch.where(valid, area, torch.ones_like(area))).reshape(-1)

    # chunk the (triangle, pixel) candidates so memory stays bounded
    cum = count.cumsum(0)
    total = int(cum[-1]) if cum.numel() else 0
    start_tri = 0
    done = 0
    while done < total:
        stop_tri = int(torch.searchsorted(cum, done + _MAX_CANDIDATES, right=True))
        stop_tri = max(stop_tri, start_tri + 1)
        cnt = count[start_tri:stop_tri]
        ids = torch.arange(start_tri, stop_tri, device=device).repeat_interleave(cnt)
        # index of each candidate inside its triangle's bounding box (``done`` = chunk base)
        first = (cum[start_tri:stop_tri] - cnt - done).repeat_interleave(cnt)
        offs = torch.arange(ids.numel(), device=device) - first
        local_w = bw_f[ids]
        px = (xmin_f[ids] + offs % local_w).to(torch.float64)
        py = (ymin_f[ids] + offs // local_w).to(torch.float64)
        t = flat_tri[ids]
        b, inside = _screen_bary(t, px, py, inv_area[ids])
        iz = b / t[..., 2]
        zz = 1.0 / iz.sum(-1)
        n = ids // n_face
        f = ids - n * n_face
        pix = (n * height + py.long()) * width + px.long()
        zbits = zz.to(torch.float32).view(torch.int32).to(torch.int64)  # positive floats: monotone bits
        key = (zbits << 32) | f
        best.scatter_reduce_(0, pix[inside], key[inside], reduce="amin")
        done = int(cum[stop_tri - 1])
        start_tri = stop_tri

    hit = best != key_bg
    face_id = torch.where(hit, best & 0xFFFFFFFF, torch.full_like(best, -1))
    bary = torch.zeros(best.numel(), 3, dtype=torch.float32, device=device)
    depth = torch.full((best.numel(),), float("inf"), dtype=torch.float32, device=device)
    pix = hit.nonzero().squeeze(1)
    if pix.numel():
        n = pix // (height * width)
        rem = pix - n * height * width
        py = (rem // width).to(torch.float64)
        px = (rem % width).to(torch.float64)
        fid = face_id[pix]
        t = tri[n, fid]
        b, _ = _screen_bary(t, px, py, inv_area.reshape(n_img, n_face)[n, fid])
        w = b / t[..., 2]
        zz = 1.0 / w.sum(-1)
        bary[pix] = (w * zz[:, None]).to(torch.float32)
        depth[pix] = zz.to(torch.float32)
    return Fragments(
        face_id=face_id.reshape(n_img, height, width),
        bary=bary.reshape(n_img, height, width, 3),
        depth=depth.reshape(n_img, height, width),
    )


def _screen_bary(t: torch.Tensor, px: torch.Tensor, py: torch.Tensor, inv_area: torch.Tensor):
    """Screen-space barycentrics of points (px, py) in triangles t (M, 3, >=2); same formula as numba."""
    x0, x1, x2 = t[:, 0, 0], t[:, 1, 0], t[:, 2, 0]
    y0, y1, y2 = t[:, 0, 1], t[:, 1, 1], t[:, 2, 1]
    b0 = ((x1 - px) * (y2 - py) - (x2 - px) * (y1 - py)) * inv_area
    b1 = ((x2 - px) * (y0 - py) - (x0 - px) * (y2 - py)) * inv_area
    b2 = ((x0 - px) * (y1 - py) - (x1 - px) * (y0 - py)) * inv_area
    b = torch.stack([b0, b1, b2], dim=-1)
    return b, (b >= 0).all(-1)
