"""Point clouds from depth + segmentation, and mesh correspondences for E_3D and E_phy.

- :func:`segmented_point_clouds` / :func:`point_clouds_from_sequence`: the hand and object
  point clouds of one frame, fused over cameras in the world frame (paper Sec. 3.2, E_3D).
- :func:`point_to_surface_energy`: the pure E_3D term given fixed correspondences (face id +
  barycentric coordinates): the matched surface point is re-evaluated on the *posed* mesh, so it
  moves with the mesh and the gradient reaches the pose.
- :class:`SurfaceCorrespondences`: the small stateful helper that re-finds the closest faces
  every ``refresh_every`` calls (warp BVH, no gradient) and gates outliers.
- :class:`ObjectSurfaceQuery`: closest object surface points and normals in the object frame
  (for E_phy; the object mesh is rigid, so its BVH is built once).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from honnotate.annotate.robust import RobustKind, robust_sq
from honnotate.annotate.terms import HAND_LABEL, OBJECT_LABEL, valid_depth
from honnotate.geometry.mesh_query import MeshQuery

__all__ = [
    "segmented_point_clouds",
    "point_clouds_from_sequence",
    "barycentric_coordinates",
    "point_to_surface_energy",
    "SurfaceCorrespondences",
    "ObjectSurfaceQuery",
    "pad_clouds",
]


def _shape(x) -> tuple:
    return tuple(x.shape) if isinstance(x, (torch.Tensor, np.ndarray)) else (type(x).__name__,)


def segmented_point_clouds(depth: torch.Tensor, segmentation: torch.Tensor, K: torch.Tensor,
                           cam_to_world: torch.Tensor, max_depth: float = 0.75, stride: int = 1,
                           labels: Sequence[int] = (OBJECT_LABEL, HAND_LABEL)) -> dict[int, torch.Tensor]:
    """Per-label point clouds of one frame fused over C cameras (world frame).

    Args:
        depth: (C, H, W) float metres (0 = no measurement; beyond ``max_depth`` ignored).
        segmentation: (C, H, W) integer labels (0 background, 1 object, 2 hand).
        K: (C, 3, 3) pixels. cam_to_world: (C, 4, 4) camera(OpenCV)-to-world, metres.
        stride: keep every ``stride``-th pixel in u and v (subsampling).

    Returns:
        label -> (N_label, 3) points, metres, world frame, dtype of ``depth``.
    """
    if not isinstance(depth, torch.Tensor) or depth.ndim != 3:
        raise ValueError(f"depth: expected (C, H, W) metres, got {_shape(depth)}")
    C, H, W = depth.shape
    if not isinstance(segmentation, torch.Tensor) or tuple(segmentation.shape) != (C, H, W):
        raise ValueError(f"segmentation: expected (C, H, W) = ({C}, {H}, {W}), got {_shape(segmentation)}")
    if not isinstance(K, torch.Tensor) or tuple(K.shape) != (C, 3, 3):
        raise ValueError(f"K: expected ({C}, 3, 3), got {_shape(K)}")
    if not isinstance(cam_to_world, torch.Tensor) or tuple(cam_to_world.shape) != (C, 4, 4):
        raise ValueError(f"cam_to_world: expected ({C}, 4, 4), got {_shape(cam_to_world)}")
    if not isinstance(stride, int) or stride < 1:
        raise ValueError(f"stride: expected an int >= 1, got {stride!r}")
    d = depth[:, ::stride, ::stride]
    seg = segmentation[:, ::stride, ::stride].to(depth.device)
    v, u = torch.meshgrid(torch.arange(0, H, stride, device=depth.device, dtype=depth.dtype),
                          torch.arange(0, W, stride, device=depth.device, dtype=depth.dtype), indexing="ij")
    Kd = K.to(depth)
    T = cam_to_world.to(depth)
    fx, fy = Kd[:, 0, 0, None, None], Kd[:, 1, 1, None, None]
    cx, cy, sk = Kd[:, 0, 2, None, None], Kd[:, 1, 2, None, None], Kd[:, 0, 1, None, None]
    yn = (v - cy) / fy
    xn = (u - cx - sk * yn) / fx
    cam = torch.stack([xn * d, yn * d, d], dim=-1)  # (C, h, w, 3)
    world = torch.einsum("cij,chwj->chwi", T[:, :3, :3], cam) + T[:, None, None, :3, 3]
    ok = valid_depth(d, max_depth)
    return {int(k): world[ok & (seg == k)] for k in labels}


def point_clouds_from_sequence(sequence, frame, cameras: Sequence[str] | None = None, max_depth: float = 0.75,
                               stride: int = 1, dtype: torch.dtype = torch.float32) -> dict[int, torch.Tensor]:
    """:func:`segmented_point_clouds` of one frame of a :class:`~honnotate.io.CaptureSequence`.

    Cameras without a depth map or a segmentation cue for the frame are skipped.

    Returns:
        label (1 object, 2 hand) -> (N, 3) points, metres, world frame (CPU, ``dtype``).
    """
    cams = list(cameras) if cameras is not None else list(sequence.camera_ids)
    out: dict[int, list[torch.Tensor]] = {OBJECT_LABEL: [], HAND_LABEL: []}
    for cid in cams:
        seg = sequence.segmentation(cid, frame)
        if seg is None or sequence.path("depth", cid, frame) is None:
            continue
        depth = torch.as_tensor(np.asarray(sequence.depth(cid, frame)), dtype=dtype)
        cam = sequence.cameras[cid]
        if tuple(seg.shape) != tuple(depth.shape):
            raise ValueError(f"camera {cid!r} frame {frame!r}: segmentation {seg.shape} and depth "
                             f"{tuple(depth.shape)} differ in size")
        clouds = segmented_point_clouds(depth[None], torch.as_tensor(np.asarray(seg))[None], cam.K.to(dtype)[None],
                                        cam.cam_to_world.to(dtype)[None], max_depth, stride)
        for k, p in clouds.items():
            out[k].append(p)
    return {k: (torch.cat(v) if v else torch.zeros(0, 3, dtype=dtype)) for k, v in out.items()}


def pad_clouds(clouds: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack B clouds (N_b, 3) into (B, N_max, 3) with a (B, N_max) bool validity mask."""
    if not clouds:
        raise ValueError("clouds: expected at least one (N, 3) cloud")
    n = max(int(c.shape[0]) for c in clouds)
    ref = clouds[0]
    out = ref.new_zeros(len(clouds), n, 3)
    mask = torch.zeros(len(clouds), n, dtype=torch.bool, device=ref.device)
    for b, c in enumerate(clouds):
        if c.ndim != 2 or c.shape[-1] != 3:
            raise ValueError(f"clouds[{b}]: expected (N, 3), got {_shape(c)}")
        out[b, : c.shape[0]] = c
        mask[b, : c.shape[0]] = True
    return out, mask


def barycentric_coordinates(points: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """Barycentric coordinates of points in the planes of their triangles (least squares).

    Args:
        points: (N, 3). triangles: (N, 3, 3) vertex positions (rows a, b, c).

    Returns:
        (N, 3) float64 weights summing to 1 (exact for points on the triangle).
    """
    p = np.asarray(points, dtype=np.float64)
    tri = np.asarray(triangles, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] != 3 or tri.shape != (len(p), 3, 3):
        raise ValueError(f"points (N, 3) and triangles (N, 3, 3) expected, got {p.shape} and {tri.shape}")
    a, b, c = tri[:, 0], tri[:, 1], tri[:, 2]
    v0, v1, v2 = b - a, c - a, p - a
    d00 = (v0 * v0).sum(1)
    d01 = (v0 * v1).sum(1)
    d11 = (v1 * v1).sum(1)
    d20 = (v2 * v0).sum(1)
    d21 = (v2 * v1).sum(1)
    den = d00 * d11 - d01 * d01
    den = np.where(np.abs(den) > 1e-30, den, 1.0)  # degenerate triangle: fall back to vertex a
    v = (d11 * d20 - d01 * d21) / den
    w = (d00 * d21 - d01 * d20) / den
    return np.stack([1.0 - v - w, v, w], axis=1)


def point_to_surface_energy(vertices: torch.Tensor, faces: torch.Tensor, points: torch.Tensor,
                            face_ids: torch.Tensor, bary: torch.Tensor, weights: torch.Tensor,
                            kind: RobustKind = "l2", scale: float = 0.01, normalize: bool = True) -> torch.Tensor:
    """E_3D for fixed correspondences (paper Eq. 7 with point-to-surface matches).

    The matched surface point of observed point ``P_j`` is ``sum_k bary_jk V[faces[f_j, k]]`` on the
    posed mesh (it moves with the mesh); the energy is ``sum_j w_j rho(|P_j - q_j|^2)``, divided
    by ``sum_j w_j`` when ``normalize`` (a mean, as the reference code).

    Args:
        vertices: (B, V, 3) posed mesh vertices, metres, world frame; differentiable.
        faces: (F, 3) integer triangles.
        points: (B, N, 3) observed points, metres, world frame.
        face_ids: (B, N) integer face per point. bary: (B, N, 3) barycentric coordinates.
        weights: (B, N) float/bool (0: padding or gated outlier).
        kind, scale: robust penalty (default squared distance) and its threshold, metres.

    Returns:
        (B,) energy, metres^2 (l2).
    """
    if not isinstance(vertices, torch.Tensor) or vertices.ndim != 3 or vertices.shape[-1] != 3:
        raise ValueError(f"vertices: expected (B, V, 3), got {_shape(vertices)}")
    B = vertices.shape[0]
    if not isinstance(points, torch.Tensor) or points.ndim != 3 or points.shape[0] != B or points.shape[-1] != 3:
        raise ValueError(f"points: expected (B, N, 3) with B={B}, got {_shape(points)}")
    N = points.shape[1]
    if tuple(face_ids.shape) != (B, N) or tuple(bary.shape) != (B, N, 3) or tuple(weights.shape) != (B, N):
        raise ValueError(f"face_ids (B, N), bary (B, N, 3), weights (B, N) expected with B={B}, N={N}, got "
                         f"{_shape(face_ids)}, {_shape(bary)}, {_shape(weights)}")
    f = faces.to(vertices.device).long()[face_ids.to(vertices.device).long().clamp(min=0)]  # (B, N, 3)
    tri = torch.gather(vertices, 1, f.reshape(B, -1)[..., None].expand(-1, -1, 3)).reshape(B, N, 3, 3)
    q = (bary.to(vertices)[..., None] * tri).sum(2)
    w = weights.to(vertices)
    e = (w * robust_sq(((points.to(vertices) - q) ** 2).sum(-1), kind, scale)).sum(-1)
    if normalize:
        e = e / torch.clamp(w.sum(-1), min=1.0)
    return e


class SurfaceCorrespondences:
    """E_3D with closest faces re-found every ``refresh_every`` calls and an outlier gate.

    Between refreshes the face ids and barycentric coordinates stay fixed (so the energy is a
    smooth function of the pose); at a refresh, points farther than ``gate`` metres from the
    current (detached) posed mesh get weight 0.

    Args:
        faces: (F, 3) integer triangles of the mesh (hand or object).
        refresh_every: calls between closest-face searches (1: every call).
        gate: outlier distance, metres.
        kind, scale: robust penalty on the squared distance (see :func:`point_to_surface_energy`).
    """

    def __init__(self, faces, refresh_every: int = 5, gate: float = 0.02, kind: RobustKind = "l2",
                 scale: float = 0.01) -> None:
        f = np.asarray(faces.detach().cpu() if isinstance(faces, torch.Tensor) else faces, dtype=np.int64)
        if f.ndim != 2 or f.shape[1] != 3 or len(f) == 0:
            raise ValueError(f"faces: expected (F, 3) with F > 0, got {f.shape}")
        if refresh_every < 1 or not gate > 0:
            raise ValueError(f"refresh_every >= 1 and gate > 0 expected, got {refresh_every}, {gate}")
        self.faces = f
        self.refresh_every = int(refresh_every)
        self.gate = float(gate)
        self.kind = kind
        self.scale = float(scale)
        self.calls = 0
        self._cache: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None
        self._key: tuple | None = None

    def reset(self) -> None:
        """Forget the correspondences (the next call re-finds them)."""
        self._cache, self._key, self.calls = None, None, 0

    def refresh(self, vertices: torch.Tensor, points: torch.Tensor, mask: torch.Tensor | None = None) -> None:
        """Re-find the closest faces of ``points`` (B, N, 3) on the posed ``vertices`` (B, V, 3)."""
        B, N = points.shape[:2]
        verts = vertices.detach().cpu().double().numpy()
        pts = points.detach().cpu().double().numpy()
        valid = np.ones((B, N), bool) if mask is None else mask.detach().cpu().numpy().astype(bool)
        face_ids = np.zeros((B, N), np.int64)
        bary = np.zeros((B, N, 3))
        bary[..., 0] = 1.0
        w = np.zeros((B, N))
        for b in range(B):
            sel = np.flatnonzero(valid[b])
            if len(sel) == 0:
                continue
            cp = MeshQuery(verts[b], self.faces, winding=False).closest(pts[b, sel], max_dist=self.gate, winding=False)
            found = cp.face >= 0
            dist = np.linalg.norm(pts[b, sel] - cp.points, axis=1)
            inlier = found & (dist <= self.gate)
            idx = sel[inlier]
            face_ids[b, idx] = cp.face[inlier]
            bary[b, idx] = barycentric_coordinates(cp.points[inlier], verts[b][self.faces[cp.face[inlier]]])
            w[b, idx] = 1.0
        dev = vertices.device
        self._cache = (torch.as_tensor(face_ids, device=dev), torch.as_tensor(bary, device=dev),
                       torch.as_tensor(w, device=dev))
        self._key = (B, N)

    def __call__(self, vertices: torch.Tensor, points: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """E_3D (B,) of observed ``points`` (B, N, 3) (``mask`` (B, N) valid) against the posed mesh
        ``vertices`` (B, V, 3), metres, world frame; see :func:`point_to_surface_energy`."""
        if not isinstance(points, torch.Tensor) or points.ndim != 3 or points.shape[-1] != 3:
            raise ValueError(f"points: expected (B, N, 3), got {_shape(points)}")
        if self._cache is None or self._key != tuple(points.shape[:2]) or self.calls % self.refresh_every == 0:
            self.refresh(vertices, points, mask)
        self.calls += 1
        face_ids, bary, w = self._cache
        return point_to_surface_energy(vertices, torch.as_tensor(self.faces, device=vertices.device), points,
                                       face_ids, bary, w, self.kind, self.scale)

    @property
    def inlier_weights(self) -> torch.Tensor | None:
        """(B, N) weights of the last refresh (1 inlier, 0 gated / padding), or None."""
        return None if self._cache is None else self._cache[2]


class ObjectSurfaceQuery:
    """Closest surface points and outward normals of a rigid object, in the object frame.

    Args:
        vertices: (V, 3) object-frame vertices, metres. faces: (F, 3) counter-clockwise from outside.
    """

    def __init__(self, vertices, faces) -> None:
        # one BVH for these correspondences and the object ICP (``.query``): both use unsigned
        # closest points, so no winding-number data is built
        self.query = MeshQuery(np.asarray(vertices, dtype=np.float64), np.asarray(faces, dtype=np.int64),
                               winding=False)

    def __call__(self, points_object: torch.Tensor, max_dist: float = 1.0) -> tuple[torch.Tensor, torch.Tensor,
                                                                                    torch.Tensor]:
        """Correspondences of (B, M, 3) object-frame points (no gradient).

        Returns:
            ``(closest, normals, found)``: (B, M, 3) surface points (metres, object frame),
            (B, M, 3) unit outward face normals, (B, M) float 1 where a face was found within
            ``max_dist``; dtype/device of ``points_object``.
        """
        if not isinstance(points_object, torch.Tensor) or points_object.ndim != 3 or points_object.shape[-1] != 3:
            raise ValueError(f"points_object: expected (B, M, 3), got {_shape(points_object)}")
        B, M, _ = points_object.shape
        cp = self.query.closest(points_object.detach().cpu().double().numpy().reshape(-1, 3), max_dist,
                                winding=False)
        like = points_object
        closest = torch.as_tensor(cp.points.reshape(B, M, 3), dtype=like.dtype, device=like.device)
        normals = torch.as_tensor(cp.normal.reshape(B, M, 3), dtype=like.dtype, device=like.device)
        found = torch.as_tensor((cp.face >= 0).reshape(B, M), dtype=like.dtype, device=like.device)
        return closest, normals, found

