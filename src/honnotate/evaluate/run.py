"""One call from two input paths to written evaluation outputs (what ``honnotate evaluate`` runs).

Input kinds, detected from the paths:

- ``ho3d``: HO-3D evaluation JSON (files, or folders holding ``evaluation_xyz.json`` [+
  ``evaluation_verts.json``] or ``pred.json``) -> the 14 HO-3D scores;
- ``annotations``: two folders of HO-3D annotation pickles -> annotation accuracy + the HO-3D
  joint scores;
- ``npz``: two honnotate consolidated annotation files -> annotation accuracy + HO-3D scores
  (mesh scores when both have hand vertices).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from honnotate.evaluate.accuracy import AccuracyReport, annotation_accuracy
from honnotate.evaluate.ho3d_metrics import Ho3dScores, evaluate_ho3d
from honnotate.evaluate.io import (
    AnnotationSet,
    load_annotation_dir,
    load_consolidated_npz,
    load_ho3d_eval_inputs,
    match_annotation_sets,
)
from honnotate.evaluate.report import write_accuracy_report, write_ho3d_scores

__all__ = ["EvaluationOutputs", "detect_input_kind", "evaluate_paths"]


@dataclass(frozen=True)
class EvaluationOutputs:
    """What :func:`evaluate_paths` computed and wrote.

    Attributes:
        kind: ``"ho3d"``, ``"annotations"`` or ``"npz"``.
        ho3d: the HO-3D scores. accuracy: the annotation accuracy (not for ``ho3d`` inputs).
        files: name -> written path.
    """

    kind: str
    ho3d: Ho3dScores
    accuracy: AccuracyReport | None
    files: dict[str, Path] = field(default_factory=dict)


def _is_ho3d_json_dir(p: Path) -> bool:
    return (p / "evaluation_xyz.json").is_file() or (p / "pred.json").is_file()


def detect_input_kind(gt, pred) -> str:
    """``"ho3d"``, ``"annotations"`` or ``"npz"`` for a ground-truth and a prediction path.

    Raises:
        FileNotFoundError: a path does not exist. ValueError: the two paths are of different or
            unknown kinds.
    """
    kinds = []
    for p in (Path(gt), Path(pred)):
        if not p.exists():
            raise FileNotFoundError(f"{p}: no such file or directory")
        if p.is_file() and p.suffix == ".json" or p.is_dir() and _is_ho3d_json_dir(p):
            kinds.append("ho3d")
        elif p.is_file() and p.suffix == ".npz":
            kinds.append("npz")
        elif p.is_dir() and next(p.rglob("*.pkl"), None) is not None:
            kinds.append("annotations")
        else:
            raise ValueError(
                f"{p}: not a HO-3D evaluation JSON (file, or folder with evaluation_xyz.json / pred.json), "
                "a folder of annotation pickles, or a consolidated .npz"
            )
    if kinds[0] != kinds[1]:
        raise ValueError(f"ground truth is '{kinds[0]}' but prediction is '{kinds[1]}': give two inputs of one kind")
    return kinds[0]


def _sets_ho3d(gt: AnnotationSet, pred: AnnotationSet, chunk_size, progress) -> Ho3dScores:
    pred = match_annotation_sets(gt, pred)
    gv, pv = gt.hand_verts, pred.hand_verts
    if gv is None or pv is None:
        gv = pv = None
    return evaluate_ho3d(gt.hand_joints, pred.hand_joints, gv, pv, chunk_size=chunk_size, progress=progress)


def evaluate_paths(
    gt,
    pred,
    out_dir,
    *,
    object_vertices: np.ndarray | None = None,
    verts_fn: Callable[[dict], np.ndarray] | None = None,
    chunk_size: int = 256,
    progress: Callable[[int, int], None] | None = None,
) -> EvaluationOutputs:
    """Evaluate ``pred`` against ``gt`` and write the outputs into ``out_dir``.

    Args:
        gt, pred: paths of one kind (see the module docstring).
        out_dir: output folder (``scores.txt/json/html``; ``accuracy.*`` for annotations).
        object_vertices: ``(V_o, 3)`` object-frame vertices, metres, for object metrics from
            annotation pickles (the npz carries its own).
        verts_fn: hand model for annotation pickles: ``verts_fn(annotation_dict) -> (V, 3)``
            metres, OpenGL camera frame; without it hand mesh metrics are skipped.
        chunk_size: frames per batch of the HO-3D metrics.
        progress: ``progress(done, total)`` over the HO-3D frames.

    Returns:
        :class:`EvaluationOutputs`.
    """
    kind = detect_input_kind(gt, pred)
    accuracy = None
    if kind == "ho3d":
        g_xyz, g_verts = load_ho3d_eval_inputs(gt)
        p_xyz, p_verts = load_ho3d_eval_inputs(pred)
        if len(g_xyz) != len(p_xyz):
            raise ValueError(
                f"{pred}: {len(p_xyz)} predicted frames but {gt} has {len(g_xyz)} "
                f"(counts differ from frame index {min(len(g_xyz), len(p_xyz))} on)"
            )
        if g_verts is None or p_verts is None:
            g_verts = p_verts = None
        ho3d = evaluate_ho3d(g_xyz, p_xyz, g_verts, p_verts, chunk_size=chunk_size, progress=progress)
    else:
        if kind == "npz":
            g_set, p_set = load_consolidated_npz(gt), load_consolidated_npz(pred)
        else:
            g_set = load_annotation_dir(gt, verts_fn=verts_fn, object_vertices=object_vertices)
            p_set = load_annotation_dir(pred, verts_fn=verts_fn, object_vertices=object_vertices)
        accuracy = annotation_accuracy(g_set, p_set)
        ho3d = _sets_ho3d(g_set, p_set, chunk_size, progress)
    files = {f"scores_{k}": v for k, v in write_ho3d_scores(out_dir, ho3d).items()}
    if accuracy is not None:
        files.update({f"accuracy_{k}": v for k, v in write_accuracy_report(out_dir, accuracy).items()})
    return EvaluationOutputs(kind, ho3d, accuracy, files)
