"""Silhouette-edge antialiasing: gradients of images w.r.t. vertex positions at visible contours.

Silhouette edges of a view are mesh boundary edges and edges whose two faces face opposite
ways. Each one is walked across the pixel grid: a mostly vertical edge crosses the segments
joining horizontally neighbouring pixel centres (one per pixel row), a mostly horizontal one
the vertical segments (one per column), so every crossing counts once and the gradient of the
covered area has the right magnitude (as in nvdiffrast's ``antialias``). The *inside* pixel of
a crossing is on the side of the edge's faces. A crossing is visible when the outside pixel
shows nothing nearer than the edge there (background, or a surface behind) and the inside pixel
shows something nearer than the outside one; when several visible edges cross the same pair,
the nearest edge wins (an occluder's contour hides what is behind it). This geometric test does
not depend on which (possibly sub-pixel) triangle happens to be visible at a pixel centre.

For a crossing at distance ``t`` in [0, 1] from the inside pixel's centre the inside surface
covers ``t - 1/2`` of the outside pixel when ``t > 1/2`` (its colour moves that far toward the
inside colour), and the inside pixel loses ``1/2 - t`` toward the outside colour when
``t < 1/2``. The result is continuous in the vertex positions as pixel centres cross edges.

Gradient contract: :func:`antialias` is differentiable w.r.t. ``color`` and ``screen``
(through the endpoints of the crossing silhouette edges). Which crossings take part is a
discrete choice made without gradient.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from honnotate.render.rasterize import Fragments

__all__ = ["MeshTopology", "mesh_topology", "antialias"]


@dataclass(frozen=True)
class MeshTopology:
    """Edge adjacency of a triangle mesh (from :func:`mesh_topology`).

    Attributes:
        edges: (E, 2) int64 vertex indices (sorted per edge).
        edge_faces: (E, 2) int64 the two faces sharing the edge; -1 for a boundary edge.
        face_edges: (F, 3) int64 edge id of each face's edges ``(v0, v1), (v1, v2), (v2, v0)``.
        face_neighbors: (F, 3) int64 face across each of those edges (the face itself at a boundary).
    """

    edges: torch.Tensor
    edge_faces: torch.Tensor
    face_edges: torch.Tensor
    face_neighbors: torch.Tensor

    def to(self, device: torch.device | str) -> MeshTopology:
        if self.edges.device == torch.device(device):
            return self
        return MeshTopology(*(t.to(device) for t in (self.edges, self.edge_faces, self.face_edges, self.face_neighbors)))


def mesh_topology(faces: torch.Tensor) -> MeshTopology:
    """Edge list and edge-face adjacency of ``faces`` (F, 3) integer.

    Non-manifold edges (3+ faces) keep two of their faces.
    """
    if faces.ndim != 2 or faces.shape[-1] != 3:
        raise ValueError(f"faces must be (F, 3), got {tuple(faces.shape)}")
    faces = faces.long()
    n_face = faces.shape[0]
    half = torch.stack([faces, faces.roll(-1, dims=1)], dim=-1).reshape(-1, 2)  # (3F, 2)
    half = half.sort(dim=1).values
    edges, inverse = torch.unique(half, dim=0, return_inverse=True)
    face_of_half = torch.arange(n_face, device=faces.device).repeat_interleave(3)
    n_edge = edges.shape[0]
    # first and last face per edge via scatter min / max
    big = torch.full((n_edge,), n_face, dtype=torch.long, device=faces.device)
    f_min = big.scatter_reduce(0, inverse, face_of_half, reduce="amin")
    f_max = torch.full_like(big, -1).scatter_reduce(0, inverse, face_of_half, reduce="amax")
    edge_faces = torch.stack([f_min, torch.where(f_max == f_min, torch.full_like(f_max, -1), f_max)], dim=1)
    face_edges = inverse.reshape(n_face, 3)
    own = torch.arange(n_face, device=faces.device)[:, None]
    ef = edge_faces[face_edges]  # (F, 3, 2)
    nb = torch.where(ef[..., 0] == own, ef[..., 1], ef[..., 0])
    nb = torch.where(nb >= 0, nb, own.expand_as(nb))
    return MeshTopology(edges=edges, edge_faces=edge_faces, face_edges=face_edges, face_neighbors=nb)


def _silhouette_crossings(scr, fragments, faces, topology, near):
    """Visible silhouette-edge crossings of pixel-pair segments (no gradient).

    Returns ``img`` (K,), ``edge`` (K,), ``horizontal`` (K,) bool, ``inside`` (K,) and
    ``outside`` (K,) flat pixel indices, one entry per pixel pair.
    """
    n, h, w = fragments.shape
    device = scr.device
    tri = scr[:, faces]  # (N, F, 3, 3)
    area = (tri[..., 1, 0] - tri[..., 0, 0]) * (tri[..., 2, 1] - tri[..., 0, 1]) - (
        tri[..., 2, 0] - tri[..., 0, 0]
    ) * (tri[..., 1, 1] - tri[..., 0, 1])
    drawn = (tri[..., 2] >= near).all(-1) & (area != 0)
    facing = torch.where(drawn, torch.sign(area), torch.zeros_like(area))  # (N, F)
    f0, f1 = topology.edge_faces[:, 0], topology.edge_faces[:, 1]
    s0 = facing[:, f0]
    s1 = torch.where(f1 >= 0, facing[:, f1.clamp(min=0)], torch.zeros_like(s0))
    sil = ((f1 < 0) & (s0 != 0)) | ((s0 != s1) & ((s0 != 0) | (s1 != 0)))  # (N, E)
    img, edge = sil.nonzero(as_tuple=True)
    # the edge's inside is where its faces are: the third vertex of a drawn adjacent face
    own = torch.where(s0[img, edge] != 0, f0[edge], f1[edge].clamp(min=0))
    ea, eb = topology.edges[edge, 0], topology.edges[edge, 1]
    fv = faces[own]
    third = fv.sum(-1) - ea - eb
    a, b, c = scr[img, ea], scr[img, eb], scr[img, third]
    dx, dy = b[:, 0] - a[:, 0], b[:, 1] - a[:, 1]
    horizontal = dy.abs() >= dx.abs()  # mostly vertical edge: crosses horizontal pairs, one per row
    side_c = dx * (c[:, 1] - a[:, 1]) - dy * (c[:, 0] - a[:, 0])
    along_a = torch.where(horizontal, a[:, 1], a[:, 0])
    along_b = torch.where(horizontal, b[:, 1], b[:, 0])
    lim = torch.where(horizontal, torch.full_like(along_a, h - 1), torch.full_like(along_a, w - 1))
    lo = torch.minimum(along_a, along_b).ceil().clamp(min=0)
    hi = torch.maximum(along_a, along_b).floor().clamp(max=lim)
    # half-open at the upper end so a vertex lying exactly on a row is counted once
    hi = torch.where(hi == torch.maximum(along_a, along_b), hi - 1, hi)
    count = (hi - lo + 1).clamp(min=0).long()
    empty = scr.new_zeros(0, dtype=torch.long)
    if int(count.sum()) == 0:
        return empty, empty, empty.bool(), empty, empty
    k = torch.arange(count.numel(), device=device).repeat_interleave(count)
    first = (count.cumsum(0) - count).repeat_interleave(count)
    line = lo[k] + (torch.arange(k.numel(), device=device) - first).to(lo.dtype)  # row or column
    hk = horizontal[k]
    ak, bk = a[k], b[k]
    along = torch.where(hk, bk[:, 1] - ak[:, 1], bk[:, 0] - ak[:, 0])
    s = (line - torch.where(hk, ak[:, 1], ak[:, 0])) / along
    cross = torch.where(hk, ak[:, 0] + s * (bk[:, 0] - ak[:, 0]), ak[:, 1] + s * (bk[:, 1] - ak[:, 1]))
    width_line = torch.where(hk, torch.full_like(cross, w - 1), torch.full_like(cross, h - 1))
    p_lo = cross.floor()
    ok = (p_lo >= 0) & (p_lo + 1 <= width_line)
    # side of the lower pixel centre of the pair relative to the edge, vs the third vertex
    px_lo = torch.where(hk, p_lo, line)
    py_lo = torch.where(hk, line, p_lo)
    dxk, dyk = dx[k], dy[k]
    side_lo = dxk * (py_lo - ak[:, 1]) - dyk * (px_lo - ak[:, 0])
    lo_inside = (side_lo * side_c[k]) > 0
    ik = img[k]
    lo_flat = (ik * h + py_lo.long().clamp(0, h - 1)) * w + px_lo.long().clamp(0, w - 1)
    hi_flat = lo_flat + torch.where(hk, torch.ones_like(lo_flat), torch.full_like(lo_flat, w))
    inside = torch.where(lo_inside, lo_flat, hi_flat)
    outside = torch.where(lo_inside, hi_flat, lo_flat)
    z_e = 1.0 / ((1.0 - s) / ak[:, 2] + s / bk[:, 2])
    depth = fragments.depth.reshape(-1)
    # Pairs reaching past the image border are dropped by `ok`; clamp so indexing stays valid.
    last = depth.numel() - 1
    d_in, d_out = depth[inside.clamp(0, last)], depth[outside.clamp(0, last)]
    ok = ok & (d_out >= z_e * (1.0 - 1e-6)) & (d_in < d_out)
    sel = ok.nonzero().squeeze(1)
    if sel.numel() == 0:
        return empty, empty, empty.bool(), empty, empty
    # one crossing per pixel pair: the nearest edge
    pair_key = lo_flat[sel] * 2 + hk[sel].long()
    order = torch.argsort(z_e[sel])
    order = order[torch.argsort(pair_key[order], stable=True)]
    key_sorted = pair_key[order]
    keep = torch.ones_like(key_sorted, dtype=torch.bool)
    keep[1:] = key_sorted[1:] != key_sorted[:-1]
    sel = sel[order[keep]]
    return ik[sel], edge[k[sel]], hk[sel], inside[sel], outside[sel]


def antialias(
    color: torch.Tensor,
    fragments: Fragments,
    screen: torch.Tensor,
    faces: torch.Tensor,
    topology: MeshTopology | None = None,
    *,
    near: float = 1e-3,
) -> torch.Tensor:
    """Blend ``color`` across visible silhouette edges (differentiable w.r.t. positions).

    Args:
        color: (N, H, W, C) float image to antialias (e.g. one-hot labels, depth in metres with
            the background value filled in, RGB).
        fragments: rasteriser output of ``screen`` / ``faces``.
        screen: (N, V, 3) ``[u, v, z]`` with gradient (pixels, pixels, metres).
        faces: (F, 3) integer.
        topology: :func:`mesh_topology` of ``faces`` (computed when None; pass it to reuse).
        near: the rasteriser's near plane in metres (culled faces are not drawn).

    Returns:
        (N, H, W, C) in ``color``'s dtype.
    """
    n, h, w = fragments.shape
    if color.ndim != 4 or color.shape[:3] != (n, h, w):
        raise ValueError(f"color must be (N, H, W, C) with (N, H, W)={(n, h, w)}, got {tuple(color.shape)}")
    if screen.ndim != 3 or screen.shape[0] != n or screen.shape[-1] != 3:
        raise ValueError(f"screen must be (N={n}, V, 3), got {tuple(screen.shape)}")
    device = screen.device
    faces = faces.long().to(device)
    if topology is None:
        topology = mesh_topology(faces)
    topology = topology.to(device)
    with torch.no_grad():
        img, edge, hor, inside, outside = _silhouette_crossings(screen.detach(), fragments, faces, topology, near)
    if img.numel() == 0:
        return color
    ev = topology.edges[edge]
    a = screen[img, ev[:, 0]]
    b = screen[img, ev[:, 1]]
    rem = inside % (h * w)
    iy = (rem // w).to(screen.dtype)
    ix = (rem % w).to(screen.dtype)
    along = torch.where(hor, b[:, 1] - a[:, 1], b[:, 0] - a[:, 0])
    line = torch.where(hor, iy, ix)
    s = (line - torch.where(hor, a[:, 1], a[:, 0])) / along
    cross = torch.where(hor, a[:, 0] + s * (b[:, 0] - a[:, 0]), a[:, 1] + s * (b[:, 1] - a[:, 1]))
    t = (cross - torch.where(hor, ix, iy)).abs().to(color.dtype)[:, None]  # from the inside centre
    flat = color.reshape(-1, color.shape[-1])
    c_in, c_out = flat[inside], flat[outside]
    out = flat.index_add(0, outside, torch.relu(t - 0.5) * (c_in - c_out))
    out = out.index_add(0, inside, torch.relu(0.5 - t) * (c_out - c_in))
    return out.reshape(color.shape)
