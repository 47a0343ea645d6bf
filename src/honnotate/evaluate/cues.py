"""Accuracy of a capture's cue files against its ground truth, camera by camera.

A generated capture (``honnotate synth``) holds the exact masks and projected joints under
``ground_truth/`` (``segmentation/<camera>/<frame>.png`` and ``sequence_gt.npz``: ``keypoints2d``
(T, C, 21, 3) pixels, ``keypoints_visible`` (T, C, 21), ``frame_ids``, ``camera_names``). The
cue files beside them (``segmentation/``, ``keypoints2d/``: detected, simulated or external) are
what the annotation fits; this module says how good they are in each view, which is where a
detector's failures show (one camera looking along the forearm can hold most of the wrong
keypoints of a capture).

Per camera: PCK at ``threshold_px`` and median error of the keypoints of visible joints (a
keypoint with confidence 0, not detected, counts as a miss), the same for the keypoints of hidden
joints the cue gives (confidence > 0: the annotation uses them too), and hand and object IoU of
the masks (pixels summed over the frames).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from honnotate.io.cues import HAND, NUM_KEYPOINTS, OBJECT, read_keypoints2d, read_segmentation
from honnotate.io.sequence import open_sequence

__all__ = ["ViewCueAccuracy", "cue_accuracy", "cue_accuracy_markdown", "keypoint_hits", "label_iou"]


@dataclass(frozen=True)
class ViewCueAccuracy:
    """Cue accuracy of one camera over the frames of a capture (``nan`` where nothing to count)."""

    camera: str
    frames: int
    #: visible joints over the frames, and the share of their keypoints within the threshold
    visible_joints: int
    pck_visible: float
    #: median distance (pixels) of the visible joints' keypoints (not-detected ones excluded)
    median_px_visible: float
    #: hidden joints the cue gives a keypoint for (confidence > 0), and the share within the threshold
    hidden_joints_given: int
    pck_hidden: float
    hand_iou: float
    object_iou: float

    def to_dict(self) -> dict:
        return asdict(self)


def keypoint_hits(pred: np.ndarray, gt: np.ndarray, threshold_px: float) -> tuple[np.ndarray, np.ndarray]:
    """Distances and hits of 2D keypoints.

    Args:
        pred: (..., 21, 3) u, v pixels and confidence (0: not detected). gt: (..., 21, >=2) u, v pixels.
        threshold_px: a keypoint within this distance of its joint is a hit.

    Returns:
        ``(distance, hit)``: (..., 21) pixels (``inf`` where not detected) and bool.
    """
    pred, gt = np.asarray(pred, dtype=np.float64), np.asarray(gt, dtype=np.float64)
    if pred.shape[-2:] != (NUM_KEYPOINTS, 3) or gt.shape[-2] != NUM_KEYPOINTS or gt.shape[-1] < 2 \
            or pred.shape[:-1] != gt.shape[:-1]:
        raise ValueError(f"keypoints must be (..., {NUM_KEYPOINTS}, 3) and ground truth of the same frames, "
                         f"got {pred.shape} and {gt.shape}")
    if not threshold_px > 0:
        raise ValueError(f"threshold_px must be > 0, got {threshold_px}")
    dist = np.linalg.norm(pred[..., :2] - gt[..., :2], axis=-1)
    dist = np.where(pred[..., 2] > 0, dist, np.inf)
    return dist, dist <= threshold_px


def label_iou(pred: np.ndarray, gt: np.ndarray, label: int) -> float:
    """IoU of the pixels of ``label`` in ``pred`` and ``gt`` (same shape, any number of frames;
    pixels summed); ``nan`` when neither has that label."""
    pred, gt = np.asarray(pred), np.asarray(gt)
    if pred.shape != gt.shape:
        raise ValueError(f"label maps of different shapes: {pred.shape} and {gt.shape}")
    p, g = pred == label, gt == label
    union = int(np.sum(p | g))
    return float(np.sum(p & g) / union) if union else float("nan")


def _share(hit: np.ndarray) -> float:
    return float(np.mean(hit)) if hit.size else float("nan")


def cue_accuracy(sequence: str | Path, *, threshold_px: float = 10.0) -> list[ViewCueAccuracy]:
    """Per-camera accuracy of the cue files of a capture with ground truth (see the module).

    Raises:
        FileNotFoundError: no ``ground_truth/sequence_gt.npz``, or a cue or ground-truth file of a
            frame missing (the message names it).
        ValueError: ground truth of other frames or cameras than the capture's.
    """
    seq = open_sequence(sequence)
    gt_path = Path(seq.root) / "ground_truth" / "sequence_gt.npz"
    if not gt_path.is_file():
        raise FileNotFoundError(f"{gt_path}: no ground truth (cue accuracy needs a generated capture)")
    with np.load(gt_path, allow_pickle=False) as z:
        frame_pos = {str(f): i for i, f in enumerate(z["frame_ids"])}
        cam_pos = {str(c): i for i, c in enumerate(z["camera_names"])}
        kp_gt = np.asarray(z["keypoints2d"], dtype=np.float64)
        visible = np.asarray(z["keypoints_visible"]) > 0 if "keypoints_visible" in z.files else kp_gt[..., 2] > 0
    out = []
    for cam in seq.camera_ids:
        if cam not in cam_pos:
            raise ValueError(f"{gt_path}: no ground truth of camera {cam!r} (has {sorted(cam_pos)})")
        c = cam_pos[cam]
        pred_kp, true_kp, vis, pred_lab, true_lab = [], [], [], [], []
        for frame in seq.frame_ids:
            if frame not in frame_pos:
                raise ValueError(f"{gt_path}: no ground truth of frame {frame!r}")
            t = frame_pos[frame]
            kp_file = Path(seq.root) / "keypoints2d" / cam / f"{frame}.json"
            pred_kp.append(read_keypoints2d(kp_file))
            true_kp.append(kp_gt[t, c])
            vis.append(visible[t, c])
            seg_file = Path(seq.root) / "segmentation" / cam / f"{frame}.png"
            true_file = Path(seq.root) / "ground_truth" / "segmentation" / cam / f"{frame}.png"
            pred_lab.append(read_segmentation(seg_file))
            true_lab.append(read_segmentation(true_file))
            if pred_lab[-1].shape != true_lab[-1].shape:
                raise ValueError(f"{seg_file}: {pred_lab[-1].shape} pixels, the ground truth {true_lab[-1].shape}")
        pred, gt, vis = np.stack(pred_kp), np.stack(true_kp), np.stack(vis)
        pred_lab, true_lab = np.stack(pred_lab), np.stack(true_lab)
        dist, hit = keypoint_hits(pred, gt, threshold_px)
        given_hidden = ~vis & (pred[..., 2] > 0)
        seen = dist[vis]
        out.append(ViewCueAccuracy(
            camera=cam, frames=len(seq.frame_ids), visible_joints=int(vis.sum()), pck_visible=_share(hit[vis]),
            median_px_visible=float(np.median(seen[np.isfinite(seen)])) if np.isfinite(seen).any() else float("nan"),
            hidden_joints_given=int(given_hidden.sum()), pck_hidden=_share(hit[given_hidden]),
            hand_iou=label_iou(pred_lab, true_lab, HAND), object_iou=label_iou(pred_lab, true_lab, OBJECT)))
    return out


def cue_accuracy_markdown(views: list[ViewCueAccuracy], threshold_px: float = 10.0) -> str:
    """A markdown table of :func:`cue_accuracy`'s rows, one per camera."""
    t = f"{threshold_px:g}"
    rows = [f"| camera | visible joints | PCK@{t}px visible | median px visible | hidden joints given | "
            f"PCK@{t}px hidden | hand IoU | object IoU |", "|---|---|---|---|---|---|---|---|"]
    for v in views:
        rows.append(f"| {v.camera} | {v.visible_joints} | {v.pck_visible:.3f} | {v.median_px_visible:.1f} | "
                    f"{v.hidden_joints_given} | {v.pck_hidden:.3f} | {v.hand_iou:.3f} | {v.object_iou:.3f} |")
    return "\n".join(rows)
