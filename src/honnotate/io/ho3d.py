"""HO-3D file formats: per-frame annotation pickles and RGB-encoded depth PNGs.

Annotation pickles (``meta/<frame>.pkl``) are dicts with the keys of :data:`ANNOTATION_SHAPES`,
in the OpenGL camera frame (x right, y up, z backward; the hand is at negative z). They are
read with honnotate's restricted unpickler (:func:`honnotate.io.safe_pickle.safe_load`): numpy
arrays and plain values only, so a pickle that names any other global is refused without
running it. They are written with pickle protocol 2 and numpy arrays referenced as
``numpy.core.multiarray._reconstruct`` so that Python 2 / numpy 1.x toolkits (which read with
``encoding="latin1"``) and numpy 2 both load them.

Depth PNGs of the released HO-3D dataset store ``metres = (R + 256 * G) * HO3D_DEPTH_SCALE``
in 8-bit channels (B unused, written 0). The official toolkit reads them with ``cv2.imread``,
which returns BGR, and computes ``depth[:, :, 2] + depth[:, :, 1] * 256``: index 2 of BGR is R,
index 1 is G. Read as RGB (Pillow, this module) that is channel 0 + 256 * channel 1.

The annotations stay in HO-3D's OpenGL frame here; convert them with the named converters of
:mod:`honnotate.geometry.conventions` (``opengl_to_opencv_points``, ``opengl_to_opencv_pose``).
"""

from __future__ import annotations

import io
import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from honnotate.io.files import CaptureFormatError, atomic_write_bytes
from honnotate.io.images import read_image, write_image
from honnotate.io.safe_pickle import safe_load

__all__ = [
    "HO3D_DEPTH_SCALE",
    "ANNOTATION_SHAPES",
    "ANNOTATION_KEYS",
    "write_ho3d_annotation",
    "read_ho3d_annotation",
    "encode_ho3d_depth",
    "decode_ho3d_depth",
    "read_ho3d_depth_png",
    "write_ho3d_depth_png",
]

#: Metres per unit of the released HO-3D depth PNGs (R + 256 * G).
HO3D_DEPTH_SCALE = 0.00012498664727900177

#: Allowed shapes per numeric key of an HO-3D annotation (several where HO-3D uses several:
#: the evaluation split stores only the root joint in handJoints3D, objRot is (3,) or (3, 1)).
ANNOTATION_SHAPES: dict[str, tuple[tuple[int, ...], ...]] = {
    "handPose": ((48,),),
    "handTrans": ((3,),),
    "handBeta": ((10,),),
    "handJoints3D": ((21, 3), (3,)),
    "objRot": ((3,), (3, 1)),
    "objTrans": ((3,),),
    "objCorners3DRest": ((8, 3),),
    "objCorners3D": ((8, 3),),
    "camMat": ((3, 3),),
    "handBoundingBox": ((4,),),
}
#: The keys a complete annotation has (what :func:`write_ho3d_annotation` requires by default).
ANNOTATION_KEYS = ("handPose", "handTrans", "handBeta", "handJoints3D", "objRot", "objTrans",
                   "objCorners3DRest", "objCorners3D", "objName", "objLabel", "camMat")


# ---------------------------------------------------------------------------------------------
# Annotation pickles


def _to_numpy(value: Any) -> Any:
    if hasattr(value, "detach"):  # torch tensor, any device
        return value.detach().cpu().numpy()
    return value


def _validate_annotation(ann: Mapping[str, Any], source: str, error: type[Exception],
                         required: tuple[str, ...]) -> dict[str, Any]:
    if not isinstance(ann, Mapping):
        raise error(f"{source}: an HO-3D annotation must be a dict, got {type(ann).__name__}")
    missing = [k for k in required if k not in ann]
    if missing:
        raise error(f"{source}: missing annotation keys {missing}")
    out: dict[str, Any] = {}
    for key, value in ann.items():
        if not isinstance(key, str):
            raise error(f"{source}: annotation keys must be strings, got {key!r}")
        value = _to_numpy(value)
        if value is None:  # HO-3D leaves hand fields None where the hand is not annotated
            out[key] = None
        elif key in ANNOTATION_SHAPES:
            arr = np.asarray(value)
            if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
                raise error(f"{source}: key {key!r} must be numeric, got dtype {arr.dtype}")
            if arr.shape not in ANNOTATION_SHAPES[key]:
                raise error(f"{source}: key {key!r} has shape {arr.shape}, expected one of "
                            f"{list(ANNOTATION_SHAPES[key])}")
            if not np.isfinite(arr).all():
                raise error(f"{source}: key {key!r} contains non-finite values")
            out[key] = arr
        elif key == "objName":
            if isinstance(value, bytes):
                value = value.decode("latin1")
            if not isinstance(value, str):
                raise error(f"{source}: key 'objName' must be a string, got {type(value).__name__}")
            out[key] = value
        elif key == "objLabel":
            if isinstance(value, np.ndarray) and value.size == 1:
                value = value.item()
            if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
                raise error(f"{source}: key 'objLabel' must be an integer, got {value!r}")
            out[key] = int(value)
        else:
            out[key] = value
    return out


def _legacy_numpy_globals() -> dict[int, str]:
    """numpy-2 callables that pickles should name by their numpy-1.x location."""
    try:
        from numpy._core import multiarray as ma
    except ImportError:  # pragma: no cover - numpy 1.x names them this way already
        return {}
    return {id(ma._reconstruct): "numpy.core.multiarray\n_reconstruct\n",
            id(ma.scalar): "numpy.core.multiarray\nscalar\n"}


class _CompatPickler(pickle._Pickler):
    """Protocol-2 pickler that names numpy array reconstruction as numpy 1.x does."""

    _legacy = _legacy_numpy_globals()

    def save_global(self, obj, name=None):  # noqa: D102 - pickle hook
        target = self._legacy.get(id(obj))
        if target is None:
            return super().save_global(obj, name)
        self.write(pickle.GLOBAL + target.encode("ascii"))
        self.memoize(obj)


def _plain(value: Any) -> Any:
    """Arrays as float32/int arrays, numpy scalars as Python scalars (portable pickles)."""
    if isinstance(value, np.ndarray):
        if np.issubdtype(value.dtype, np.floating):
            return np.ascontiguousarray(value, dtype=np.float32)
        return np.ascontiguousarray(value)
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(v) for v in value)
    return value


def write_ho3d_annotation(path: str | Path, annotation: Mapping[str, Any], *,
                          required: tuple[str, ...] = ANNOTATION_KEYS, durable: bool = True) -> Path:
    """Write one frame's HO-3D annotation pickle (protocol 2, latin1-compatible, atomic).

    Args:
        path: destination ``.pkl`` file.
        annotation: dict with the keys of :data:`ANNOTATION_KEYS` (OpenGL camera frame, metres,
            axis-angle radians): handPose (48,), handTrans (3,), handBeta (10,),
            handJoints3D (21, 3), objRot (3,) or (3, 1), objTrans (3,), objCorners3DRest (8, 3),
            objCorners3D (8, 3), objName str, objLabel int, camMat (3, 3). numpy arrays or torch
            tensors; floating arrays are stored as float32. A value may be None (not annotated).
            Extra keys are written as given (plain values and arrays only).
        required: keys that must be present.

    Raises:
        ValueError: a missing key, a wrong shape or dtype, a non-finite value (names the key).
    """
    path = Path(path)
    ann = _validate_annotation(annotation, str(path), ValueError, tuple(required))
    buf = io.BytesIO()
    _CompatPickler(buf, protocol=2).dump(_plain(ann))
    return atomic_write_bytes(path, buf.getvalue(), durable=durable)


def read_ho3d_annotation(path: str | Path, *, required: tuple[str, ...] = ()) -> dict[str, Any]:
    """Read an HO-3D annotation pickle through the restricted unpickler.

    Args:
        path: ``meta/<frame>.pkl`` of HO-3D (v2 or v3) or one written by honnotate.
        required: keys that must be present (none by default: HO-3D's evaluation split stores
            only some of them).

    Returns:
        dict; known numeric keys as numpy arrays of the shapes in :data:`ANNOTATION_SHAPES`
        (OpenGL camera frame, metres), objName str, objLabel int, other keys as stored.

    Raises:
        FileNotFoundError; UnsafePickleError (the pickle names a global outside the allow-list;
        nothing is executed); CaptureFormatError naming the file and key (not a dict, wrong
        shape, non-finite values, missing required key).
    """
    path = Path(path)
    data = safe_load(path)  # ValueError naming the file when unreadable, UnsafePickleError
    return _validate_annotation(data, str(path), CaptureFormatError, tuple(required))


# ---------------------------------------------------------------------------------------------
# Depth PNGs


def encode_ho3d_depth(depth_m: np.ndarray) -> np.ndarray:
    """Encode metres as an HO-3D depth image.

    Args:
        depth_m: ``(H, W)`` float metres, finite, in ``[0, 65535 * HO3D_DEPTH_SCALE]`` (8.19 m);
            0 = no measurement.

    Returns:
        ``(H, W, 3) uint8`` in RGB order: R = units % 256, G = units // 256, B = 0, with
        ``units = round(depth_m / HO3D_DEPTH_SCALE)``.
    """
    depth_m = np.asarray(_to_numpy(depth_m), dtype=np.float64)
    if depth_m.ndim != 2:
        raise ValueError(f"expected depth of shape (H, W), got {depth_m.shape}")
    if not np.isfinite(depth_m).all() or (depth_m < 0).any():
        raise ValueError("depth must be finite and >= 0 metres (0 = no measurement)")
    units = np.rint(depth_m / HO3D_DEPTH_SCALE)
    if units.size and units.max() > 65535:
        raise ValueError(f"depth up to {depth_m.max():.3f} m exceeds the HO-3D encoding range "
                         f"({65535 * HO3D_DEPTH_SCALE:.3f} m); set far pixels to 0")
    units = units.astype(np.uint32)
    img = np.zeros(depth_m.shape + (3,), dtype=np.uint8)
    img[..., 0] = units & 0xFF
    img[..., 1] = units >> 8
    return img


def decode_ho3d_depth(image: np.ndarray) -> np.ndarray:
    """Decode an HO-3D depth image to metres.

    Args:
        image: ``(H, W, 3) uint8`` in RGB order (as :func:`honnotate.io.images.read_image`
            returns; an array from ``cv2.imread`` is BGR: reverse its last axis first).

    Returns:
        ``(H, W) float32`` metres, ``(R + 256 * G) * HO3D_DEPTH_SCALE``; 0 = no measurement.
    """
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected an HO-3D depth image of shape (H, W, 3) uint8 (RGB), "
                         f"got {image.shape} {image.dtype}")
    units = image[..., 0].astype(np.float64) + 256.0 * image[..., 1].astype(np.float64)
    return (units * HO3D_DEPTH_SCALE).astype(np.float32)


def read_ho3d_depth_png(path: str | Path) -> np.ndarray:
    """Read a released HO-3D depth PNG: ``(H, W) float32`` metres (0 = no measurement)."""
    path = Path(path)
    image = read_image(path)
    return decode_ho3d_depth(image)


def write_ho3d_depth_png(path: str | Path, depth_m: np.ndarray, *, durable: bool = True) -> Path:
    """Write ``(H, W)`` metres as an HO-3D depth PNG (lossless, atomic); see :func:`encode_ho3d_depth`."""
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ValueError(f"{path}: HO-3D depth must be stored losslessly as .png")
    try:
        image = encode_ho3d_depth(depth_m)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None
    return write_image(path, image, durable=durable)
