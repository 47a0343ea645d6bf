"""honnotate.evaluate: HO-3D metrics, annotation accuracy, scores files and plots.

- :mod:`~honnotate.evaluate.ho3d_metrics`: the 14 HO-3D scores (official ``eval.py`` semantics,
  vectorised over frames);
- :mod:`~honnotate.evaluate.accuracy`: annotation accuracy (MPJPE, per-joint, ADD / ADD-S,
  percentiles, PCK/AUC per sequence and overall);
- :mod:`~honnotate.evaluate.io`: HO-3D JSON / pickles / consolidated ``.npz`` readers,
  ``pred.json`` writer;
- :mod:`~honnotate.evaluate.report`: ``scores.txt/json/html``, accuracy tables and plots;
- :mod:`~honnotate.evaluate.run`: paths in, outputs written (``honnotate evaluate``).
"""

from honnotate.evaluate.accuracy import AccuracyReport, annotation_accuracy
from honnotate.evaluate.ho3d_metrics import HO3D_SCORE_KEYS, Ho3dScores, evaluate_ho3d
from honnotate.evaluate.io import (
    AnnotationSet,
    load_annotation_dir,
    load_consolidated_npz,
    write_consolidated_npz,
    write_pred_json,
)
from honnotate.evaluate.run import evaluate_paths

__all__ = [
    "HO3D_SCORE_KEYS",
    "Ho3dScores",
    "evaluate_ho3d",
    "AccuracyReport",
    "annotation_accuracy",
    "AnnotationSet",
    "load_annotation_dir",
    "load_consolidated_npz",
    "write_consolidated_npz",
    "write_pred_json",
    "evaluate_paths",
]
