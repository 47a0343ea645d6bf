"""Camera calibration files of the capture layout (HOnnotate / HO-3D v3 style).

Per camera ``<cam>`` in ``<seq>/calibration/``:

- ``cam_<cam>_intrinsics.txt``: ``fx: .., fy: .., ppx: .., ppy: ..`` (pixels; the RealSense
  ``rs2_intrinsics`` print-out, one line, comma separated; other keys such as ``width``,
  ``height``, ``model`` and ``coeffs`` may appear and width/height are used when present).
  The principal point uses the pixel-centre-at-integer convention of OpenCV / RealSense.
- ``cam_<cam>_depth_scale.txt``: one float, metres per raw depth unit (0.001 for millimetres).
- ``trans_<cam>.txt``: 4 x 4 camera-to-world matrix (OpenCV camera frame, metres), as HO-3D v3
  stores it; optional when the sequence has one camera (identity).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from honnotate.io.files import CaptureFormatError, atomic_write_text

__all__ = [
    "CameraCalibration",
    "intrinsics_path",
    "depth_scale_path",
    "trans_path",
    "read_intrinsics",
    "write_intrinsics",
    "read_depth_scale",
    "write_depth_scale",
    "read_cam_to_world",
    "write_cam_to_world",
    "rigidity_error",
]

_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_KEY_RE = re.compile(rf"\b(fx|fy|ppx|ppy|width|height)\s*[:=]\s*({_NUMBER})")


@dataclass(frozen=True)
class CameraCalibration:
    """One camera's calibration as stored on disk (numpy, float64).

    Attributes:
        camera_id: folder name of the camera (e.g. "0").
        K: ``(3, 3)`` intrinsics, pixels.
        cam_to_world: ``(4, 4)`` rigid transform, OpenCV camera frame to world, metres.
        depth_scale: metres per raw depth unit, or None when the file is absent.
        width, height: image size in pixels (from the intrinsics file or the first image), or
            None when unknown.
    """

    camera_id: str
    K: np.ndarray
    cam_to_world: np.ndarray
    depth_scale: float | None = None
    width: int | None = None
    height: int | None = None

    def to_camera(self, width: int | None = None, height: int | None = None):
        """The :class:`honnotate.geometry.Camera` (float32 tensors on the CPU).

        Args:
            width, height: image size in pixels; default the stored size (required if unknown).
        """
        import torch

        from honnotate.geometry import Camera

        width = width if width is not None else self.width
        height = height if height is not None else self.height
        if width is None or height is None:
            raise ValueError(f"camera {self.camera_id}: image size unknown; pass width and height")
        return Camera.from_intrinsics(
            float(self.K[0, 0]), float(self.K[1, 1]), float(self.K[0, 2]), float(self.K[1, 2]),
            int(width), int(height),
            cam_to_world=torch.as_tensor(self.cam_to_world, dtype=torch.float32),
            name=self.camera_id,
        )


def intrinsics_path(calib_dir: str | Path, camera_id: str) -> Path:
    """``<calib_dir>/cam_<camera_id>_intrinsics.txt``."""
    return Path(calib_dir) / f"cam_{camera_id}_intrinsics.txt"


def depth_scale_path(calib_dir: str | Path, camera_id: str) -> Path:
    """``<calib_dir>/cam_<camera_id>_depth_scale.txt``."""
    return Path(calib_dir) / f"cam_{camera_id}_depth_scale.txt"


def trans_path(calib_dir: str | Path, camera_id: str) -> Path:
    """``<calib_dir>/trans_<camera_id>.txt``."""
    return Path(calib_dir) / f"trans_{camera_id}.txt"


def _read_text(path: Path) -> str:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise CaptureFormatError(f"{path}: not a text file ({exc})") from exc


def read_intrinsics(path: str | Path) -> tuple[np.ndarray, tuple[int, int] | None]:
    """Parse an intrinsics file.

    Returns:
        ``(K (3, 3) float64 pixels, (width, height) or None)``.

    Raises:
        FileNotFoundError; CaptureFormatError naming the file and the missing or non-finite key.
    """
    path = Path(path)
    found: dict[str, float] = {}
    for key, value in _KEY_RE.findall(_read_text(path)):
        found.setdefault(key, float(value))
    missing = [k for k in ("fx", "fy", "ppx", "ppy") if k not in found]
    if missing:
        raise CaptureFormatError(f"{path}: missing intrinsics {missing}; expected 'fx: .., fy: .., ppx: .., ppy: ..'")
    bad = [k for k, v in found.items() if not np.isfinite(v)]
    if bad:
        raise CaptureFormatError(f"{path}: non-finite values for {bad}")
    K = np.array([[found["fx"], 0.0, found["ppx"]], [0.0, found["fy"], found["ppy"]], [0.0, 0.0, 1.0]])
    size = None
    if "width" in found and "height" in found:
        size = (int(round(found["width"])), int(round(found["height"])))
    return K, size


def write_intrinsics(path: str | Path, K: np.ndarray, width: int | None = None,
                     height: int | None = None, *, durable: bool = True) -> Path:
    """Write ``(3, 3)`` intrinsics (pixels) as ``fx: .., fy: .., ppx: .., ppy: ..[, width: .., height: ..]``.

    Every value read by the HO-3D / HOnnotate parsers is followed by a comma, as in the
    RealSense print-out those parsers were written for.
    """
    path = Path(path)
    K = np.asarray(K.detach().cpu() if hasattr(K, "detach") else K, dtype=np.float64)
    if K.shape != (3, 3):
        raise ValueError(f"{path}: expected K of shape (3, 3), got {K.shape}")
    fx, fy, ppx, ppy = (float(K[0, 0]), float(K[1, 1]), float(K[0, 2]), float(K[1, 2]))
    text = f"fx: {fx!r}, fy: {fy!r}, ppx: {ppx!r}, ppy: {ppy!r}"  # repr: shortest exact form
    if width is not None and height is not None:
        text += f", width: {int(width)}, height: {int(height)}"
    return atomic_write_text(path, text + "\n", durable=durable)


def read_depth_scale(path: str | Path) -> float:
    """Read a depth-scale file: metres per raw depth unit (> 0)."""
    path = Path(path)
    text = _read_text(path).strip()
    try:
        value = float(text.split()[0]) if text else float("nan")
    except ValueError as exc:
        raise CaptureFormatError(f"{path}: expected one number (metres per depth unit), got {text[:40]!r}") from exc
    if not (np.isfinite(value) and value > 0):
        raise CaptureFormatError(f"{path}: depth scale must be a positive number of metres per unit, got {text[:40]!r}")
    return value


def write_depth_scale(path: str | Path, depth_scale: float, *, durable: bool = True) -> Path:
    """Write one float: metres per raw depth unit."""
    if not (np.isfinite(depth_scale) and depth_scale > 0):
        raise ValueError(f"{path}: depth scale must be positive, got {depth_scale}")
    return atomic_write_text(path, f"{float(depth_scale)!r}\n", durable=durable)


def read_cam_to_world(path: str | Path) -> np.ndarray:
    """Read a 4 x 4 camera-to-world matrix (whitespace separated, as ``np.savetxt`` writes).

    Returns:
        ``(4, 4) float64``; rigidity is not enforced here (see :func:`rigidity_error`).
    """
    path = Path(path)
    text = _read_text(path)
    try:
        values = np.array([float(x) for x in text.replace(",", " ").split()], dtype=np.float64)
    except ValueError as exc:
        raise CaptureFormatError(f"{path}: expected 16 numbers (a 4 x 4 matrix): {exc}") from exc
    if values.size != 16:
        raise CaptureFormatError(f"{path}: expected 16 numbers (a 4 x 4 matrix), got {values.size}")
    if not np.isfinite(values).all():
        raise CaptureFormatError(f"{path}: non-finite values in the 4 x 4 matrix")
    return values.reshape(4, 4)


def write_cam_to_world(path: str | Path, cam_to_world: np.ndarray, *, durable: bool = True) -> Path:
    """Write a ``(4, 4)`` camera-to-world matrix (metres), one row per line."""
    path = Path(path)
    T = np.asarray(cam_to_world.detach().cpu() if hasattr(cam_to_world, "detach") else cam_to_world,
                   dtype=np.float64)
    if T.shape != (4, 4):
        raise ValueError(f"{path}: expected cam_to_world of shape (4, 4), got {T.shape}")
    text = "\n".join(" ".join(repr(float(x)) for x in row) for row in T) + "\n"
    return atomic_write_text(path, text, durable=durable)


def rigidity_error(T: np.ndarray) -> float:
    """How far a ``(4, 4)`` matrix is from a rigid transform (rotation + translation).

    Returns:
        ``max(|R^T R - I|, |det R - 1|, |last row - [0, 0, 0, 1]|)`` (unitless); ~1e-7 for a
        rigid matrix written in float32, >= 1e-2 for a scaled, sheared or mirrored one.
    """
    T = np.asarray(T, dtype=np.float64)
    if T.shape != (4, 4):
        raise ValueError(f"expected a (4, 4) matrix, got {T.shape}")
    R = T[:3, :3]
    return float(max(np.abs(R.T @ R - np.eye(3)).max(), abs(np.linalg.det(R) - 1.0),
                     np.abs(T[3] - np.array([0.0, 0.0, 0.0, 1.0])).max()))
