"""Triangle-mesh utilities: normals and areas in torch (batched, differentiable), and
area-weighted surface sampling in numpy.

Faces are counter-clockwise seen from outside, so ``(v1 - v0) x (v2 - v0)`` points outward.
Degenerate (zero-area) faces get a zero normal rather than NaN; gradients stay finite.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch

__all__ = ["face_normals", "face_areas", "vertex_normals", "sample_surface", "SurfaceSamples", "farthest_vertex_subset"]

_EPS = 1e-12


def _check_mesh(verts: torch.Tensor, faces: torch.Tensor) -> None:
    if not isinstance(verts, torch.Tensor) or verts.dim() < 2 or verts.shape[-1] != 3:
        shape = tuple(verts.shape) if isinstance(verts, torch.Tensor) else type(verts).__name__
        raise ValueError(f"verts must have shape (..., V, 3), got {shape}")
    if not isinstance(faces, torch.Tensor) or faces.dim() != 2 or faces.shape[-1] != 3:
        shape = tuple(faces.shape) if isinstance(faces, torch.Tensor) else type(faces).__name__
        raise ValueError(f"faces must have shape (F, 3), got {shape}")
    if faces.dtype.is_floating_point:
        raise ValueError(f"faces must be an integer tensor, got {faces.dtype}")


def _face_cross(verts: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    faces = faces.to(device=verts.device, dtype=torch.long)
    v0 = verts[..., faces[:, 0], :]
    v1 = verts[..., faces[:, 1], :]
    v2 = verts[..., faces[:, 2], :]
    return torch.linalg.cross(v1 - v0, v2 - v0, dim=-1)


def _safe_normalize(x: torch.Tensor) -> torch.Tensor:
    # sqrt(sum^2 + eps^2) keeps the gradient finite at zero length (unlike norm().clamp()).
    length = torch.sqrt((x * x).sum(-1, keepdim=True) + _EPS**2)
    return x / length


def face_normals(verts: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """Unit face normals.

    Args:
        verts: (..., V, 3) float vertices (e.g. (B, V, 3)), any frame.
        faces: (F, 3) int triangles (counter-clockwise from outside).

    Returns:
        (..., F, 3) unit normals in the vertices' frame (zero for degenerate faces).
    """
    _check_mesh(verts, faces)
    return _safe_normalize(_face_cross(verts, faces))


def face_areas(verts: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """Triangle areas.

    Args:
        verts: (..., V, 3) float vertices, metres.
        faces: (F, 3) int triangles.

    Returns:
        (..., F) areas, square metres.
    """
    _check_mesh(verts, faces)
    cross = _face_cross(verts, faces)
    return 0.5 * torch.sqrt((cross * cross).sum(-1) + _EPS**2)


def vertex_normals(verts: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """Area-weighted unit vertex normals (sum of incident face cross products, normalised).

    Args:
        verts: (..., V, 3) float vertices (e.g. (B, V, 3)).
        faces: (F, 3) int triangles.

    Returns:
        (..., V, 3) unit normals (zero for vertices in no face).
    """
    _check_mesh(verts, faces)
    cross = _face_cross(verts, faces)  # (..., F, 3), length = 2 * area
    faces_l = faces.to(device=verts.device, dtype=torch.long)
    accum = torch.zeros_like(verts)
    for k in range(3):
        accum = accum.index_add(-2, faces_l[:, k], cross)
    return _safe_normalize(accum)


class SurfaceSamples(NamedTuple):
    """Points sampled on a triangle mesh.

    Attributes:
        points: (n, 3) float64 positions on the surface, in the mesh's frame and units.
        face_ids: (n,) int64 index of the face each point lies on.
        barycentric: (n, 3) float64 weights of the face's three vertices (rows sum to 1).
        normals: (n, 3) float64 unit normals of those faces.
    """

    points: np.ndarray
    face_ids: np.ndarray
    barycentric: np.ndarray
    normals: np.ndarray


def sample_surface(vertices: np.ndarray, faces: np.ndarray, n: int, seed: int = 0) -> SurfaceSamples:
    """Uniform (area-weighted) random points on a triangle mesh, deterministic for a seed.

    Args:
        vertices: (V, 3) float array.
        faces: (F, 3) int array (at least one face with positive area).
        n: number of points (>= 0).
        seed: seed of ``numpy.random.default_rng``.

    Returns:
        :class:`SurfaceSamples` with points, face ids, barycentric coordinates and face normals.
    """
    vertices = np.asarray(vertices, dtype=np.float64)
    faces = np.asarray(faces)
    if vertices.ndim != 2 or vertices.shape[1] != 3:
        raise ValueError(f"vertices must have shape (V, 3), got {vertices.shape}")
    if faces.ndim != 2 or faces.shape[1] != 3 or not np.issubdtype(faces.dtype, np.integer):
        raise ValueError(f"faces must be an integer array of shape (F, 3), got {faces.shape} {faces.dtype}")
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"n must be a non-negative int, got {n!r}")
    tri = vertices[faces]  # (F, 3, 3)
    cross = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    double_area = np.linalg.norm(cross, axis=1)
    total = double_area.sum()
    if not total > 0:
        raise ValueError("cannot sample a mesh with zero surface area")
    rng = np.random.default_rng(seed)
    face_ids = rng.choice(len(faces), size=int(n), p=double_area / total).astype(np.int64)
    r1 = np.sqrt(rng.random(int(n)))
    r2 = rng.random(int(n))
    bary = np.stack([1.0 - r1, r1 * (1.0 - r2), r1 * r2], axis=1)
    points = np.einsum("nk,nkd->nd", bary, tri[face_ids])
    normals = cross[face_ids] / np.maximum(double_area[face_ids], 1e-300)[:, None]
    return SurfaceSamples(points=points, face_ids=face_ids, barycentric=bary, normals=normals)


def farthest_vertex_subset(vertices: np.ndarray, count: int, seed: int = 0) -> np.ndarray:
    """(count,) indices of ``vertices`` (V, 3) spread by farthest-point sampling."""
    V = np.asarray(vertices, dtype=np.float64)
    count = min(int(count), len(V))
    chosen = [int(np.random.default_rng(seed).integers(len(V)))]
    d = np.full(len(V), np.inf)
    for _ in range(count - 1):
        d = np.minimum(d, np.linalg.norm(V - V[chosen[-1]], axis=1))
        chosen.append(int(np.argmax(d)))
    return np.sort(np.asarray(chosen, dtype=np.int64))
