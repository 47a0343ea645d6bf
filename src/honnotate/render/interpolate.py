"""Differentiable barycentrics and attribute interpolation over rasterised fragments.

Gradient contract: :func:`screen_barycentrics` recomputes the perspective-correct barycentrics
of every covered pixel centre from the screen-space vertices, so it carries gradients w.r.t.
``screen`` (and through :func:`~honnotate.render.rasterize.project_to_screen` w.r.t. camera-frame
vertices) with the visible face held fixed. :func:`interpolate` is differentiable w.r.t.
``attrs`` and w.r.t. ``bary`` when given; with ``bary=None`` it uses ``fragments.bary``
(no gradient w.r.t. positions). Background pixels are 0 and carry no gradient.
"""

from __future__ import annotations

import torch

from honnotate.render.rasterize import Fragments

__all__ = ["screen_barycentrics", "interpolate", "foreground_index"]


def foreground_index(fragments: Fragments) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Covered pixels as flat indices.

    Returns:
        ``pix`` (M,) int64 flat index into N*H*W, ``img`` (M,) int64 image index,
        ``face`` (M,) int64 visible face.
    """
    n, h, w = fragments.shape
    flat = fragments.face_id.reshape(-1)
    pix = (flat >= 0).nonzero().squeeze(1)
    return pix, pix // (h * w), flat[pix]


def _bary_at(screen: torch.Tensor, faces: torch.Tensor, pix, img, face, h: int, w: int) -> torch.Tensor:
    """(M, 3) perspective-correct barycentrics of pixel centres ``pix`` in faces ``face``."""
    rem = pix % (h * w)
    py = (rem // w).to(screen.dtype)
    px = (rem % w).to(screen.dtype)
    t = screen[img[:, None], faces[face]]  # (M, 3, 3)
    x, y, z = t[..., 0], t[..., 1], t[..., 2]
    dx, dy = x - px[:, None], y - py[:, None]
    # sub-area opposite each vertex: cross of the other two (cyclic), over the full signed area
    sub = torch.stack(
        [
            dx[:, 1] * dy[:, 2] - dx[:, 2] * dy[:, 1],
            dx[:, 2] * dy[:, 0] - dx[:, 0] * dy[:, 2],
            dx[:, 0] * dy[:, 1] - dx[:, 1] * dy[:, 0],
        ],
        dim=-1,
    )
    wz = sub / z  # the area normaliser cancels in the perspective-correct ratio
    return wz / wz.sum(-1, keepdim=True)


def screen_barycentrics(screen: torch.Tensor, faces: torch.Tensor, fragments: Fragments) -> torch.Tensor:
    """Perspective-correct barycentrics of each pixel centre, differentiable w.r.t. ``screen``.

    Args:
        screen: (N, V, 3) ``[u, v, z]`` (pixels, pixels, metres camera z), the tensor that was
            rasterised (with gradient).
        faces: (F, 3) integer.
        fragments: from :func:`~honnotate.render.rasterize.rasterize` of the same geometry.

    Returns:
        (N, H, W, 3) in ``screen``'s dtype; 0 at background pixels. Equal to
        ``fragments.bary`` in value.
    """
    n, h, w = fragments.shape
    if screen.ndim != 3 or screen.shape[0] != n or screen.shape[-1] != 3:
        raise ValueError(f"screen must be (N={n}, V, 3), got {tuple(screen.shape)}")
    pix, img, face = foreground_index(fragments)
    faces = faces.long().to(screen.device)
    b = _bary_at(screen, faces, pix, img, face, h, w)
    out = torch.zeros(n * h * w, 3, dtype=screen.dtype, device=screen.device)
    return out.index_copy(0, pix, b).reshape(n, h, w, 3)


def interpolate(
    attrs: torch.Tensor, faces: torch.Tensor, fragments: Fragments, bary: torch.Tensor | None = None
) -> torch.Tensor:
    """Interpolate per-vertex attributes at every pixel centre.

    Args:
        attrs: (N, V, C) or (V, C) float, any units (e.g. camera z in metres, colours in [0, 1]).
        faces: (F, 3) integer.
        fragments: rasteriser output for N images of H x W.
        bary: optional (N, H, W, 3) from :func:`screen_barycentrics` (gradients w.r.t.
            positions); default ``fragments.bary`` (no gradient w.r.t. positions).

    Returns:
        (N, H, W, C) in ``attrs``'s dtype, 0 at background.
    """
    n, h, w = fragments.shape
    if attrs.ndim == 2:
        batched = False
    elif attrs.ndim == 3 and attrs.shape[0] == n:
        batched = True
    else:
        raise ValueError(f"attrs must be (V, C) or (N={n}, V, C), got {tuple(attrs.shape)}")
    if bary is not None and bary.shape != (n, h, w, 3):
        raise ValueError(f"bary must be (N, H, W, 3) = {(n, h, w, 3)}, got {tuple(bary.shape)}")
    pix, img, face = foreground_index(fragments)
    faces = faces.long().to(attrs.device)
    vid = faces[face]  # (M, 3)
    a = attrs[img[:, None], vid] if batched else attrs[vid]  # (M, 3, C)
    src = fragments.bary if bary is None else bary
    b = src.reshape(-1, 3)[pix].to(attrs.dtype)
    val = (b[..., None] * a).sum(1)
    out = torch.zeros(n * h * w, attrs.shape[-1], dtype=attrs.dtype, device=attrs.device)
    return out.index_copy(0, pix, val).reshape(n, h, w, attrs.shape[-1])
