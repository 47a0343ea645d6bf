"""Colour, label and uint16 depth images on disk (PNG / JPEG, via Pillow).

Conventions: arrays are row-major ``(H, W[, C])`` with pixel ``(u, v)`` at ``array[v, u]``;
colour is RGB order (not OpenCV's BGR). Every reader fully decodes the file, so a truncated or
corrupt file raises :class:`~honnotate.io.files.CaptureFormatError` naming the file instead of
returning a partly grey image; a missing file raises :class:`FileNotFoundError` naming it.
Writers are atomic (see :mod:`honnotate.io.files`).
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from honnotate.io.files import CaptureFormatError, atomic_write_bytes

__all__ = [
    "IMAGE_SUFFIXES",
    "read_image",
    "write_image",
    "read_label_png",
    "write_label_png",
    "read_depth_png",
    "write_depth_png",
    "depth_units_to_metres",
    "metres_to_depth_units",
    "image_size",
    "verify_image",
]

#: File suffixes accepted for colour images, in lookup order.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")

_DECODE_ERRORS = (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError,
                  Image.DecompressionBombError)


def _open_decoded(path: Path) -> Image.Image:
    """Open and fully decode ``path``; errors name the file."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    try:
        with Image.open(path) as im:
            im.load()
            return im.copy()
    except _DECODE_ERRORS as exc:
        raise CaptureFormatError(f"{path}: cannot decode image ({type(exc).__name__}: {exc})") from exc


def _encode(image: Image.Image, fmt: str, **params) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=fmt, **params)
    return buf.getvalue()


def _format_for(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix == ".png":
        return "PNG"
    if suffix in (".jpg", ".jpeg"):
        return "JPEG"
    raise ValueError(f"{path}: unsupported image suffix {suffix!r}; use .png, .jpg or .jpeg")


def read_image(path: str | Path) -> np.ndarray:
    """Read a colour image.

    Args:
        path: PNG or JPEG file; grey, palette, RGBA and CMYK images are converted to RGB.

    Returns:
        ``(H, W, 3) uint8``, RGB order.

    Raises:
        FileNotFoundError: the file does not exist.
        CaptureFormatError: the file is truncated, corrupt, or a 16-bit / float image.
    """
    path = Path(path)
    im = _open_decoded(path)
    if im.mode not in ("RGB", "RGBA", "L", "LA", "P", "PA", "CMYK", "YCbCr", "1"):
        raise CaptureFormatError(
            f"{path}: expected an 8-bit colour image, got mode {im.mode} (a depth or label map?)")
    if im.mode != "RGB":
        im = im.convert("RGB")
    return np.asarray(im, dtype=np.uint8).copy()


def write_image(path: str | Path, image: np.ndarray, *, jpeg_quality: int = 95,
                durable: bool = True) -> Path:
    """Write a colour or grey image; the format follows the suffix (.png lossless, .jpg/.jpeg).

    Args:
        path: destination file.
        image: ``(H, W, 3)`` RGB or ``(H, W)`` grey, ``uint8``.
        jpeg_quality: JPEG quality 1..95 (ignored for PNG).
        durable: fsync before the atomic rename.
    """
    path = Path(path)
    fmt = _format_for(path)
    image = np.asarray(image)
    if image.dtype != np.uint8 or not (image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 3)):
        raise ValueError(f"{path}: expected image of shape (H, W, 3) or (H, W) uint8, "
                         f"got {image.shape} {image.dtype}")
    pil = Image.fromarray(np.ascontiguousarray(image))
    params = {"quality": int(jpeg_quality)} if fmt == "JPEG" else {}
    return atomic_write_bytes(path, _encode(pil, fmt, **params), durable=durable)


def read_label_png(path: str | Path) -> np.ndarray:
    """Read a single-channel 8-bit label PNG (mode ``L``, or ``P`` read as palette indices).

    Returns:
        ``(H, W) uint8`` label values.
    """
    path = Path(path)
    im = _open_decoded(path)
    if im.mode not in ("L", "P"):
        raise CaptureFormatError(
            f"{path}: expected a single-channel 8-bit label PNG (mode L or P), got mode {im.mode}")
    return np.asarray(im, dtype=np.uint8).copy()


def write_label_png(path: str | Path, labels: np.ndarray, *, durable: bool = True) -> Path:
    """Write ``(H, W) uint8`` labels as a lossless grey PNG (mode ``L``)."""
    path = Path(path)
    labels = np.asarray(labels)
    if labels.ndim != 2 or labels.dtype != np.uint8:
        raise ValueError(f"{path}: expected labels of shape (H, W) uint8, got {labels.shape} {labels.dtype}")
    if _format_for(path) != "PNG":
        raise ValueError(f"{path}: labels must be stored losslessly as .png")
    return atomic_write_bytes(path, _encode(Image.fromarray(np.ascontiguousarray(labels)), "PNG"),
                              durable=durable)


def read_depth_png(path: str | Path) -> np.ndarray:
    """Read a single-channel 16-bit depth PNG (capture layout; metres = value * depth_scale).

    Returns:
        ``(H, W) uint16`` raw sensor units (0 = no measurement).

    Raises:
        CaptureFormatError: corrupt file, or not a 16-bit single-channel PNG (an RGB-encoded
            HO-3D depth image must be read with :func:`honnotate.io.ho3d.read_ho3d_depth_png`).
    """
    path = Path(path)
    im = _open_decoded(path)
    if im.mode in ("I;16", "I;16L", "I;16B"):
        return np.asarray(im).astype(np.uint16)
    if im.mode == "I":
        arr = np.asarray(im)
        if arr.size and (arr.min() < 0 or arr.max() > 65535):
            raise CaptureFormatError(f"{path}: depth values outside the uint16 range")
        return arr.astype(np.uint16)
    hint = (" (an HO-3D RGB-encoded depth image? read it with honnotate.io.ho3d.read_ho3d_depth_png)"
            if im.mode == "RGB" else "")
    raise CaptureFormatError(f"{path}: expected a 16-bit single-channel depth PNG, got mode {im.mode}{hint}")


def write_depth_png(path: str | Path, depth_units: np.ndarray, *, durable: bool = True) -> Path:
    """Write ``(H, W) uint16`` raw depth units as a 16-bit grey PNG (lossless)."""
    path = Path(path)
    depth_units = np.asarray(depth_units)
    if depth_units.ndim != 2 or depth_units.dtype != np.uint16:
        raise ValueError(f"{path}: expected depth of shape (H, W) uint16, got {depth_units.shape} {depth_units.dtype}")
    if _format_for(path) != "PNG":
        raise ValueError(f"{path}: depth must be stored losslessly as .png")
    pil = Image.fromarray(np.ascontiguousarray(depth_units))
    return atomic_write_bytes(path, _encode(pil, "PNG"), durable=durable)


def depth_units_to_metres(depth_units: np.ndarray, depth_scale: float) -> np.ndarray:
    """Raw sensor depth to metres.

    Args:
        depth_units: ``(H, W)`` integer sensor units, 0 = no measurement.
        depth_scale: metres per unit (e.g. 0.001 for a millimetre sensor), > 0.

    Returns:
        ``(H, W) float32`` metres, 0 where there is no measurement.
    """
    if not (np.isfinite(depth_scale) and depth_scale > 0):
        raise ValueError(f"depth_scale must be a positive number of metres per unit, got {depth_scale}")
    return (np.asarray(depth_units).astype(np.float64) * depth_scale).astype(np.float32)


def metres_to_depth_units(depth_m: np.ndarray, depth_scale: float) -> np.ndarray:
    """Metres to raw uint16 sensor units (rounded); 0 (no measurement) stays 0.

    Args:
        depth_m: ``(H, W)`` float metres, >= 0 and finite; 0 = no measurement.
        depth_scale: metres per unit, > 0.

    Returns:
        ``(H, W) uint16``.

    Raises:
        ValueError: negative or non-finite depth, or depth beyond ``65535 * depth_scale``.
    """
    if not (np.isfinite(depth_scale) and depth_scale > 0):
        raise ValueError(f"depth_scale must be a positive number of metres per unit, got {depth_scale}")
    depth_m = np.asarray(depth_m, dtype=np.float64)
    if depth_m.ndim != 2:
        raise ValueError(f"expected depth of shape (H, W), got {depth_m.shape}")
    if not np.isfinite(depth_m).all() or (depth_m < 0).any():
        raise ValueError("depth must be finite and >= 0 metres (0 = no measurement)")
    units = np.rint(depth_m / depth_scale)
    if units.size and units.max() > 65535:
        raise ValueError(
            f"depth up to {depth_m.max():.3f} m exceeds the uint16 range at depth_scale {depth_scale} "
            f"({65535 * depth_scale:.3f} m): set far pixels to 0 (missing) or use a larger depth_scale")
    return units.astype(np.uint16)


def image_size(path: str | Path) -> tuple[int, int]:
    """``(width, height)`` in pixels from the file header, without decoding the pixels."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    try:
        with Image.open(path) as im:
            return int(im.size[0]), int(im.size[1])
    except _DECODE_ERRORS as exc:
        raise CaptureFormatError(f"{path}: cannot read image header ({type(exc).__name__}: {exc})") from exc


def verify_image(path: str | Path) -> tuple[int, int]:
    """Check that an image file is complete and decodes: chunk checksums (PNG) and pixel data.

    Catches truncations that a plain decode misses (e.g. a PNG cut inside its end chunk).

    Returns:
        ``(width, height)`` in pixels.

    Raises:
        FileNotFoundError, CaptureFormatError naming the file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    try:
        with Image.open(path) as im:
            im.verify()
        with Image.open(path) as im:
            im.load()
            return int(im.size[0]), int(im.size[1])
    except _DECODE_ERRORS as exc:
        raise CaptureFormatError(f"{path}: corrupt or truncated image ({type(exc).__name__}: {exc})") from exc
