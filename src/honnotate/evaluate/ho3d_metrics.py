"""The 14 HO-3D evaluation metrics, vectorised over frames.

Mirrors the official HO-3D evaluation script (``eval.py`` of the ho3d / ho3d_challenge
repositories) detail for detail, with frames batched instead of looped:

- distances per keypoint / vertex are accumulated per keypoint (``EvalUtil``): the mean error is
  the mean over keypoints of the per-keypoint mean over frames; PCK counts ``d <= t`` at
  ``linspace(0, 0.05, 100)`` metres; the AUC is ``trapz(pck, t) / trapz(1, t)`` per keypoint,
  then averaged over keypoints; the reported PCK curve is the mean over keypoints;
- Procrustes alignment (``align_w_scale``): centre both sets on their means, divide each by its
  Frobenius norm ``+ 1e-8``, orthogonal Procrustes of the ground truth onto the prediction
  (``scipy.linalg.orthogonal_procrustes``: ``R = U V^T`` from the SVD of ``G^T P``, scale = sum
  of the singular values), apply ``P R^T s`` and undo the ground-truth normalisation. There is no
  reflection check: ``R`` may have determinant -1, so a mirrored copy of a (non-degenerate)
  ground truth aligns to zero error. ``allow_reflection=False`` gives the proper-rotation variant
  (not used for the HO-3D scores);
- scale-translation alignment (``align_sc_tr``): scale the prediction so that
  ``|p[4] - p[0]| = |g[4] - g[0]|`` (no division when ``|p[4] - p[0]| = 0``), then translate so
  the wrists coincide;
- F-score per frame on vertices: fractions of predicted / ground-truth vertices whose nearest
  neighbour in the other set is strictly closer than the threshold; ``F = 2PR / (P + R)``, 0 when
  ``P + R = 0``; averaged over frames;
- mesh errors only when the prediction has as many vertices as the ground truth; otherwise they
  are reported as -1 and the aligned F-score uses the similarity estimated on the keypoints,
  applied exactly as the official ``align_by_trafo`` does (rotation about the vertex centroid,
  without the prediction's normalisation scale: a quirk of the official script, kept so that
  scores stay comparable).

Everything here is numpy float64 (as the official script, which reads JSON into float64). All
points are metres in any common frame (the metrics are invariant to a rigid change of frame
applied to both sets); HO-3D files are OpenGL camera frame.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from scipy.spatial import cKDTree

__all__ = [
    "HO3D_SCORE_KEYS",
    "PCK_THRESHOLDS_M",
    "F_SCORE_THRESHOLDS_M",
    "PckCurve",
    "Ho3dScores",
    "procrustes_align",
    "scale_translation_align",
    "point_distances",
    "pck_curve",
    "auc_from_pck",
    "nearest_neighbour_distances",
    "f_score",
    "evaluate_ho3d",
]

#: The keys of ``scores.txt``, in the order the official script writes them.
HO3D_SCORE_KEYS: tuple[str, ...] = (
    "xyz_mean3d",
    "xyz_auc3d",
    "xyz_procrustes_al_mean3d",
    "xyz_procrustes_al_auc3d",
    "xyz_scale_trans_al_mean3d",
    "xyz_scale_trans_al_auc3d",
    "mesh_mean3d",
    "mesh_auc3d",
    "mesh_al_mean3d",
    "mesh_al_auc3d",
    "f_score_5",
    "f_al_score_5",
    "f_score_15",
    "f_al_score_15",
)

#: PCK thresholds of the HO-3D AUC: 100 values, 0 to 5 cm, in metres.
PCK_THRESHOLDS_M: np.ndarray = np.linspace(0.0, 0.05, 100)
#: F-score thresholds of the HO-3D scores, metres (5 mm and 15 mm).
F_SCORE_THRESHOLDS_M: tuple[float, ...] = (0.005, 0.015)

_NORM_EPS = 1e-8  # added to the Frobenius norms, as the official align_w_scale does
_TRAPEZOID = getattr(np, "trapezoid", None) or np.trapz  # numpy >= 2 renamed trapz


# ----------------------------------------------------------------------------- validation


def _as_points(name: str, arr, n_points: int | None = None, n_frames: int | None = None) -> np.ndarray:
    """float64 ``(N, K, 3)`` copy-free view of ``arr`` or ValueError naming the problem and frame."""
    a = np.asarray(arr, dtype=np.float64)
    k = "K" if n_points is None else str(n_points)
    if a.ndim != 3 or a.shape[2] != 3 or (n_points is not None and a.shape[1] != n_points):
        raise ValueError(f"{name}: expected shape (N, {k}, 3), got {a.shape}")
    if n_frames is not None and a.shape[0] != n_frames:
        first_missing = min(a.shape[0], n_frames)
        raise ValueError(
            f"{name}: has {a.shape[0]} frames but {n_frames} were expected "
            f"(counts differ from frame index {first_missing} on)"
        )
    finite = np.isfinite(a).all(axis=(1, 2))
    if not finite.all():
        bad = int(np.flatnonzero(~finite)[0])
        raise ValueError(f"{name}: frame index {bad} contains NaN or infinite values")
    return a


def _pair(gt, pred, name_gt: str = "gt", name_pred: str = "pred") -> tuple[np.ndarray, np.ndarray]:
    g = _as_points(name_gt, gt)
    p = _as_points(name_pred, pred, n_points=g.shape[1], n_frames=g.shape[0])
    return g, p


# ----------------------------------------------------------------------------- alignment


def _procrustes_params(g: np.ndarray, p: np.ndarray, allow_reflection: bool):
    """Batched ``align_w_scale`` internals: (R (N,3,3), s (N,), s1 (N,), t1 (N,3), t2 (N,3), s2 (N,))."""
    t1 = g.mean(axis=1)
    t2 = p.mean(axis=1)
    g_c = g - t1[:, None]
    p_c = p - t2[:, None]
    s1 = np.linalg.norm(g_c, axis=(1, 2)) + _NORM_EPS
    s2 = np.linalg.norm(p_c, axis=(1, 2)) + _NORM_EPS
    g_c = g_c / s1[:, None, None]
    p_c = p_c / s2[:, None, None]
    # scipy.linalg.orthogonal_procrustes(A=g_c, B=p_c): SVD of A^T B, R = U V^T, scale = sum(w).
    u, w, vt = np.linalg.svd(np.einsum("nki,nkj->nij", g_c, p_c))
    if not allow_reflection:
        d = np.sign(np.linalg.det(u @ vt))
        d[d == 0] = 1.0
        u = u.copy()
        u[:, :, 2] *= d[:, None]
        w = w.copy()
        w[:, 2] *= d
    r = u @ vt
    return r, w.sum(axis=1), s1, t1, t2, s2


def procrustes_align(gt, pred, *, allow_reflection: bool = True) -> np.ndarray:
    """Similarity-align ``pred`` onto ``gt`` per frame (official ``align_w_scale``, batched).

    Args:
        gt: ``(N, K, 3)`` ground-truth points, metres, any common frame.
        pred: ``(N, K, 3)`` predicted points, same frame and point order.
        allow_reflection: ``True`` (the HO-3D definition, no reflection check) lets the
            orthogonal factor be a reflection, so a mirrored copy aligns to zero error;
            ``False`` restricts it to a proper rotation (Kabsch sign correction).

    Returns:
        ``(N, K, 3)`` float64: the aligned prediction, metres, in the frame of ``gt``.
    """
    g, p = _pair(gt, pred)
    return _apply_procrustes(p, _procrustes_params(g, p, allow_reflection))


def _apply_procrustes(p: np.ndarray, params) -> np.ndarray:
    r, s, s1, t1, t2, s2 = params
    p_n = (p - t2[:, None]) / s2[:, None, None]
    return np.einsum("nkj,nij->nki", p_n, r) * (s * s1)[:, None, None] + t1[:, None]


def _align_by_keypoint_trafo(verts_pred: np.ndarray, params) -> np.ndarray:
    """Official ``align_by_trafo``: apply a keypoint similarity to vertices, quirks included.

    ``(v - mean(v)) R^T s s1 + (t1 - t2) + mean(v)``: rotates about the vertex centroid and
    omits the prediction's normalisation ``1 / s2``, exactly as the official script.
    """
    r, s, s1, t1, t2, _s2 = params
    v_mean = verts_pred.mean(axis=1)
    v_c = verts_pred - v_mean[:, None]
    rotated = np.einsum("nkj,nij->nki", v_c, r) * (s * s1)[:, None, None]
    return rotated + (t1 - t2)[:, None] + v_mean[:, None]


def scale_translation_align(gt, pred) -> np.ndarray:
    """Scale-translation alignment of 21 joints (official ``align_sc_tr``, batched).

    The prediction is scaled so that its wrist (0) to middle-MCP (4) length equals the ground
    truth's (left unscaled by the prediction's length when that length is 0, as the official
    script does), then translated so that the wrists coincide.

    Args:
        gt: ``(N, 21, 3)`` ground-truth joints, metres, MANO joint order.
        pred: ``(N, 21, 3)`` predicted joints, same frame and order.

    Returns:
        ``(N, 21, 3)`` float64 aligned prediction, metres, frame of ``gt``.
    """
    g = _as_points("gt", gt, n_points=21)
    p = _as_points("pred", pred, n_points=21, n_frames=g.shape[0])
    return _scale_translation(g, p)


def _scale_translation(g: np.ndarray, p: np.ndarray) -> np.ndarray:
    s_pred = np.linalg.norm(p[:, 4] - p[:, 0], axis=1)
    s_gt = np.linalg.norm(g[:, 4] - g[:, 0], axis=1)
    divisor = np.where(s_pred > 0, s_pred, 1.0)
    p_s = p / divisor[:, None, None] * s_gt[:, None, None]
    return p_s - p_s[:, :1] + g[:, :1]


# ----------------------------------------------------------------------------- distances, PCK


def point_distances(gt, pred) -> np.ndarray:
    """Euclidean distance per corresponding point.

    Args:
        gt: ``(N, K, 3)`` points, metres.
        pred: ``(N, K, 3)`` points, same frame and order.

    Returns:
        ``(N, K)`` float64 distances, metres.
    """
    g, p = _pair(gt, pred)
    return np.sqrt(np.sum(np.square(g - p), axis=2))


def _pck_counts(dist: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """``(K, T)`` int64: per keypoint, how many of the N distances satisfy ``d <= t``.

    One ``searchsorted`` + ``bincount`` instead of N x K x T comparisons: ``j0`` = number of
    thresholds strictly below ``d``, so ``d <= t_j`` exactly when ``j >= j0``.
    """
    n_kp, n_t = dist.shape[1], thresholds.shape[0]
    j0 = np.searchsorted(thresholds, dist, side="left")
    flat = (j0 + (n_t + 1) * np.arange(n_kp)[None, :]).ravel()
    hist = np.bincount(flat, minlength=n_kp * (n_t + 1)).reshape(n_kp, n_t + 1)
    return np.cumsum(hist, axis=1)[:, :n_t]


def pck_curve(dist, thresholds=PCK_THRESHOLDS_M) -> np.ndarray:
    """Percentage of correct keypoints per keypoint (``d <= t``), as ``EvalUtil._get_pck``.

    Args:
        dist: ``(N, K)`` distances, metres, N >= 1.
        thresholds: ``(T,)`` increasing thresholds, metres.

    Returns:
        ``(K, T)`` float64 in [0, 1]; the HO-3D curve is its mean over keypoints.
    """
    d = np.asarray(dist, dtype=np.float64)
    t = np.asarray(thresholds, dtype=np.float64)
    if d.ndim != 2 or d.shape[0] == 0:
        raise ValueError(f"dist: expected shape (N, K) with N >= 1, got {d.shape}")
    if t.ndim != 1 or t.shape[0] < 2 or np.any(np.diff(t) < 0):
        raise ValueError(f"thresholds: expected increasing (T,) with T >= 2, got shape {t.shape}")
    return _pck_counts(d, t) / d.shape[0]


def auc_from_pck(pck, thresholds=PCK_THRESHOLDS_M) -> np.ndarray:
    """Area under PCK curves, normalised by the threshold range (``EvalUtil.get_measures``).

    Args:
        pck: ``(..., T)`` PCK values in [0, 1].
        thresholds: ``(T,)`` thresholds, metres.

    Returns:
        ``(...)`` float64 AUC in [0, 1]: ``trapz(pck, t) / trapz(ones, t)``.
    """
    t = np.asarray(thresholds, dtype=np.float64)
    pck = np.asarray(pck, dtype=np.float64)
    if pck.shape[-1] != t.shape[0]:
        raise ValueError(f"pck: expected shape (..., {t.shape[0]}), got {pck.shape}")
    return _TRAPEZOID(pck, t, axis=-1) / _TRAPEZOID(np.ones_like(t), t)


# ----------------------------------------------------------------------------- nearest neighbours


_TREE_KW = {"balanced_tree": False, "compact_nodes": False}  # faster builds, same answers


def _nn_chunk(sets: list[np.ndarray], pairs: list[tuple[int, int]], bound: float) -> list[np.ndarray]:
    """Nearest-neighbour distances for ``pairs`` of (query set, point set) indices into ``sets``.

    All sets are ``(C, *, 3)`` frames of one chunk. Frames are centred on the first set's
    per-frame mean and laid out far apart along x; one KD-tree per point set serves all its
    queries (all cores). The spacing (6 x extent + 1 m) makes any cross-frame pair farther apart
    than any in-frame pair, so no neighbour is ever found in another frame. Chunks with far-off
    points (where the offsets would cost float64 precision) go frame by frame instead.
    """
    centre = sets[0].mean(axis=1, keepdims=True)
    sets = [a - centre for a in sets]
    n_frames = sets[0].shape[0]
    extent = max(float(np.abs(a).max(initial=0.0)) for a in sets)
    spacing = 6.0 * extent + 1.0
    trees: dict[int, object] = {}
    out = []
    if spacing * n_frames > 1e4:
        for qi, pi in pairs:
            q, pts = sets[qi], sets[pi]
            d = np.empty(q.shape[:2])
            for i in range(n_frames):
                d[i] = cKDTree(pts[i], **_TREE_KW).query(q[i], distance_upper_bound=bound)[0]
            out.append(d)
        return out
    offset = np.zeros((n_frames, 1, 3))
    offset[:, 0, 0] = np.arange(n_frames) * spacing
    flat = {}
    for qi, pi in pairs:
        for k in (qi, pi):
            if k not in flat:
                flat[k] = (sets[k] + offset).reshape(-1, 3)
        if pi not in trees:
            trees[pi] = cKDTree(flat[pi], **_TREE_KW)
        d, _ = trees[pi].query(flat[qi], distance_upper_bound=bound, workers=-1)
        out.append(d.reshape(sets[qi].shape[:2]))
    return out


def nearest_neighbour_distances(query, points, *, upper_bound: float = np.inf, chunk_size: int = 256) -> np.ndarray:
    """Distance from each query point to its nearest neighbour among the same frame's points.

    Frames of a chunk are laid out far apart in one KD-tree (queried on all cores), so there is
    no Python loop over frames or points and no neighbour is ever taken from another frame.

    Args:
        query: ``(N, P, 3)`` points, metres.
        points: ``(N, Q, 3)`` points, same frame, Q >= 1.
        upper_bound: distances at or beyond this come back as ``inf`` (prunes the search).
        chunk_size: frames per KD-tree.

    Returns:
        ``(N, P)`` float64 distances, metres (``inf`` beyond ``upper_bound``).
    """
    q = _as_points("query", query)
    p = _as_points("points", points, n_frames=q.shape[0])
    if p.shape[1] == 0:
        raise ValueError("points: expected shape (N, Q, 3) with Q >= 1, got Q = 0")
    out = np.empty(q.shape[:2])
    for s in range(0, q.shape[0], chunk_size):
        qc, pc = q[s : s + chunk_size], p[s : s + chunk_size]
        out[s : s + chunk_size] = _nn_chunk([pc, qc], [(1, 0)], upper_bound)[0]
    return out


def _f_scores_multi(g: np.ndarray, preds: list[np.ndarray], th: np.ndarray, chunk_size: int) -> list[tuple]:
    """F-scores of several predictions against one ground truth, sharing its KD-trees."""
    results: list[list[tuple]] = [[] for _ in preds]
    bound = float(th.max())
    for s in range(0, g.shape[0], chunk_size):
        sets = [g[s : s + chunk_size]] + [p[s : s + chunk_size] for p in preds]
        pairs = []
        for k in range(1, len(sets)):
            pairs += [(k, 0), (0, k)]  # prediction -> gt, gt -> prediction
        d = _nn_chunk(sets, pairs, bound)
        for k in range(len(preds)):
            results[k].append(_f_from_distances(d[2 * k + 1], d[2 * k], th))
    return [tuple(np.concatenate([r[i] for r in res]) for i in range(3)) for res in results]


def f_score(gt, pred, thresholds=F_SCORE_THRESHOLDS_M, *, chunk_size: int = 256):
    """F-score per frame between two vertex sets (official ``calculate_fscore``, batched).

    Args:
        gt: ``(N, V, 3)`` ground-truth vertices, metres.
        pred: ``(N, W, 3)`` predicted vertices (W may differ from V), same frame.
        thresholds: distances, metres; a point counts when its nearest neighbour in the other
            set is strictly closer than the threshold.
        chunk_size: frames per KD-tree.

    Returns:
        ``(f, precision, recall)``, each ``(N, T)`` float64 in [0, 1]. precision: fraction of
        predicted vertices near the ground truth; recall: fraction of ground-truth vertices near
        the prediction; ``f = 2PR / (P + R)``, 0 when ``P + R = 0``.
    """
    g = _as_points("gt", gt)
    p = _as_points("pred", pred, n_frames=g.shape[0])
    th = np.asarray(thresholds, dtype=np.float64).reshape(-1)
    if th.size == 0 or g.shape[1] == 0 or p.shape[1] == 0:
        raise ValueError(f"f_score: need thresholds and points, got {th.size} thresholds, gt {g.shape}, pred {p.shape}")
    return _f_scores_multi(g, [p], th, chunk_size)[0]


def _f_from_distances(d_gt: np.ndarray, d_pred: np.ndarray, th: np.ndarray):
    precision = (d_pred[:, :, None] < th).mean(axis=1)
    recall = (d_gt[:, :, None] < th).mean(axis=1)
    denom = precision + recall
    f = np.where(denom > 0, 2.0 * precision * recall / np.where(denom > 0, denom, 1.0), 0.0)
    return f, precision, recall


# ----------------------------------------------------------------------------- the 14 scores


@dataclass(frozen=True)
class PckCurve:
    """A PCK curve: ``thresholds_m (T,)`` metres and ``pck (T,)`` in [0, 1] (mean over points)."""

    thresholds_m: np.ndarray
    pck: np.ndarray
    title: str
    ylabel: str = "Percentage of correct keypoints"


@dataclass(frozen=True)
class Ho3dScores:
    """Result of :func:`evaluate_ho3d`.

    Attributes:
        scores: the 14 HO-3D keys; mean errors in cm (x100, as the official script), AUC and
            F-scores in [0, 1]; mesh keys are -1 when meshes are missing or vertex counts differ,
            F-score keys -1 when no vertices were given.
        curves: PCK curves by name (``xyz``, ``xyz_procrustes_al``, ``xyz_scale_trans_al``,
            ``mesh``, ``mesh_al``), present when computed.
        per_frame: ``(N,)`` float64 arrays: ``xyz_err``, ``xyz_procrustes_al_err``,
            ``xyz_scale_trans_al_err`` (mean joint error, metres), ``mesh_err``, ``mesh_al_err``
            (metres), ``f_score_5`` ... (when computed).
        n_frames: number of frames evaluated.
        notes: what was skipped and why.
    """

    scores: dict[str, float]
    curves: dict[str, PckCurve]
    per_frame: dict[str, np.ndarray]
    n_frames: int
    notes: tuple[str, ...] = field(default_factory=tuple)


class _DistanceStats:
    """Streaming ``EvalUtil``: per-keypoint sums and PCK counts, fed chunk by chunk."""

    def __init__(self, n_kp: int, thresholds: np.ndarray) -> None:
        self.thresholds = thresholds
        self.sum = np.zeros(n_kp)
        self.count = 0
        self.pck_counts = np.zeros((n_kp, thresholds.shape[0]), dtype=np.int64)

    def feed(self, dist: np.ndarray) -> None:
        self.sum += dist.sum(axis=0)
        self.count += dist.shape[0]
        self.pck_counts += _pck_counts(dist, self.thresholds)

    def measures(self) -> tuple[float, float, np.ndarray]:
        """(mean error m, AUC, mean PCK curve (T,)) as ``EvalUtil.get_measures``."""
        pck = self.pck_counts / self.count
        mean = float(np.mean(self.sum / self.count))
        auc = float(np.mean(auc_from_pck(pck, self.thresholds)))
        return mean, auc, pck.mean(axis=0)


def evaluate_ho3d(
    gt_xyz,
    pred_xyz,
    gt_verts=None,
    pred_verts=None,
    *,
    chunk_size: int = 256,
    progress: Callable[[int, int], None] | None = None,
) -> Ho3dScores:
    """The 14 HO-3D scores of predictions against ground truth (official ``eval.py``).

    Args:
        gt_xyz: ``(N, 21, 3)`` ground-truth joints, metres, MANO joint order (HO-3D: OpenGL
            camera frame; any frame works if both sets share it).
        pred_xyz: ``(N, 21, 3)`` predicted joints, same frame and order.
        gt_verts: ``(N, V, 3)`` ground-truth hand vertices (778 for MANO), metres, or None.
        pred_verts: ``(N, W, 3)`` predicted vertices, or None; with W != V the mesh errors are -1
            and the aligned F-score uses the keypoint alignment, as the official script.
        chunk_size: frames processed at once (bounds memory).
        progress: called as ``progress(frames_done, n_frames)`` after each chunk.

    Returns:
        :class:`Ho3dScores`.

    Raises:
        ValueError: wrong shapes, differing frame counts, or NaN/inf (naming the frame index).
    """
    g_xyz = _as_points("gt xyz", gt_xyz, n_points=21)
    n = g_xyz.shape[0]
    if n == 0:
        raise ValueError("gt xyz: expected at least one frame, got 0")
    p_xyz = _as_points("pred xyz", pred_xyz, n_points=21, n_frames=n)
    if (gt_verts is None) != (pred_verts is None):
        raise ValueError("gt_verts and pred_verts must be given together (or both omitted)")
    notes: list[str] = []
    has_verts = gt_verts is not None
    if has_verts:
        g_v = _as_points("gt verts", gt_verts, n_frames=n)
        p_v = _as_points("pred verts", pred_verts, n_frames=n)
        same_topology = g_v.shape[1] == p_v.shape[1]
        if not same_topology:
            notes.append(
                f"prediction has {p_v.shape[1]} vertices, ground truth {g_v.shape[1]}: mesh errors "
                "reported as -1; aligned F-scores use the keypoint alignment (official behaviour)"
            )
    else:
        same_topology = False
        notes.append("no vertices given: mesh errors and F-scores reported as -1")

    th = PCK_THRESHOLDS_M
    f_th = np.asarray(F_SCORE_THRESHOLDS_M)
    stats = {k: _DistanceStats(21, th) for k in ("xyz", "xyz_procrustes_al", "xyz_scale_trans_al")}
    if same_topology:
        stats["mesh"] = _DistanceStats(g_v.shape[1], th)
        stats["mesh_al"] = _DistanceStats(g_v.shape[1], th)
    per_frame: dict[str, list[np.ndarray]] = {f"{k}_err": [] for k in stats}
    f_lists: dict[str, list[np.ndarray]] = {"f": [], "f_al": []}

    for s in range(0, n, chunk_size):
        gx, px = g_xyz[s : s + chunk_size], p_xyz[s : s + chunk_size]
        params = _procrustes_params(gx, px, True)
        dists = {
            "xyz": np.linalg.norm(gx - px, axis=2),
            "xyz_procrustes_al": np.linalg.norm(gx - _apply_procrustes(px, params), axis=2),
            "xyz_scale_trans_al": np.linalg.norm(gx - _scale_translation(gx, px), axis=2),
        }
        if has_verts:
            gv, pv = g_v[s : s + chunk_size], p_v[s : s + chunk_size]
            if same_topology:
                pv_al = _apply_procrustes(pv, _procrustes_params(gv, pv, True))
                dists["mesh"] = np.linalg.norm(gv - pv, axis=2)
                dists["mesh_al"] = np.linalg.norm(gv - pv_al, axis=2)
            else:
                pv_al = _align_by_keypoint_trafo(pv, params)
            (f_un, _, _), (f_al, _, _) = _f_scores_multi(gv, [pv, pv_al], f_th, chunk_size)
            f_lists["f"].append(f_un)
            f_lists["f_al"].append(f_al)
        for k, d in dists.items():
            stats[k].feed(d)
            per_frame[f"{k}_err"].append(d.mean(axis=1))
        if progress is not None:
            progress(min(s + chunk_size, n), n)

    titles = {
        "xyz": ("PCK curve for unaligned keypoint error", "Percentage of correct keypoints"),
        "xyz_procrustes_al": ("PCK curve for procrustes aligned keypoint error", "Percentage of correct keypoints"),
        "xyz_scale_trans_al": ("PCK curve for scale-translation aligned keypoint error", "Percentage of correct keypoints"),
        "mesh": ("PCV curve for mesh error", "Percentage of correct vertices"),
        "mesh_al": ("PCV curve for aligned mesh error", "Percentage of correct vertices"),
    }
    scores: dict[str, float] = {}
    curves: dict[str, PckCurve] = {}
    key_names = {
        "xyz": ("xyz_mean3d", "xyz_auc3d"),
        "xyz_procrustes_al": ("xyz_procrustes_al_mean3d", "xyz_procrustes_al_auc3d"),
        "xyz_scale_trans_al": ("xyz_scale_trans_al_mean3d", "xyz_scale_trans_al_auc3d"),
        "mesh": ("mesh_mean3d", "mesh_auc3d"),
        "mesh_al": ("mesh_al_mean3d", "mesh_al_auc3d"),
    }
    for k, (mean_key, auc_key) in key_names.items():
        if k in stats:
            mean, auc, curve = stats[k].measures()
            scores[mean_key], scores[auc_key] = mean * 100.0, auc
            curves[k] = PckCurve(th.copy(), curve, *titles[k])
        else:
            scores[mean_key], scores[auc_key] = -1.0, -1.0
    out_frames = {k: np.concatenate(v) for k, v in per_frame.items()}
    for i, t in enumerate(F_SCORE_THRESHOLDS_M):
        mm = round(t * 1000)
        if has_verts:
            f = np.concatenate(f_lists["f"])[:, i]
            fa = np.concatenate(f_lists["f_al"])[:, i]
            scores[f"f_score_{mm}"], scores[f"f_al_score_{mm}"] = float(f.mean()), float(fa.mean())
            out_frames[f"f_score_{mm}"], out_frames[f"f_al_score_{mm}"] = f, fa
        else:
            scores[f"f_score_{mm}"], scores[f"f_al_score_{mm}"] = -1.0, -1.0
    ordered = {k: float(scores[k]) for k in HO3D_SCORE_KEYS}
    return Ho3dScores(ordered, curves, out_frames, n, tuple(notes))
