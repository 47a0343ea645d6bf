"""How accurate is an annotation? Hand and object errors per frame, per sequence and overall.

Compares a predicted :class:`~honnotate.evaluate.io.AnnotationSet` (e.g. honnotate's output) with
a ground truth (synthetic captures, manual annotations, a multi-camera reference):

- hand: MPJPE absolute and root-relative (wrist, joint 0, subtracted from both), per-joint
  errors, mean corresponding mesh-vertex distance (when both sides have the same vertices);
- object: ADD (mean distance of corresponding object vertices posed by both poses) and ADD-S
  (mean distance from each ground-truth-posed vertex to the nearest prediction-posed vertex,
  KD-tree), given the object's vertices;
- summaries: mean, percentiles, max, and the PCK AUC over 0-5 cm (HO-3D thresholds; for the
  hand joints pooled over joints, for the other metrics over frames), per sequence and overall.

Per-frame figures are millimetres. Inputs are metres in a common camera frame.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from honnotate.evaluate.ho3d_metrics import (
    PCK_THRESHOLDS_M,
    PckCurve,
    auc_from_pck,
    nearest_neighbour_distances,
    pck_curve,
)
from honnotate.evaluate.io import AnnotationSet, match_annotation_sets

__all__ = [
    "PERCENTILES",
    "METRIC_LABELS",
    "AccuracyReport",
    "hand_joint_errors",
    "pose_object_points",
    "object_add",
    "object_adds",
    "summarize_errors",
    "annotation_accuracy",
]

#: Percentiles reported in the accuracy tables.
PERCENTILES: tuple[int, ...] = (50, 75, 90, 95, 99)

#: Per-frame metric names (keys of ``AccuracyReport.per_frame_mm``) and their labels.
METRIC_LABELS: dict[str, str] = {
    "hand_mpjpe": "hand MPJPE (mm)",
    "hand_rr_mpjpe": "hand root-relative MPJPE (mm)",
    "hand_mesh": "hand mean vertex distance (mm)",
    "obj_add": "object ADD (mm)",
    "obj_adds": "object ADD-S (mm)",
}


def _check(name: str, a, tail: tuple[int, ...], n: int | None = None) -> np.ndarray:
    arr = np.asarray(a, dtype=np.float64)
    ok = arr.ndim == 1 + len(tail) and all(t in (-1, s) for t, s in zip(tail, arr.shape[1:], strict=True))
    if not ok or (n is not None and arr.shape[0] != n):
        exp = ", ".join(["N" if n is None else str(n)] + ["V" if t == -1 else str(t) for t in tail])
        raise ValueError(f"{name}: expected shape ({exp}), got {arr.shape}")
    bad = ~np.isfinite(arr.reshape(arr.shape[0], -1)).all(axis=1)
    if bad.any():
        raise ValueError(f"{name}: frame index {int(np.flatnonzero(bad)[0])} contains NaN or infinite values")
    return arr


def hand_joint_errors(gt, pred, *, root_relative: bool = False, root: int = 0) -> np.ndarray:
    """Euclidean error per joint.

    Args:
        gt: ``(N, J, 3)`` ground-truth joints, metres, camera frame.
        pred: ``(N, J, 3)`` predicted joints, same frame and order.
        root_relative: subtract each set's ``root`` joint first (wrist = 0 in MANO order).
        root: root joint index.

    Returns:
        ``(N, J)`` float64 errors, metres.
    """
    g = _check("gt joints", gt, (-1, 3))
    p = _check("pred joints", pred, g.shape[1:], g.shape[0])
    if root_relative:
        if not 0 <= root < g.shape[1]:
            raise ValueError(f"root: expected a joint index in [0, {g.shape[1]}), got {root}")
        g = g - g[:, root : root + 1]
        p = p - p[:, root : root + 1]
    return np.linalg.norm(g - p, axis=2)


def pose_object_points(rotmat, trans, vertices) -> np.ndarray:
    """Object vertices posed per frame: ``v @ R^T + t``.

    Args:
        rotmat: ``(N, 3, 3)`` object-to-camera rotations.
        trans: ``(N, 3)`` translations, metres.
        vertices: ``(V, 3)`` object-frame vertices, metres.

    Returns:
        ``(N, V, 3)`` float64, metres, camera frame.
    """
    r = _check("rotmat", rotmat, (3, 3))
    t = _check("trans", trans, (3,), r.shape[0])
    v = np.asarray(vertices, dtype=np.float64)
    if v.ndim != 2 or v.shape[1] != 3 or v.shape[0] == 0:
        raise ValueError(f"vertices: expected shape (V, 3) with V >= 1, got {v.shape}")
    return np.einsum("vj,nij->nvi", v, r) + t[:, None]


def _object_chunks(n: int, n_vertices: int):
    step = max(1, 1_000_000 // max(n_vertices, 1))
    return range(0, n, step), step


def _per_frame_object_distance(gt_rotmat, gt_trans, pred_rotmat, pred_trans, vertices, distance) -> np.ndarray:
    """(N,) ``distance(g, p)`` of the object posed by both poses, in chunks of frames
    (``g``, ``p``: (n, V, 3) posed vertices -> (n,))."""
    n = np.asarray(gt_rotmat).shape[0]
    starts, step = _object_chunks(n, np.asarray(vertices).shape[0])
    out = np.empty(n)
    for s in starts:
        g = pose_object_points(gt_rotmat[s : s + step], gt_trans[s : s + step], vertices)
        p = pose_object_points(pred_rotmat[s : s + step], pred_trans[s : s + step], vertices)
        if g.shape != p.shape:
            raise ValueError(f"pred pose: expected {g.shape[0]} frames from frame index {s}, got {p.shape[0]}")
        out[s : s + step] = distance(g, p)
    return out


def object_add(gt_rotmat, gt_trans, pred_rotmat, pred_trans, vertices) -> np.ndarray:
    """ADD: mean distance between corresponding object vertices under the two poses.

    Args:
        gt_rotmat, pred_rotmat: ``(N, 3, 3)`` rotations. gt_trans, pred_trans: ``(N, 3)`` metres.
        vertices: ``(V, 3)`` object-frame vertices, metres.

    Returns:
        ``(N,)`` float64, metres.
    """
    return _per_frame_object_distance(gt_rotmat, gt_trans, pred_rotmat, pred_trans, vertices,
                                      lambda g, p: np.linalg.norm(g - p, axis=2).mean(axis=1))


def object_adds(gt_rotmat, gt_trans, pred_rotmat, pred_trans, vertices) -> np.ndarray:
    """ADD-S: mean over ground-truth-posed vertices of the distance to the nearest
    prediction-posed vertex (for symmetric objects; KD-tree, no loop over points).

    Args:
        as :func:`object_add`.

    Returns:
        ``(N,)`` float64, metres; ``ADD-S <= ADD``.
    """
    return _per_frame_object_distance(gt_rotmat, gt_trans, pred_rotmat, pred_trans, vertices,
                                      lambda g, p: nearest_neighbour_distances(g, p).mean(axis=1))


def summarize_errors(values, *, percentiles=PERCENTILES, thresholds=PCK_THRESHOLDS_M) -> dict[str, float]:
    """Mean, percentiles, max and PCK AUC of a set of errors.

    Args:
        values: ``(M,)`` or ``(N, J)`` errors, metres (2-D: PCK per column, AUC averaged).
        percentiles: which percentiles to report.
        thresholds: ``(T,)`` PCK thresholds, metres.

    Returns:
        ``{"n", "mean_mm", "p50_mm", ..., "max_mm", "auc"}`` (AUC over ``thresholds``).
    """
    v = np.asarray(values, dtype=np.float64)
    if v.ndim == 1:
        v = v[:, None]
    if v.ndim != 2 or v.shape[0] == 0:
        raise ValueError(f"values: expected shape (M,) or (N, J) with at least one row, got {np.shape(values)}")
    mm = v * 1000.0
    out: dict[str, float] = {"n": float(v.shape[0]), "mean_mm": float(mm.mean())}
    for q, val in zip(percentiles, np.percentile(mm, percentiles), strict=True):
        out[f"p{q}_mm"] = float(val)
    out["max_mm"] = float(mm.max())
    out["auc"] = float(np.mean(auc_from_pck(pck_curve(v, thresholds), thresholds)))
    return out


@dataclass(frozen=True)
class AccuracyReport:
    """Result of :func:`annotation_accuracy`.

    Attributes:
        sequence_ids: ``(N,)`` str. frame_ids: ``(N,)`` str.
        per_frame_mm: metric name (see :data:`METRIC_LABELS`) -> ``(N,)`` float64 millimetres.
        per_joint_mm: ``(N, 21)`` absolute joint errors, mm. per_joint_rr_mm: root-relative.
        table: rows ``{"sequence", "metric", "n", "mean_mm", "p50_mm", ..., "max_mm", "auc"}``,
            per sequence then ``"overall"``.
        pck: PCK curves of the hand joints (``hand_mpjpe``, ``hand_rr_mpjpe``), all frames.
        notes: what was skipped and why.
    """

    sequence_ids: np.ndarray
    frame_ids: np.ndarray
    per_frame_mm: dict[str, np.ndarray]
    per_joint_mm: np.ndarray
    per_joint_rr_mm: np.ndarray
    table: list[dict]
    pck: dict[str, PckCurve]
    notes: tuple[str, ...] = field(default_factory=tuple)


def annotation_accuracy(gt: AnnotationSet, pred: AnnotationSet) -> AccuracyReport:
    """Accuracy of ``pred`` against ``gt``, matched by (sequence, frame) id.

    Args:
        gt: ground-truth annotations (metres, camera frame).
        pred: predicted annotations in the same frame; every ground-truth frame needs one.

    Returns:
        :class:`AccuracyReport` (millimetres).

    Raises:
        ValueError: a ground-truth frame without prediction (naming it), shape mismatches.
    """
    if gt.n_frames == 0:
        raise ValueError(f"{gt.source}: no ground-truth frames")
    pred = match_annotation_sets(gt, pred)
    notes = list(dict.fromkeys(gt.notes + pred.notes))
    joint_err = hand_joint_errors(gt.hand_joints, pred.hand_joints)
    joint_rr = hand_joint_errors(gt.hand_joints, pred.hand_joints, root_relative=True)
    per_frame = {"hand_mpjpe": joint_err.mean(axis=1), "hand_rr_mpjpe": joint_rr.mean(axis=1)}
    if gt.hand_verts is not None and pred.hand_verts is not None:
        if gt.hand_verts.shape[1] == pred.hand_verts.shape[1]:
            per_frame["hand_mesh"] = np.linalg.norm(gt.hand_verts - pred.hand_verts, axis=2).mean(axis=1)
        else:
            notes.append(
                f"hand meshes differ ({gt.hand_verts.shape[1]} vs {pred.hand_verts.shape[1]} vertices): "
                "vertex distance skipped"
            )
    verts = gt.object_vertices if gt.object_vertices is not None else pred.object_vertices
    have_poses = gt.obj_rotmat is not None and pred.obj_rotmat is not None
    if have_poses and verts is not None:
        args = (gt.obj_rotmat, gt.obj_trans, pred.obj_rotmat, pred.obj_trans, verts)
        per_frame["obj_add"] = object_add(*args)
        per_frame["obj_adds"] = object_adds(*args)
    elif have_poses:
        notes.append("no object vertices given: object ADD / ADD-S skipped")

    table: list[dict] = []
    seq_names = list(dict.fromkeys(gt.sequence_ids.tolist()))
    scopes = [(s, gt.sequence_ids == s) for s in seq_names]
    if len(seq_names) > 1:
        scopes.append(("overall", np.ones(gt.n_frames, dtype=bool)))
    for scope, mask in scopes:
        for metric, values in per_frame.items():
            data = {"hand_mpjpe": joint_err, "hand_rr_mpjpe": joint_rr}.get(metric, values)
            table.append({"sequence": scope, "metric": metric, **summarize_errors(data[mask])})
    pck = {
        "hand_mpjpe": PckCurve(PCK_THRESHOLDS_M.copy(), pck_curve(joint_err).mean(axis=0), "PCK of hand joints (absolute)"),
        "hand_rr_mpjpe": PckCurve(PCK_THRESHOLDS_M.copy(), pck_curve(joint_rr).mean(axis=0), "PCK of hand joints (root-relative)"),
    }
    return AccuracyReport(
        sequence_ids=gt.sequence_ids.copy(),
        frame_ids=gt.frame_ids.copy(),
        per_frame_mm={k: v * 1000.0 for k, v in per_frame.items()},
        per_joint_mm=joint_err * 1000.0,
        per_joint_rr_mm=joint_rr * 1000.0,
        table=table,
        pck=pck,
        notes=tuple(notes),
    )
