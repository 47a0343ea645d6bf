"""Cue files: hand/object segmentation PNGs and 2D hand keypoint JSON.

Segmentation: a single-channel 8-bit PNG per frame and camera with values
:data:`BACKGROUND` (0), :data:`OBJECT` (1), :data:`HAND` (2); any other value is an error.

2D keypoints: a JSON file per frame and camera::

    {"keypoints": [[u, v, confidence], ...], "order": "mano"}

with 21 rows in MANO joint order (wrist; index 1-3; middle 1-3; pinky 1-3; ring 1-3; thumb 1-3;
tips thumb, index, middle, ring, pinky), ``u, v`` in pixels (pixel centres at integer
coordinates, OpenCV image axes) and ``confidence`` >= 0 (0 = not detected). A bare 21 x 3 list
is accepted too. Any other joint order must be converted before writing. Files written by
multi-view fusion (``honnotate detect`` with 3 or more calibrated cameras) also carry ``"fused_views": true``; the
per-view detections they were made from are kept in ``keypoints2d_views/``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from honnotate.io.files import CaptureFormatError, atomic_write_text
from honnotate.io.images import read_label_png, write_label_png

__all__ = [
    "BACKGROUND",
    "OBJECT",
    "HAND",
    "SEGMENTATION_LABELS",
    "NUM_KEYPOINTS",
    "read_segmentation",
    "write_segmentation",
    "read_keypoints2d",
    "keypoints2d_fused_views",
    "write_keypoints2d",
]

BACKGROUND = 0
OBJECT = 1
HAND = 2
#: The label values a segmentation PNG may contain.
SEGMENTATION_LABELS = (BACKGROUND, OBJECT, HAND)
#: Number of 2D hand keypoints (MANO order, fingertips included).
NUM_KEYPOINTS = 21


def _check_labels(labels: np.ndarray, source: str) -> None:
    bad = np.setdiff1d(np.unique(labels), np.asarray(SEGMENTATION_LABELS, dtype=labels.dtype))
    if bad.size:
        raise CaptureFormatError(
            f"{source}: segmentation values must be 0 (background), 1 (object) or 2 (hand); "
            f"found {bad[:8].tolist()}")


def read_segmentation(path: str | Path) -> np.ndarray:
    """Read a segmentation PNG.

    Returns:
        ``(H, W) uint8`` with values in {0 background, 1 object, 2 hand}.

    Raises:
        FileNotFoundError; CaptureFormatError (corrupt file, not single-channel, other values),
        naming the file.
    """
    path = Path(path)
    labels = read_label_png(path)
    _check_labels(labels, str(path))
    return labels


def write_segmentation(path: str | Path, labels: np.ndarray, *, durable: bool = True) -> Path:
    """Write ``(H, W)`` integer labels in {0, 1, 2} as a lossless 8-bit PNG (atomic)."""
    path = Path(path)
    labels = np.asarray(labels)
    if labels.ndim != 2 or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"{path}: expected segmentation of shape (H, W) with integer labels, "
                         f"got {labels.shape} {labels.dtype}")
    try:
        _check_labels(labels.astype(np.int64), str(path))
    except CaptureFormatError as exc:
        raise ValueError(str(exc)) from None
    return write_label_png(path, labels.astype(np.uint8), durable=durable)


def _validate_keypoints(kp: np.ndarray, source: str, error: type[Exception]) -> np.ndarray:
    if kp.shape != (NUM_KEYPOINTS, 3):
        raise error(f"{source}: expected {NUM_KEYPOINTS} keypoints of (u, v, confidence), i.e. shape "
                    f"(21, 3), got shape {kp.shape}")
    if not np.isfinite(kp).all():
        rows = np.nonzero(~np.isfinite(kp).all(axis=1))[0].tolist()
        raise error(f"{source}: non-finite keypoint values at joints {rows} "
                    f"(mark undetected joints with confidence 0 instead)")
    if (kp[:, 2] < 0).any():
        rows = np.nonzero(kp[:, 2] < 0)[0].tolist()
        raise error(f"{source}: negative confidence at joints {rows}")
    return kp


def _read_json(path: Path):
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CaptureFormatError(f"{path}: not valid JSON ({exc})") from exc


def read_keypoints2d(path: str | Path) -> np.ndarray:
    """Read a 2D keypoint JSON file.

    Returns:
        ``(21, 3) float32``: ``u, v`` in pixels (image axes, pixel centres at integers) and
        confidence >= 0, MANO joint order.

    Raises:
        FileNotFoundError; CaptureFormatError naming the file (invalid JSON, wrong count, a joint
        order other than "mano", non-finite values, negative confidence).
    """
    path = Path(path)
    data = _read_json(path)
    if isinstance(data, dict):
        order = data.get("order", "mano")
        if order != "mano":
            raise CaptureFormatError(f"{path}: keypoint order {order!r} is not supported; convert to "
                                     f"MANO order and set \"order\": \"mano\"")
        if "keypoints" not in data:
            raise CaptureFormatError(f"{path}: missing key 'keypoints'")
        data = data["keypoints"]
    try:
        kp = np.asarray(data, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise CaptureFormatError(f"{path}: keypoints must be a 21 x 3 list of numbers ({exc})") from exc
    return _validate_keypoints(kp, str(path), CaptureFormatError).astype(np.float32)


def write_keypoints2d(path: str | Path, keypoints: np.ndarray, *, durable: bool = True,
                      fused_views: bool = False) -> Path:
    """Write ``(21, 3)`` keypoints (u, v pixels; confidence >= 0; MANO order) as JSON (atomic).

    ``fused_views``: mark the file as made by multi-view fusion (``"fused_views": true``; see
    :func:`keypoints2d_fused_views` and :mod:`honnotate.perception.multiview`).
    """
    path = Path(path)
    if hasattr(keypoints, "detach"):
        keypoints = keypoints.detach().cpu().numpy()
    kp = _validate_keypoints(np.asarray(keypoints, dtype=np.float64), str(path), ValueError)
    rows = [[_round(x) for x in row] for row in kp.tolist()]
    data = {"keypoints": rows, "order": "mano", **({"fused_views": True} if fused_views else {})}
    return atomic_write_text(path, json.dumps(data) + "\n", durable=durable)


def keypoints2d_fused_views(path: str | Path) -> bool:
    """Whether a 2D keypoint JSON file was written by multi-view fusion (``"fused_views": true``).

    Raises:
        FileNotFoundError; CaptureFormatError naming the file (invalid JSON).
    """
    path = Path(path)
    data = _read_json(path)
    return isinstance(data, dict) and data.get("fused_views") is True


def _round(x: float) -> float:
    # 9 significant digits round-trip any float32 exactly and keep the files short.
    return float(f"{x:.9g}") if math.isfinite(x) else x
