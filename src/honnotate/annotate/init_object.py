"""Automatic object pose initialisation and frame-to-frame tracking from depth.

- :func:`object_pose_from_meta`: the rough first-frame pose of ``meta.yaml`` when given.
- :func:`align_object_to_cloud`: multi-hypothesis alignment of the object mesh to the
  segmented object point cloud of one camera: the mesh centred on the cloud centroid pushed
  back along the viewing ray, many start rotations (Fibonacci sphere x in-plane angles), a few
  point-to-plane ICP iterations each (closest surface points from the warp BVH), scored by a
  robust residual plus a free-space penalty (mesh surface in front of observed depth); the
  best is refined further.
- :func:`refine_object_pose_icp`: ICP from a warm start (frame-to-frame tracking; the
  pipeline then refines with the renderer).

Poses are object-to-world: ``x_world = R(rotvec) x_object + transl`` (metres, radians).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import roma
import torch

from honnotate.geometry.mesh import farthest_vertex_subset, sample_surface
from honnotate.geometry.mesh_query import MeshQuery

__all__ = [
    "ObjectAlignment",
    "rotation_grid",
    "object_pose_from_meta",
    "icp_point_to_plane",
    "refine_object_pose_icp",
    "align_object_to_cloud",
    "object_pose_candidates",
]


@dataclass(frozen=True)
class ObjectAlignment:
    """rotvec (3,) radians and transl (3,) metres (object-to-world, float64 numpy); residual: RMS
    point-to-surface distance of the inlier cloud points (metres); inlier_fraction: fraction of
    cloud points within the gate; free_space: fraction of visible mesh samples in front of the
    observed depth (0 without a depth map)."""

    rotvec: np.ndarray
    transl: np.ndarray
    residual: float
    inlier_fraction: float
    free_space: float


def rotation_grid(num_directions: int = 30, num_inplane: int = 4) -> np.ndarray:
    """(num_directions * num_inplane, 3, 3) rotations covering SO(3) roughly uniformly.

    The third column runs over a Fibonacci sphere of ``num_directions`` directions, and for
    each direction ``num_inplane`` rotations about it (equally spaced angles).
    """
    if num_directions < 1 or num_inplane < 1:
        raise ValueError(f"num_directions and num_inplane must be >= 1, got {num_directions}, {num_inplane}")
    i = np.arange(num_directions) + 0.5
    phi = np.arccos(1 - 2 * i / num_directions)
    theta = np.pi * (1 + 5 ** 0.5) * i
    z = np.stack([np.cos(theta) * np.sin(phi), np.sin(theta) * np.sin(phi), np.cos(phi)], -1)
    ref = np.where(np.abs(z[:, :1]) > 0.9, [[0.0, 1.0, 0.0]], [[1.0, 0.0, 0.0]])
    x = np.cross(ref, z)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    y = np.cross(z, x)
    base = np.stack([x, y, z], axis=-1)
    out = []
    for a in np.arange(num_inplane) * (2 * np.pi / num_inplane):
        c, s = np.cos(a), np.sin(a)
        out.append(base @ np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]]))
    return np.concatenate(out)


def object_pose_from_meta(meta) -> tuple[np.ndarray, np.ndarray] | None:
    """(rotvec (3,), transl (3,)) from ``SequenceMeta.object_rotvec_init/object_trans_init``, or None."""
    if getattr(meta, "object_rotvec_init", None) is None or getattr(meta, "object_trans_init", None) is None:
        return None
    return np.asarray(meta.object_rotvec_init, dtype=np.float64), np.asarray(meta.object_trans_init, dtype=np.float64)


def _skew_exp(w: np.ndarray) -> np.ndarray:
    return roma.rotvec_to_rotmat(torch.as_tensor(w, dtype=torch.float64)).numpy()


def icp_point_to_plane(query: MeshQuery, cloud: np.ndarray, R: np.ndarray, t: np.ndarray, iterations: int = 10,
                       gate: float | np.ndarray = 0.03) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Batched point-to-plane ICP of H pose hypotheses of one rigid mesh to one point cloud.

    Args:
        query: BVH of the object mesh in its own frame.
        cloud: (N, 3) observed points, metres (the frame the poses map into).
        R: (H, 3, 3), t: (H, 3) object-to-cloud-frame start poses.
        gate: outlier distance, metres (a scalar, or (iterations,) a schedule).

    Returns:
        ``(R, t, dist, inlier)``: refined (H, 3, 3), (H, 3); (H, N) final point-to-surface
        distances and (H, N) bool inliers (distance <= last gate).
    """
    cloud = np.asarray(cloud, dtype=np.float64)
    R = np.array(R, dtype=np.float64)
    t = np.array(t, dtype=np.float64)
    H, N = R.shape[0], cloud.shape[0]
    gates = np.broadcast_to(np.asarray(gate, dtype=np.float64), (max(iterations, 1),))
    dist = np.full((H, N), np.inf)
    inl = np.zeros((H, N), bool)
    for it in range(iterations + 1):
        p_o = np.einsum("hji,hnj->hni", R, cloud[None] - t[:, None])  # R^T (p - t)
        cp = query.closest(p_o.reshape(-1, 3), max_dist=1.0, winding=False)
        q_o = cp.points.reshape(H, N, 3)
        n_o = cp.normal.reshape(H, N, 3)
        dist = np.linalg.norm(p_o - q_o, axis=-1)
        dist[cp.face.reshape(H, N) < 0] = np.inf
        g = gates[min(it, len(gates) - 1)]
        inl = dist <= g
        if it == iterations:
            break
        q = np.einsum("hij,hnj->hni", R, q_o) + t[:, None]
        n = np.einsum("hij,hnj->hni", R, n_o)
        A = np.concatenate([np.cross(q, n), n], axis=-1)  # (H, N, 6)
        b = -np.einsum("hni,hni->hn", n, q - cloud[None])
        w = inl.astype(np.float64)
        AtA = np.einsum("hn,hni,hnj->hij", w, A, A) + 1e-9 * np.eye(6)
        Atb = np.einsum("hn,hni,hn->hi", w, A, b)
        x = np.linalg.solve(AtA, Atb[..., None])[..., 0]
        dR = _skew_exp(x[:, :3])
        R = dR @ R
        t = np.einsum("hij,hj->hi", dR, t) + x[:, 3:]
    return R, t, dist, inl


def refine_object_pose_icp(vertices: np.ndarray, faces: np.ndarray, cloud: np.ndarray, rotvec: np.ndarray,
                           transl: np.ndarray, iterations: int = 15, gate: float = 0.02,
                           query: MeshQuery | None = None) -> ObjectAlignment:
    """Frame-to-frame tracking step: ICP from a warm start (the previous frame's pose).

    Args:
        vertices: (V, 3) object-frame mesh, metres; faces: (F, 3).
        cloud: (N, 3) segmented object points, metres, world frame.
        rotvec, transl: (3,) warm start, object-to-world.
        query: a prebuilt :class:`MeshQuery` of the mesh (built when None).

    Returns:
        :class:`ObjectAlignment` (``free_space`` 0: not evaluated).
    """
    cloud = _check_cloud(cloud)
    q = query if query is not None else MeshQuery(vertices, faces)
    R0 = roma.rotvec_to_rotmat(torch.as_tensor(np.asarray(rotvec, dtype=np.float64).reshape(3))).numpy()[None]
    R, t, dist, inl = icp_point_to_plane(q, cloud, R0, np.asarray(transl, dtype=np.float64).reshape(1, 3),
                                         iterations, gate)
    res = float(np.sqrt(np.mean(dist[0][inl[0]] ** 2))) if inl[0].any() else float("inf")
    return ObjectAlignment(roma.rotmat_to_rotvec(torch.as_tensor(R[0])).numpy(), t[0], res,
                           float(inl[0].mean()), 0.0)


def _check_cloud(cloud) -> np.ndarray:
    c = np.asarray(cloud.detach().cpu() if isinstance(cloud, torch.Tensor) else cloud, dtype=np.float64)
    if c.ndim != 2 or c.shape[1] != 3:
        raise ValueError(f"cloud: expected (N, 3) points, got {c.shape}")
    if len(c) < 10:
        raise ValueError(f"cloud: only {len(c)} object points; the object mask or depth is empty in this frame")
    return c


def _free_space(samples: np.ndarray, normals: np.ndarray, R: np.ndarray, t: np.ndarray, K: np.ndarray,
                depth: np.ndarray, margin: float, max_depth: float, labels: np.ndarray | None = None) -> np.ndarray:
    """(H,) fraction of camera-facing mesh samples lying more than ``margin`` in front of observed
    depth, or (with ``labels``, (H, W) segmentation of the depth map's size) projecting onto a
    pixel segmented as background."""
    p = np.einsum("hij,nj->hni", R, samples) + t[:, None]  # camera frame
    n = np.einsum("hij,nj->hni", R, normals)
    facing = np.einsum("hni,hni->hn", p, n) < 0
    z = p[..., 2]
    zc = np.where(z > 1e-6, z, 1e-6)
    u = np.rint(K[0, 0] * p[..., 0] / zc + K[0, 1] * p[..., 1] / zc + K[0, 2]).astype(np.int64)
    v = np.rint(K[1, 1] * p[..., 1] / zc + K[1, 2]).astype(np.int64)
    Hh, Ww = depth.shape
    inside = (u >= 0) & (u < Ww) & (v >= 0) & (v < Hh) & (z > 1e-6)
    d = np.where(inside, depth[np.clip(v, 0, Hh - 1), np.clip(u, 0, Ww - 1)], 0.0)
    valid = facing & inside & (d > 0) & (d <= max_depth)
    bad = valid & (z < d - margin)
    if labels is not None:
        lab = np.where(inside, labels[np.clip(v, 0, Hh - 1), np.clip(u, 0, Ww - 1)], 255)
        bad |= facing & inside & (lab == 0)
    return bad.sum(1) / np.maximum(facing.sum(1), 1)


def align_object_to_cloud(vertices: np.ndarray, faces: np.ndarray, cloud, world_to_cam, K=None, depth=None,
                          num_directions: int = 40, num_inplane: int = 4, icp_iterations: int = 12,
                          refine_iterations: int = 20, gate: float = 0.02, start_gate: float = 0.08,
                          push_back: float = 0.3, free_space_weight: float = 4.0, max_depth: float = 0.75,
                          keep: int = 8, max_points: int = 400, seed: int = 0) -> ObjectAlignment:
    """Object pose from its segmented point cloud in one camera (no initial pose needed): the
    best of :func:`object_pose_candidates` (see there for the arguments)."""
    return object_pose_candidates(vertices, faces, cloud, world_to_cam, K, depth, num_directions, num_inplane,
                                  icp_iterations, refine_iterations, gate, start_gate, push_back, free_space_weight,
                                  max_depth, keep, max_points, seed)[0]


def object_pose_candidates(vertices: np.ndarray, faces: np.ndarray, cloud, world_to_cam, K=None, depth=None,
                           num_directions: int = 40, num_inplane: int = 4, icp_iterations: int = 12,
                           refine_iterations: int = 20, gate: float = 0.02, start_gate: float = 0.08,
                           push_back: float = 0.3, free_space_weight: float = 4.0, max_depth: float = 0.75,
                           keep: int = 8, max_points: int = 400, seed: int = 0, anchors: int = 0,
                           labels=None) -> list[ObjectAlignment]:
    """Object pose hypotheses from its segmented point cloud (no initial pose needed), best first.

    Args:
        vertices: (V, 3) object-frame mesh, metres; faces: (F, 3) (outward normals).
        cloud: (N, 3) object points, metres, world frame (e.g. from
            :func:`~honnotate.annotate.correspondence.segmented_point_clouds`).
        world_to_cam: (4, 4) world-to-camera (OpenCV) of the camera that saw the cloud.
        K: (3, 3) intrinsics, pixels, and depth: (H, W) observed depth, metres, of that camera
            (both or neither; enable the free-space penalty).
        num_directions x num_inplane: start rotations (default 40 x 4 = 160).
        gate, start_gate: ICP outlier distance at the end / start of the schedule, metres.
        push_back: start centre = cloud centroid + push_back * radius along the viewing ray.
        free_space_weight: weight of the free-space fraction in the score (relative to the
            squared robust residual normalised by gate^2).
        keep: hypotheses refined with ``refine_iterations`` more ICP iterations.
        max_points: cloud subsample size for the hypothesis stage.
        anchors: also start with the cloud centroid on each of ``anchors`` surface points spread
            over the mesh (for partial views, where the visible patch can be anywhere on the
            object); 0: only the mesh centre pushed back along the ray.
        labels: (H, W) segmentation of ``depth`` (0 background, 1 object, 2 hand): mesh samples
            projecting onto background pixels count as free-space violations (catches poses
            that stick out of the silhouette where the background depth is missing).

    Returns:
        ``keep`` :class:`ObjectAlignment` (object-to-world), sorted by score (best first). Near
        duplicates are kept; a caller scoring them with the renderer removes the ambiguity of
        shapes whose point clouds fit several poses (180-degree flips).
    """
    cloud = _check_cloud(cloud)
    V = np.asarray(vertices, dtype=np.float64)
    F_ = np.asarray(faces, dtype=np.int64)
    T = np.asarray(world_to_cam.detach().cpu() if isinstance(world_to_cam, torch.Tensor) else world_to_cam,
                   dtype=np.float64)
    if T.shape != (4, 4):
        raise ValueError(f"world_to_cam: expected (4, 4), got {T.shape}")
    if (K is None) != (depth is None):
        raise ValueError("give both K and depth (free-space check) or neither")
    Kn = None if K is None else np.asarray(K.detach().cpu() if isinstance(K, torch.Tensor) else K, dtype=np.float64)
    Dn = None if depth is None else np.asarray(depth.detach().cpu() if isinstance(depth, torch.Tensor) else depth,
                                                 dtype=np.float64)
    if Kn is not None and Kn.shape != (3, 3):
        raise ValueError(f"K: expected (3, 3), got {Kn.shape}")
    if Dn is not None and Dn.ndim != 2:
        raise ValueError(f"depth: expected (H, W) metres, got {Dn.shape}")
    Ln = None if labels is None else np.asarray(labels.detach().cpu() if isinstance(labels, torch.Tensor) else labels)
    if Ln is not None and (Dn is None or Ln.shape != Dn.shape):
        raise ValueError(f"labels: expected the depth map's shape {None if Dn is None else Dn.shape}, got {Ln.shape}")
    query = MeshQuery(V, F_, winding=False)
    cam = cloud @ T[:3, :3].T + T[:3, 3]
    rng = np.random.default_rng(seed)
    sub = cam if len(cam) <= max_points else cam[rng.choice(len(cam), max_points, replace=False)]
    centre_o = 0.5 * (V.min(0) + V.max(0))
    radius = float(np.linalg.norm(V - centre_o, axis=1).max())
    c = np.median(sub, axis=0)
    ray = c / np.linalg.norm(c)
    centre = c + push_back * radius * ray
    Rs = rotation_grid(num_directions, num_inplane)
    ts = centre[None] - Rs @ centre_o
    if anchors > 0:
        anchor_pts = V[farthest_vertex_subset(V, anchors, seed)]
        R_all = [Rs] + [Rs] * len(anchor_pts)
        t_all = [ts] + [c[None] - Rs @ a for a in anchor_pts]
        Rs, ts = np.concatenate(R_all), np.concatenate(t_all)
    schedule = np.geomspace(max(start_gate, gate), gate, max(icp_iterations, 1))
    Rs, ts, dist, inl = icp_point_to_plane(query, sub, Rs, ts, icp_iterations, schedule)
    samples = normals = None
    if Dn is not None:
        s = sample_surface(V, F_, 400, seed=seed)
        samples, normals = np.asarray(s.points, dtype=np.float64), np.asarray(s.normals, dtype=np.float64)

    def score(R, t, dist):
        trunc = np.minimum(dist, gate) ** 2 / gate ** 2
        sc = trunc.mean(1)
        fs = (np.zeros(len(R)) if samples is None
              else _free_space(samples, normals, R, t, Kn, Dn, 0.01, max_depth, Ln))
        return sc + free_space_weight * fs, fs

    sc, _ = score(Rs, ts, dist)
    best = np.argsort(sc)[: max(1, keep)]
    Rb, tb, dist_b, inl_b = icp_point_to_plane(query, cam, Rs[best], ts[best], refine_iterations, gate)
    sc_b, fs_b = score(Rb, tb, dist_b)
    c2w = np.linalg.inv(T)
    out = []
    for k in np.argsort(sc_b):
        R_w = c2w[:3, :3] @ Rb[k]
        t_w = c2w[:3, :3] @ tb[k] + c2w[:3, 3]
        d = dist_b[k][inl_b[k]]
        res = float(np.sqrt(np.mean(d ** 2))) if len(d) else float("inf")
        out.append(ObjectAlignment(roma.rotmat_to_rotvec(torch.as_tensor(R_w)).numpy(), t_w, res,
                                   float(inl_b[k].mean()), float(fs_b[k])))
    return out
