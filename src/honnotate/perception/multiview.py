"""Multi-view fusion of 2D keypoint detections (calibrated cameras).

One view often cannot tell which finger a fingertip belongs to, or where a joint hidden behind
the object is; other cameras of the same frame often see it. Per frame and joint,
:func:`fuse_views` finds the largest set of views that agree on a 3D point
(:func:`honnotate.geometry.multiview.agreeing_views`: RANSAC over camera pairs, ties going to
the more confident views), triangulates
the point from them weighted by confidence, and replaces the detections of the other views
(those that disagree, and those with no confident detection) by its reprojection, with the
mean confidence of the agreeing views. Agreeing views keep their own detection; joints on which
fewer than ``min_views`` views agree are left unchanged. The annotation's keypoint consensus
(:mod:`honnotate.annotate.consensus`) makes the same vote and drops the disagreeing views
instead; fusing at detection time gives cue files that are right in every view (for a person
looking at them, for training networks on them, for any other tool reading them).

With two cameras nothing can be outvoted, so fusion needs three or more.
:func:`fuse_sequence_keypoints` applies it to the cue files of a capture
(``honnotate detect`` does by default with three or more calibrated cameras).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from honnotate.geometry.multiview import (
    agreeing_views,
    check_views,
    projection_matrices,
    triangulate_points,
)
from honnotate.geometry.projection import project_points

__all__ = ["FUSED_RAW_DIR", "fuse_views", "FuseSummary", "fuse_sequence_keypoints"]

#: Folder of a capture where fusion keeps the per-view detections it fused.
FUSED_RAW_DIR = "keypoints2d_views"


def fuse_views(keypoints: torch.Tensor, K: torch.Tensor, world_to_cam: torch.Tensor, *, threshold_px: float = 8.0,
               min_views: int = 2, min_confidence: float = 0.05) -> tuple[torch.Tensor, torch.Tensor]:
    """Keypoints of each frame's views made to agree with one 3D point per joint.

    Args:
        keypoints: (T, C, J, 3) detections (u, v pixels; confidence >= 0) of T frames, C cameras.
        K: (C, 3, 3) intrinsics; world_to_cam: (C, 4, 4) extrinsics (OpenCV camera frames).
        threshold_px: a view agrees when its detection lies within this many pixels of the
            point's reprojection (8: chosen on 640x480 captures, see docs/design.md).
        min_views: views that must agree before the others are replaced (>= 2).
        min_confidence: detections at or below this confidence take no part in the vote (and
            are replaced when the others agree).

    Returns:
        ``(fused, replaced)``: (T, C, J, 3) like ``keypoints`` (dtype and device kept) and
        (T, C, J) bool, True where a view's keypoint was replaced by the reprojection.

    Raises:
        ValueError: shapes that do not match, ``min_views < 2``, a non-positive threshold.
    """
    check_views(keypoints, K, world_to_cam, threshold_px)
    if min_views < 2:
        raise ValueError(f"min_views must be >= 2, got {min_views}")
    T, C, J, _ = keypoints.shape
    replaced = torch.zeros(T, C, J, dtype=torch.bool, device=keypoints.device)
    if C < 3:
        return keypoints.clone(), replaced
    kp = keypoints.to(torch.float64)
    Kd, Td = K.to(kp), world_to_cam.to(kp)
    uv = torch.nan_to_num(kp[..., :2])
    conf = torch.nan_to_num(kp[..., 2])
    seen = torch.isfinite(kp).all(-1) & (conf > min_confidence)
    inliers, count = agreeing_views(uv, seen, projection_matrices(Kd, Td), threshold_px, confidence=conf)
    decided = count >= min_views  # (T, J)
    weights = torch.where(inliers & decided[:, None], conf.clamp(min=1e-3), torch.zeros_like(conf))
    # one weighted triangulation of all frames' joints: (C, T * J) observations
    X, ok = triangulate_points(uv.permute(1, 0, 2, 3).reshape(C, T * J, 2), weights.permute(1, 0, 2).reshape(C, T * J),
                               Kd, Td)
    cam = X[None] @ Td[:, :3, :3].transpose(-1, -2) + Td[:, None, :3, 3]  # (C, T * J, 3)
    proj = project_points(cam, Kd).reshape(C, T, J, 2).permute(1, 0, 2, 3)
    front = (cam[..., 2] > 0).reshape(C, T, J).permute(1, 0, 2)
    decided &= ok.reshape(T, J)
    replaced = decided[:, None] & ~inliers & front
    mean_conf = (weights.sum(1) / count.clamp(min=1))[:, None].expand(T, C, J)
    out = kp.clone()
    out[..., :2] = torch.where(replaced[..., None], proj, kp[..., :2])
    out[..., 2] = torch.where(replaced, mean_conf, kp[..., 2])
    return out.to(keypoints.dtype), replaced


@dataclass
class FuseSummary:
    """frames: frames fused; replaced: keypoints replaced by the views' consensus; keypoints:
    keypoints of the fused frames (frames x cameras x 21); skipped: frames where a camera had no
    keypoint file."""

    frames: int
    replaced: int
    keypoints: int
    skipped: int


def fuse_sequence_keypoints(sequence: str | Path, *, cameras: list[str] | None = None, threshold_px: float = 8.0,
                            min_views: int = 2, min_confidence: float = 0.05) -> FuseSummary:
    """Apply :func:`fuse_views` to the ``keypoints2d/<cam>/<frame>.json`` cue files of a capture.

    A per-view keypoint file (not marked ``fused_views``) is first copied to
    ``keypoints2d_views/<cam>/<frame>.json``; the fused keypoints, marked, then replace it. A
    file already fused is fused again from its kept per-view copy, so a rerun (with another
    threshold, say) never fuses fused keypoints, and new detections written over a fused file
    (``honnotate detect --overwrite``) are what the next fusion uses. Frames where a camera has
    no keypoint file are left as they are.

    Args:
        sequence: capture folder with calibrated cameras (``calibration/``).
        cameras: camera ids (default all; at least 3).
        threshold_px, min_views, min_confidence: see :func:`fuse_views`.

    Raises:
        ValueError: fewer than 3 cameras. KeyError: unknown camera. CaptureFormatError: a
        malformed cue file, or a fused file whose per-view copy is missing (named).
    """
    from honnotate.io.cues import keypoints2d_fused_views, read_keypoints2d, write_keypoints2d
    from honnotate.io.files import CaptureFormatError
    from honnotate.io.sequence import open_sequence

    seq = open_sequence(sequence)
    cams = list(cameras) if cameras else seq.camera_ids
    for c in cams:
        if c not in seq.camera_ids:
            raise KeyError(f"{seq.root}: no camera {c!r}; cameras are {seq.camera_ids}")
    if len(cams) < 3:
        raise ValueError(f"{seq.root}: fusing keypoints across views needs at least 3 cameras, got {len(cams)}")
    calib = [seq.calibration(c) for c in cams]
    K = torch.from_numpy(np.stack([c.K for c in calib]))
    w2c = torch.from_numpy(np.stack([np.linalg.inv(c.cam_to_world) for c in calib]))
    frames = seq.frame_ids
    fused = replaced = skipped = 0
    for frame in frames:
        cur = [seq.root / "keypoints2d" / c / f"{frame}.json" for c in cams]
        if not all(p.exists() for p in cur):
            skipped += 1
        else:
            views = []
            for p, c in zip(cur, cams, strict=True):
                raw = seq.root / FUSED_RAW_DIR / c / f"{frame}.json"
                if keypoints2d_fused_views(p):
                    if not raw.exists():
                        raise CaptureFormatError(f"{p}: fused keypoints without their per-view detections ({raw}); "
                                                 f"run `honnotate detect --overwrite` to detect this frame again")
                    views.append(read_keypoints2d(raw))
                else:
                    views.append(read_keypoints2d(p))
                    write_keypoints2d(raw, views[-1], durable=False)
            out, rep = fuse_views(torch.from_numpy(np.stack(views))[None], K, w2c, threshold_px=threshold_px,
                                  min_views=min_views, min_confidence=min_confidence)
            for c, p in enumerate(cur):
                write_keypoints2d(p, out[0, c].numpy(), durable=False, fused_views=True)
            fused += 1
            replaced += int(rep.sum())
    return FuseSummary(frames=fused, replaced=replaced, keypoints=fused * len(cams) * 21, skipped=skipped)
