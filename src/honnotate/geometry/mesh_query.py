"""Closest points and signed distances to a triangle mesh (NVIDIA warp BVH, CPU and CUDA).

Used by grasp synthesis (penetration of hand vertices into the object), the 3D point-to-mesh
term and the interpenetration term. Queries carry no gradient; the energy terms differentiate
``dot(p - closest, normal)`` with the closest point and normal held fixed, which is the exact
gradient of the distance almost everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["MeshQuery", "ClosestPoints"]

_KERNEL = None
_KERNEL_UNSIGNED = None


def _warp():
    from honnotate._warp import quiet_warp

    return quiet_warp()


def _kernel():
    global _KERNEL
    if _KERNEL is None:
        wp = _warp()

        @wp.kernel
        def closest_kernel(mesh: wp.uint64, pts: wp.array(dtype=wp.vec3), max_dist: float,
                           out_point: wp.array(dtype=wp.vec3), out_sign: wp.array(dtype=float),
                           out_face: wp.array(dtype=wp.int32), out_normal: wp.array(dtype=wp.vec3)):
            tid = wp.tid()
            p = pts[tid]
            q = wp.mesh_query_point_sign_winding_number(mesh, p, max_dist, 2.0, 0.5)
            if q.result:
                out_point[tid] = wp.mesh_eval_position(mesh, q.face, q.u, q.v)
                out_sign[tid] = q.sign
                out_face[tid] = q.face
                out_normal[tid] = wp.mesh_eval_face_normal(mesh, q.face)
            else:
                out_face[tid] = -1
                out_sign[tid] = 1.0

        _KERNEL = closest_kernel
    return _KERNEL


def _kernel_unsigned():
    global _KERNEL_UNSIGNED
    if _KERNEL_UNSIGNED is None:
        wp = _warp()

        @wp.kernel
        def closest_unsigned_kernel(mesh: wp.uint64, pts: wp.array(dtype=wp.vec3), max_dist: float,
                                    out_point: wp.array(dtype=wp.vec3), out_sign: wp.array(dtype=float),
                                    out_face: wp.array(dtype=wp.int32), out_normal: wp.array(dtype=wp.vec3)):
            tid = wp.tid()
            p = pts[tid]
            q = wp.mesh_query_point_no_sign(mesh, p, max_dist)
            if q.result:
                c = wp.mesh_eval_position(mesh, q.face, q.u, q.v)
                n = wp.mesh_eval_face_normal(mesh, q.face)
                out_point[tid] = c
                out_face[tid] = q.face
                out_normal[tid] = n
                # sign from the closest face's normal (exact away from edges; no winding number)
                if wp.dot(p - c, n) < 0.0:
                    out_sign[tid] = -1.0
                else:
                    out_sign[tid] = 1.0
            else:
                out_face[tid] = -1
                out_sign[tid] = 1.0

        _KERNEL_UNSIGNED = closest_unsigned_kernel
    return _KERNEL_UNSIGNED


@dataclass(frozen=True)
class ClosestPoints:
    """Result of :meth:`MeshQuery.closest` for N query points (numpy, float64, metres).

    points: (N, 3) closest surface points; face: (N,) int face ids (-1 beyond ``max_dist``);
    normal: (N, 3) outward unit face normals there; signed_distance: (N,) > 0 inside the mesh.
    """

    points: np.ndarray
    face: np.ndarray
    normal: np.ndarray
    signed_distance: np.ndarray


class MeshQuery:
    """BVH over one triangle mesh (vertices (V, 3) metres, faces (F, 3)); build once, query often.

    The mesh should be closed (watertight) for the inside/outside sign to be meaningful; the
    sign follows the generalised winding number (robust also at points equidistant from
    several faces, and for slightly open meshes).
    """

    def __init__(self, vertices: np.ndarray, faces: np.ndarray, device: str = "cpu", winding: bool = True) -> None:
        vertices = np.ascontiguousarray(np.asarray(vertices, dtype=np.float32))
        faces = np.ascontiguousarray(np.asarray(faces, dtype=np.int32))
        if vertices.ndim != 2 or vertices.shape[1] != 3:
            raise ValueError(f"vertices: expected (V, 3), got {vertices.shape}")
        if faces.ndim != 2 or faces.shape[1] != 3 or len(faces) == 0:
            raise ValueError(f"faces: expected (F, 3) with F > 0, got {faces.shape}")
        wp = _warp()
        self._wp = wp
        self.device = device
        self._points = wp.array(vertices, dtype=wp.vec3, device=device)
        self._indices = wp.array(faces.reshape(-1), dtype=wp.int32, device=device)
        self._mesh = wp.Mesh(points=self._points, indices=self._indices, support_winding_number=winding)
        self._winding = winding

    def closest(self, points: np.ndarray, max_dist: float = 10.0, winding: bool = True) -> ClosestPoints:
        """Closest surface points of ``points`` (N, 3) metres (see :class:`ClosestPoints`).

        ``winding=False`` skips the generalised winding number (several times faster); the sign
        then comes from the closest face's normal, which can be wrong at points nearest to an
        edge or vertex of a concave region."""
        if winding and not self._winding:
            raise ValueError("MeshQuery.closest(winding=True) needs a MeshQuery built with winding=True")
        pts = np.ascontiguousarray(np.asarray(points, dtype=np.float32).reshape(-1, 3))
        n = len(pts)
        wp = self._wp
        if n == 0:
            z = np.zeros((0, 3))
            return ClosestPoints(z, np.zeros(0, dtype=np.int64), z, np.zeros(0))
        p = wp.array(pts, dtype=wp.vec3, device=self.device)
        out_p = wp.zeros(n, dtype=wp.vec3, device=self.device)
        out_s = wp.zeros(n, dtype=float, device=self.device)
        out_f = wp.zeros(n, dtype=wp.int32, device=self.device)
        out_n = wp.zeros(n, dtype=wp.vec3, device=self.device)
        wp.launch(_kernel() if winding else _kernel_unsigned(), dim=n, inputs=[self._mesh.id, p, float(max_dist), out_p, out_s, out_f, out_n],
                  device=self.device)
        cp = out_p.numpy().astype(np.float64)
        sign = out_s.numpy().astype(np.float64)
        dist = np.linalg.norm(pts.astype(np.float64) - cp, axis=1)
        face = out_f.numpy().astype(np.int64)
        dist[face < 0] = np.inf
        return ClosestPoints(points=cp, face=face, normal=out_n.numpy().astype(np.float64),
                             signed_distance=-sign * dist)

    def signed_distance(self, points: np.ndarray, max_dist: float = 10.0) -> np.ndarray:
        """(N,) signed distances of ``points`` (N, 3): > 0 inside the mesh, metres."""
        return self.closest(points, max_dist).signed_distance
