"""Consistency check of a capture sequence: what ``honnotate check SEQ`` reports.

:func:`check_sequence` is a pure library function: it reads the sequence (see
:mod:`honnotate.io.sequence` for the layout) and returns a :class:`CheckReport` listing every
problem as an :class:`Issue` with the file, frame and camera concerned. It never raises for a
problem in the data; only a programming error would.

Errors (the sequence cannot be annotated as is): missing colour or depth frames, corrupt or
truncated files, size mismatches between colour, depth and cues, missing or unreadable
calibration, implausible intrinsics (focal length outside 100..5000 px, principal point outside
the image), a non-rigid camera-to-world matrix, depth whose median is outside 0.1..5 m (wrong
depth_scale, e.g. 1.0 given for a millimetre sensor), segmentation values outside {0, 1, 2},
keypoint files with the wrong count or points outside the image, a missing or invalid meta.yaml.
Warnings: missing cue files (cues can be recomputed), files outside the frame list, frames
without any valid depth, unusual depth scales or camera distances.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from honnotate.io.calibration import (
    depth_scale_path,
    intrinsics_path,
    read_cam_to_world,
    read_depth_scale,
    read_intrinsics,
    rigidity_error,
    trans_path,
)
from honnotate.io.cues import read_keypoints2d, read_segmentation
from honnotate.io.files import CaptureFormatError
from honnotate.io.images import image_size, read_depth_png, verify_image
from honnotate.io.sequence import META_FILE, MODALITIES, CaptureSequence, read_meta

__all__ = ["Issue", "CheckReport", "check_sequence", "FOCAL_RANGE_PX", "DEPTH_RANGE_M", "RIGID_TOLERANCE"]

#: Plausible focal lengths in pixels (covers VGA to 4K sensors with usual lenses).
FOCAL_RANGE_PX = (100.0, 5000.0)
#: Plausible median depth of a hand-object capture, metres.
DEPTH_RANGE_M = (0.1, 5.0)
#: Max ``|R^T R - I|`` / last-row deviation of a rigid camera-to-world matrix (as the Camera class).
RIGID_TOLERANCE = 1e-4

Severity = Literal["error", "warning"]
_CUES = ("segmentation", "keypoints2d")


@dataclass(frozen=True)
class Issue:
    """One problem found in a sequence.

    Attributes:
        severity: "error" (blocks annotation) or "warning".
        message: what is wrong and, where possible, what to do.
        file: the file concerned (or the file expected), if any.
        frame: frame id, if the problem concerns one frame.
        camera: camera id, if the problem concerns one camera.
    """

    severity: Severity
    message: str
    file: str | None = None
    frame: str | None = None
    camera: str | None = None


@dataclass
class CheckReport:
    """Result of :func:`check_sequence`.

    Attributes:
        root: the sequence folder.
        camera_ids: cameras found (folders under ``rgb/``).
        frame_ids: the frame list (colour frames of the first camera).
        issues: all problems, calibration and metadata first, then per frame.
        median_depth_m: camera id -> median valid depth in metres (cameras with depth and scale).
    """

    root: str
    camera_ids: list[str] = field(default_factory=list)
    frame_ids: list[str] = field(default_factory=list)
    issues: list[Issue] = field(default_factory=list)
    median_depth_m: dict[str, float] = field(default_factory=dict)

    @property
    def errors(self) -> list[Issue]:
        return [i for i in self.issues if i.severity == "error"]

    @property
    def warnings(self) -> list[Issue]:
        return [i for i in self.issues if i.severity == "warning"]

    @property
    def ok(self) -> bool:
        """True when there is no error (warnings allowed)."""
        return not self.errors

    def exit_code(self, strict: bool = False) -> int:
        """0 when clean, 1 on errors (or on warnings too with ``strict``)."""
        return 1 if self.errors or (strict and self.warnings) else 0

    def to_dict(self) -> dict:
        """JSON-ready dict."""
        return {"root": self.root, "camera_ids": self.camera_ids, "n_frames": len(self.frame_ids),
                "median_depth_m": self.median_depth_m, "ok": self.ok,
                "issues": [asdict(i) for i in self.issues]}


class _Collector:
    def __init__(self, report: CheckReport) -> None:
        self.report = report

    def error(self, message: str, file: Path | str | None = None, frame: str | None = None,
              camera: str | None = None) -> None:
        self.report.issues.append(Issue("error", message, str(file) if file else None, frame, camera))

    def warning(self, message: str, file: Path | str | None = None, frame: str | None = None,
                camera: str | None = None) -> None:
        self.report.issues.append(Issue("warning", message, str(file) if file else None, frame, camera))


def _reason(exc: Exception, path: Path) -> str:
    """An exception message without the leading file name (the issue has its own column)."""
    msg = str(exc)
    prefix = f"{path}: "
    return msg[len(prefix):] if msg.startswith(prefix) else msg


def _check_meta(seq: CaptureSequence, out: _Collector) -> None:
    path = seq.root / META_FILE
    try:
        meta = read_meta(path)
    except FileNotFoundError:
        out.error("missing meta.yaml (object, hand side, subject shape)", path)
        return
    except CaptureFormatError as exc:
        out.error(_reason(exc, path), path)
        return
    mesh = meta.object_mesh_path(seq.root)
    if mesh is not None and not mesh.is_file():
        out.error(f"object mesh {meta.object!r} not found", mesh)
    if meta.shape_file is not None:
        shape = Path(meta.shape_file)
        shape = shape if shape.is_absolute() else seq.root / shape
        if not shape.is_file():
            out.error(f"subject shape file {meta.shape_file!r} not found", shape)


def _check_calibration(seq: CaptureSequence, cam: str, size: tuple[int, int] | None,
                       out: _Collector) -> float | None:
    """Check one camera's calibration files; returns its depth scale when readable."""
    calib = seq.calibration_dir
    p = intrinsics_path(calib, cam)
    try:
        K, file_size = read_intrinsics(p)
    except FileNotFoundError:
        out.error("missing calibration: intrinsics file", p, camera=cam)
    except CaptureFormatError as exc:
        out.error(_reason(exc, p), p, camera=cam)
    else:
        fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
        lo, hi = FOCAL_RANGE_PX
        if not (lo <= fx <= hi and lo <= fy <= hi):
            out.error(f"implausible focal length fx={fx:.6g}, fy={fy:.6g} px (expected {lo:g}..{hi:g} px; "
                      f"intrinsics in metres or normalised?)", p, camera=cam)
        if size is not None:
            w, h = size
            if not (-0.5 <= cx <= w - 0.5 and -0.5 <= cy <= h - 0.5):
                out.error(f"principal point ({cx:.6g}, {cy:.6g}) px lies outside the {w}x{h} image", p, camera=cam)
            if file_size is not None and tuple(file_size) != (w, h):
                out.error(f"intrinsics are for a {file_size[0]}x{file_size[1]} image but the colour "
                          f"images are {w}x{h}", p, camera=cam)
    scale: float | None = None
    p = depth_scale_path(calib, cam)
    try:
        scale = read_depth_scale(p)
    except FileNotFoundError:
        out.error("missing calibration: depth scale file (metres per depth unit, e.g. 0.001)", p, camera=cam)
    except CaptureFormatError as exc:
        out.error(_reason(exc, p), p, camera=cam)
    else:
        if not 1e-6 <= scale <= 0.1:
            out.warning(f"unusual depth scale {scale:g} m per unit (0.001 for millimetre sensors)", p, camera=cam)
    p = trans_path(calib, cam)
    if not p.exists():
        if len(seq.camera_ids) > 1:
            out.error(f"missing calibration: camera-to-world extrinsics (required with "
                      f"{len(seq.camera_ids)} cameras)", p, camera=cam)
        return scale
    try:
        T = read_cam_to_world(p)
    except CaptureFormatError as exc:
        out.error(_reason(exc, p), p, camera=cam)
        return scale
    err = rigidity_error(T)
    if err > RIGID_TOLERANCE:
        out.error(f"camera-to-world matrix is not rigid (deviation {err:.3g}; scaled, mirrored or "
                  f"projective?)", p, camera=cam)
    elif np.linalg.norm(T[:3, 3]) > 10.0:
        out.warning(f"camera is {np.linalg.norm(T[:3, 3]):.3g} m from the world origin (translation "
                    f"in millimetres?)", p, camera=cam)
    return scale


def _depth_advice(median_units: float, scale: float) -> str:
    metres = median_units * scale
    lo, hi = DEPTH_RANGE_M
    for candidate, label in ((0.001, "millimetre"), (0.0001, "0.1 mm"), (0.000125, "1/8 mm")):
        if lo <= median_units * candidate <= hi and not np.isclose(candidate, scale):
            return (f"median valid depth is {metres:.4g} m with depth_scale {scale:g}; the values look "
                    f"like a {label} sensor: set depth_scale {candidate:g}")
    return f"median valid depth is {metres:.4g} m with depth_scale {scale:g}, outside {lo:g}..{hi:g} m: check depth_scale"


def _check_keypoints(path: Path, size: tuple[int, int] | None, cam: str, frame: str, out: _Collector) -> None:
    try:
        kp = read_keypoints2d(path)
    except CaptureFormatError as exc:
        out.error(_reason(exc, path), path, frame, cam)
        return
    if size is None:
        return
    w, h = size
    conf = kp[:, 2] > 0
    outside = conf & ((kp[:, 0] < -0.5) | (kp[:, 0] > w - 0.5) | (kp[:, 1] < -0.5) | (kp[:, 1] > h - 0.5))
    if outside.any():
        msg = f"keypoints {np.nonzero(outside)[0].tolist()} lie outside the {w}x{h} image"
        if conf.any() and np.abs(kp[conf, :2]).max() <= 1.0:
            msg += " (normalised coordinates? expected pixels)"
        out.error(msg, path, frame, cam)
    elif conf.sum() >= 3 and kp[conf, :2].max() <= 1.0 and min(w, h) > 16:
        out.error("all keypoints lie within [0, 1]: normalised coordinates? expected pixels", path, frame, cam)


def check_sequence(path: str | Path, *, decode: bool = True,
                   progress: Callable[[int, int], None] | None = None) -> CheckReport:
    """Check a capture sequence for missing, corrupt or inconsistent data.

    Args:
        path: the sequence folder.
        decode: fully decode and verify every image (slower; catches truncated and corrupt
            files and checks depth units). With False only headers are read.
        progress: called as ``progress(done, total)`` after each frame (for a progress bar).

    Returns:
        The :class:`CheckReport`; ``report.ok`` is False when there is any error.
    """
    root = Path(path)
    report = CheckReport(root=str(root))
    out = _Collector(report)
    try:
        seq = CaptureSequence(root)
    except FileNotFoundError as exc:
        out.error(str(exc).split(": ", 1)[-1], root if not root.is_dir() else root / "rgb")
        return report
    report.camera_ids = list(seq.camera_ids)
    if not seq.camera_ids:
        out.error("no camera folders under rgb/ (expected rgb/<cam>/<frame>.png)", root / "rgb")
        return report
    report.frame_ids = list(seq.frame_ids)
    if not seq.frame_ids:
        out.error(f"no colour frames for the first camera {seq.camera_ids[0]!r}", root / "rgb" / seq.camera_ids[0])
    _check_meta(seq, out)

    frame_set = set(seq.frame_ids)
    ref_size: dict[str, tuple[int, int] | None] = {}
    scales: dict[str, float | None] = {}
    present: dict[tuple[str, str], bool] = {}
    for cam in seq.camera_ids:
        rgb_files = seq.files("rgb", cam)
        size = None
        first = next((rgb_files[f] for f in seq.frame_ids if f in rgb_files), None)
        if first is not None:
            try:
                size = image_size(first)
            except CaptureFormatError:
                size = None  # reported with the frame
        ref_size[cam] = size
        scales[cam] = _check_calibration(seq, cam, size, out)
        for modality in MODALITIES:
            files = seq.files(modality, cam)
            present[(modality, cam)] = bool(files)
            if not files and modality in ("rgb", "depth") and seq.frame_ids:
                out.error(f"no {modality} frames for camera {cam}", root / modality / cam, camera=cam)
            extra = [f for f in files if f not in frame_set]
            if extra and seq.frame_ids:
                out.warning(f"{len(extra)} {modality} file(s) not in the frame list of camera "
                            f"{seq.camera_ids[0]} (ignored), e.g. {extra[:3]}", root / modality / cam, camera=cam)
    for cue in _CUES:  # a cue present for some cameras only
        have = [c for c in seq.camera_ids if present[(cue, c)]]
        for cam in seq.camera_ids:
            if have and not present[(cue, cam)]:
                out.warning(f"no {cue} cues for camera {cam} (other cameras have them)", root / cue / cam, camera=cam)

    depth_medians: dict[str, list[float]] = {c: [] for c in seq.camera_ids}
    total = len(seq.frame_ids)
    for k, frame in enumerate(seq.frame_ids):
        for cam in seq.camera_ids:
            _check_frame(seq, cam, frame, ref_size[cam], present, decode, depth_medians, out)
        if progress is not None:
            progress(k + 1, total)

    lo, hi = DEPTH_RANGE_M
    for cam in seq.camera_ids:
        scale = scales[cam]
        if scale is None or not depth_medians[cam]:
            continue
        median_units = float(np.median(depth_medians[cam]))
        report.median_depth_m[cam] = median_units * scale
        if not lo <= median_units * scale <= hi:
            out.error(_depth_advice(median_units, scale), depth_scale_path(seq.calibration_dir, cam), camera=cam)
    return report


def _check_frame(seq: CaptureSequence, cam: str, frame: str, ref: tuple[int, int] | None,
                 present: dict[tuple[str, str], bool], decode: bool,
                 depth_medians: dict[str, list[float]], out: _Collector) -> None:
    """Presence, integrity, size and value checks of one camera's files for one frame."""
    root = seq.root
    size = None
    rgb = seq.path("rgb", cam, frame)
    if rgb is None:
        if present[("rgb", cam)]:
            out.error("missing colour frame", root / "rgb" / cam / f"{frame}.png", frame, cam)
    else:
        try:
            size = verify_image(rgb) if decode else image_size(rgb)
        except CaptureFormatError as exc:
            out.error(_reason(exc, rgb), rgb, frame, cam)
        else:
            if ref is not None and size != ref:
                out.error(f"colour image is {size[0]}x{size[1]}, other frames of this camera are "
                          f"{ref[0]}x{ref[1]}", rgb, frame, cam)
    expected = ref or size  # the camera's size (first frame): one odd file gives one error

    def compare(what: str, got: tuple[int, int], p: Path) -> None:
        if expected is not None and got != expected:
            out.error(f"{what} is {got[0]}x{got[1]} but the colour images are {expected[0]}x{expected[1]}",
                      p, frame, cam)

    dpt = seq.path("depth", cam, frame)
    if dpt is None:
        if present[("depth", cam)]:
            out.error("missing depth frame", root / "depth" / cam / f"{frame}.png", frame, cam)
    else:
        try:
            if decode:
                verify_image(dpt)
                units = read_depth_png(dpt)
                got = (units.shape[1], units.shape[0])
            else:
                got = image_size(dpt)
        except CaptureFormatError as exc:
            out.error(_reason(exc, dpt), dpt, frame, cam)
        else:
            compare("depth image", got, dpt)
            if decode:
                valid = units[units > 0]
                if valid.size:
                    depth_medians[cam].append(float(np.median(valid)))
                else:
                    out.warning("no valid depth (all zero)", dpt, frame, cam)

    seg = seq.path("segmentation", cam, frame)
    if seg is None:
        if present[("segmentation", cam)]:
            out.warning("missing segmentation cue", root / "segmentation" / cam / f"{frame}.png", frame, cam)
    else:
        try:
            if decode:
                verify_image(seg)
                labels = read_segmentation(seg)
                got = (labels.shape[1], labels.shape[0])
            else:
                got = image_size(seg)
        except CaptureFormatError as exc:
            out.error(_reason(exc, seg), seg, frame, cam)
        else:
            compare("segmentation", got, seg)

    kp = seq.path("keypoints2d", cam, frame)
    if kp is None:
        if present[("keypoints2d", cam)]:
            out.warning("missing 2D keypoint cue", root / "keypoints2d" / cam / f"{frame}.json", frame, cam)
    else:
        _check_keypoints(kp, expected, cam, frame, out)
