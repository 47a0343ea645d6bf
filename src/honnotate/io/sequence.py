"""Capture sequences on disk: layout, metadata, lazy frame access, and an atomic writer.

Layout (one folder per sequence; ``<cam>`` a camera id, ``<frame>`` a frame id)::

    <seq>/rgb/<cam>/<frame>.png|jpg            colour, 8-bit RGB
    <seq>/depth/<cam>/<frame>.png              uint16; metres = value * depth_scale
    <seq>/calibration/cam_<cam>_intrinsics.txt "fx: .., fy: .., ppx: .., ppy: .."
    <seq>/calibration/cam_<cam>_depth_scale.txt one float (metres per unit)
    <seq>/calibration/trans_<cam>.txt          4 x 4 camera-to-world (optional with one camera)
    <seq>/segmentation/<cam>/<frame>.png       cues: 0 background, 1 object, 2 hand
    <seq>/keypoints2d/<cam>/<frame>.json       cues: 21 x (u, v, confidence), MANO order
    <seq>/meta.yaml                            object, hand side, subject shape, ...

Camera ids are the folder names under ``rgb/``; frame ids are file stems. Both are sorted
naturally ("2" before "10"). **The frame list is the colour frames of the first camera**;
frames missing in another camera or modality are reported by
:func:`honnotate.io.check.check_sequence`, and files whose stem is not in the list are ignored.
Hidden files (such as the temporary files of an interrupted atomic write) are ignored.

Nothing is decoded when a sequence is opened: folders are listed on first use and images are
read when asked for.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from honnotate.io.calibration import (
    CameraCalibration,
    depth_scale_path,
    intrinsics_path,
    read_cam_to_world,
    read_depth_scale,
    read_intrinsics,
    trans_path,
    write_cam_to_world,
    write_depth_scale,
    write_intrinsics,
)
from honnotate.io.cues import (
    read_keypoints2d,
    read_segmentation,
    write_keypoints2d,
    write_segmentation,
)
from honnotate.io.files import CaptureFormatError, atomic_write_text
from honnotate.io.images import (
    IMAGE_SUFFIXES,
    depth_units_to_metres,
    image_size,
    metres_to_depth_units,
    read_depth_png,
    read_image,
    write_depth_png,
    write_image,
)

__all__ = [
    "MODALITIES",
    "META_FILE",
    "SequenceMeta",
    "read_meta",
    "write_meta",
    "CaptureSequence",
    "open_sequence",
    "SequenceWriter",
    "write_sequence",
    "natural_sort_key",
]

#: Per-frame modalities: folder name -> accepted suffixes (first one is what writers use).
MODALITIES: dict[str, tuple[str, ...]] = {
    "rgb": IMAGE_SUFFIXES,
    "depth": (".png",),
    "segmentation": (".png",),
    "keypoints2d": (".json",),
}
META_FILE = "meta.yaml"
CALIBRATION_DIR = "calibration"


def natural_sort_key(name: str) -> tuple:
    """Sort key ordering digit runs numerically: "2" < "10", "cam2" < "cam10"."""
    return tuple((0, int(tok), "") if tok.isdigit() else (1, 0, tok) for tok in re.split(r"(\d+)", name) if tok)


def _check_id(value: str, what: str) -> str:
    if not isinstance(value, str) or not value or value.startswith(".") or "/" in value or "\\" in value:
        raise ValueError(f"invalid {what} {value!r}: a non-empty file name without '/' or a leading '.'")
    return value


# ---------------------------------------------------------------------------------------------
# meta.yaml


class SequenceMeta(BaseModel):
    """What ``<seq>/meta.yaml`` says about the recording.

    Attributes:
        object: built-in object name (e.g. ``006_mustard_bottle``) or a mesh path (.obj/.ply/...),
            relative to the sequence folder unless absolute.
        hand_side: "right" or "left".
        hand_model: hand model kind ("open": the Anny-derived open hand; "mano": a user-supplied
            MANO pickle).
        betas: subject shape coefficients (10 for MANO), or None.
        shape_file: file with the subject's betas (relative to the sequence folder), or None.
        object_rotvec_init: optional rough first-frame object rotation, axis-angle radians,
            object to world frame (the world frame is camera 0's OpenCV frame with one camera).
        object_trans_init: optional rough first-frame object translation, metres, world frame.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    object: str = Field(min_length=1)
    hand_side: str = "right"
    hand_model: str = Field(default="open", min_length=1)
    betas: list[float] | None = None
    shape_file: str | None = None
    object_rotvec_init: tuple[float, float, float] | None = None
    object_trans_init: tuple[float, float, float] | None = None

    @field_validator("hand_side")
    @classmethod
    def _side(cls, v: str) -> str:
        if v not in ("right", "left"):
            raise ValueError(f"must be 'right' or 'left', got {v!r}")
        return v

    @field_validator("betas")
    @classmethod
    def _betas(cls, v: list[float] | None) -> list[float] | None:
        if v is not None and (len(v) == 0 or not np.isfinite(v).all()):
            raise ValueError("must be a non-empty list of finite numbers")
        return v

    @field_validator("object_rotvec_init", "object_trans_init")
    @classmethod
    def _finite(cls, v):
        if v is not None and not np.isfinite(v).all():
            raise ValueError("must be 3 finite numbers")
        return v

    @model_validator(mode="after")
    def _exclusive(self) -> SequenceMeta:
        if self.betas is not None and self.shape_file is not None:
            raise ValueError("give either 'betas' or 'shape_file', not both")
        if (self.object_rotvec_init is None) != (self.object_trans_init is None):
            raise ValueError("give both 'object_rotvec_init' and 'object_trans_init', or neither")
        return self

    def object_mesh_path(self, sequence_dir: str | Path) -> Path | None:
        """The object mesh file when :attr:`object` is a path (None for a built-in name)."""
        p = Path(self.object)
        if p.suffix.lower() not in (".obj", ".ply", ".stl", ".off", ".glb", ".gltf") and len(p.parts) == 1:
            return None
        return p if p.is_absolute() else Path(sequence_dir) / p


def read_meta(path: str | Path) -> SequenceMeta:
    """Read and validate ``meta.yaml``; errors name the file and the key.

    Raises:
        FileNotFoundError; CaptureFormatError (invalid YAML, unknown or invalid keys).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise CaptureFormatError(f"{path}: invalid YAML ({exc})") from exc
    if not isinstance(data, dict):
        raise CaptureFormatError(f"{path}: expected a mapping of keys to values, got {type(data).__name__}")
    try:
        return SequenceMeta.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"key '{'.'.join(str(p) for p in err['loc']) or '<root>'}': {err['msg']}" for err in exc.errors())
        raise CaptureFormatError(f"{path}: {problems}") from None


def write_meta(path: str | Path, meta: SequenceMeta | Mapping[str, Any], *, durable: bool = True) -> Path:
    """Write ``meta.yaml`` (validated first; atomic)."""
    meta = meta if isinstance(meta, SequenceMeta) else SequenceMeta.model_validate(dict(meta))
    data = meta.model_dump(exclude_none=True)
    for key in ("object_rotvec_init", "object_trans_init"):
        if key in data:
            data[key] = list(data[key])
    return atomic_write_text(path, yaml.safe_dump(data, sort_keys=False), durable=durable)


# ---------------------------------------------------------------------------------------------
# Reading


class CaptureSequence:
    """A capture sequence on disk, read lazily (see the module docstring for the layout).

    Frames may be given as a frame id (``"0000"``) or an index into :attr:`frame_ids` (int).
    """

    def __init__(self, root: str | Path) -> None:
        root = Path(root)
        if not root.is_dir():
            raise FileNotFoundError(f"{root}: no such sequence folder")
        if not (root / "rgb").is_dir():
            raise FileNotFoundError(f"{root / 'rgb'}: no colour folder; expected <seq>/rgb/<cam>/<frame>.png")
        self.root = root
        self.calibration_dir = root / CALIBRATION_DIR
        self._listing: dict[tuple[str, str], dict[str, Path]] = {}
        self._calibration: dict[str, CameraCalibration] = {}

    def __repr__(self) -> str:
        return f"CaptureSequence({str(self.root)!r}, cameras={self.camera_ids}, frames={len(self)})"

    def __len__(self) -> int:
        return len(self.frame_ids)

    # --- indexing ------------------------------------------------------------------------
    @cached_property
    def camera_ids(self) -> list[str]:
        """Camera ids: the folders under ``rgb/``, naturally sorted."""
        ids = [p.name for p in (self.root / "rgb").iterdir() if p.is_dir() and not p.name.startswith(".")]
        return sorted(ids, key=natural_sort_key)

    @cached_property
    def frame_ids(self) -> list[str]:
        """Frame ids: the colour frames of the first camera, naturally sorted."""
        if not self.camera_ids:
            return []
        return list(self.files("rgb", self.camera_ids[0]))

    def files(self, modality: str, camera_id: str) -> dict[str, Path]:
        """Frame id -> file of one modality and camera, naturally sorted (listed once, cached).

        Args:
            modality: one of :data:`MODALITIES` ("rgb", "depth", "segmentation", "keypoints2d").
            camera_id: camera folder name.
        """
        if modality not in MODALITIES:
            raise ValueError(f"unknown modality {modality!r}; expected one of {list(MODALITIES)}")
        key = (modality, camera_id)
        if key not in self._listing:
            folder = self.root / modality / camera_id
            found: dict[str, Path] = {}
            if folder.is_dir():
                suffixes = MODALITIES[modality]
                for p in folder.iterdir():
                    suffix = p.suffix.lower()
                    if p.name.startswith(".") or suffix not in suffixes or not p.is_file():
                        continue
                    prev = found.get(p.stem)
                    if prev is None or suffixes.index(suffix) < suffixes.index(prev.suffix.lower()):
                        found[p.stem] = p
            self._listing[key] = {k: found[k] for k in sorted(found, key=natural_sort_key)}
        return self._listing[key]

    def frame_id(self, frame: str | int) -> str:
        """The frame id of ``frame`` (an id, or an index into :attr:`frame_ids`)."""
        if isinstance(frame, (int, np.integer)) and not isinstance(frame, bool):
            n = len(self.frame_ids)
            if not -n <= frame < n:
                raise IndexError(f"{self.root}: frame index {frame} out of range ({n} frames)")
            return self.frame_ids[frame]
        if isinstance(frame, str):
            return frame
        raise TypeError(f"frame must be a frame id (str) or an index (int), got {type(frame).__name__}")

    def _camera(self, camera_id: str) -> str:
        if camera_id not in self.camera_ids:
            raise KeyError(f"{self.root}: no camera {camera_id!r}; cameras are {self.camera_ids}")
        return camera_id

    def path(self, modality: str, camera_id: str, frame: str | int) -> Path | None:
        """The file of one modality, camera and frame, or None when absent."""
        return self.files(modality, self._camera(camera_id)).get(self.frame_id(frame))

    def _require(self, modality: str, camera_id: str, frame: str | int) -> Path:
        p = self.path(modality, camera_id, frame)
        if p is None:
            expected = self.root / modality / camera_id / f"{self.frame_id(frame)}{MODALITIES[modality][0]}"
            raise FileNotFoundError(f"{expected}: no such file ({modality} of camera {camera_id}, "
                                    f"frame {self.frame_id(frame)})")
        return p

    # --- metadata and calibration --------------------------------------------------------
    @cached_property
    def meta(self) -> SequenceMeta:
        """The validated ``meta.yaml`` (FileNotFoundError / CaptureFormatError naming it)."""
        return read_meta(self.root / META_FILE)

    def image_size(self, camera_id: str) -> tuple[int, int]:
        """``(width, height)`` of a camera's images, from the first colour frame's header."""
        files = self.files("rgb", self._camera(camera_id))
        if not files:
            raise FileNotFoundError(f"{self.root / 'rgb' / camera_id}: no colour frames")
        return image_size(next(iter(files.values())))

    def calibration(self, camera_id: str) -> CameraCalibration:
        """One camera's calibration (numpy), read once.

        Image size: from the first colour frame's header (the intrinsics file's width/height
        when the camera has no frames). ``cam_to_world`` is the identity when ``trans_<cam>.txt``
        is absent and the sequence has one camera; with several cameras it is required.
        ``depth_scale`` is None when its file is absent.
        """
        self._camera(camera_id)
        if camera_id not in self._calibration:
            K, size = read_intrinsics(intrinsics_path(self.calibration_dir, camera_id))
            if self.files("rgb", camera_id):
                size = self.image_size(camera_id)
            ds_file = depth_scale_path(self.calibration_dir, camera_id)
            depth_scale = read_depth_scale(ds_file) if ds_file.exists() else None
            t_file = trans_path(self.calibration_dir, camera_id)
            if t_file.exists():
                T = read_cam_to_world(t_file)
            elif len(self.camera_ids) == 1:
                T = np.eye(4)
            else:
                raise FileNotFoundError(f"{t_file}: no such file (camera-to-world extrinsics are "
                                        f"required with {len(self.camera_ids)} cameras)")
            self._calibration[camera_id] = CameraCalibration(
                camera_id=camera_id, K=K, cam_to_world=T, depth_scale=depth_scale,
                width=size[0] if size else None, height=size[1] if size else None)
        return self._calibration[camera_id]

    @cached_property
    def cameras(self) -> dict[str, Any]:
        """Camera id -> :class:`honnotate.geometry.Camera` (float32, CPU), in :attr:`camera_ids` order."""
        return {cid: self.calibration(cid).to_camera() for cid in self.camera_ids}

    def depth_scale(self, camera_id: str) -> float:
        """Metres per raw depth unit of a camera (FileNotFoundError naming the file if absent)."""
        scale = self.calibration(camera_id).depth_scale
        if scale is None:
            raise FileNotFoundError(f"{depth_scale_path(self.calibration_dir, camera_id)}: no such file")
        return scale

    # --- frames --------------------------------------------------------------------------
    def rgb(self, camera_id: str, frame: str | int) -> np.ndarray:
        """Colour image: ``(H, W, 3) uint8`` RGB."""
        return read_image(self._require("rgb", camera_id, frame))

    def depth_units(self, camera_id: str, frame: str | int) -> np.ndarray:
        """Raw depth: ``(H, W) uint16`` sensor units (0 = no measurement)."""
        return read_depth_png(self._require("depth", camera_id, frame))

    def depth(self, camera_id: str, frame: str | int) -> np.ndarray:
        """Depth: ``(H, W) float32`` metres along the camera z axis (0 = no measurement)."""
        return depth_units_to_metres(self.depth_units(camera_id, frame), self.depth_scale(camera_id))

    def segmentation(self, camera_id: str, frame: str | int) -> np.ndarray | None:
        """Segmentation cue: ``(H, W) uint8`` in {0 background, 1 object, 2 hand}, or None if absent."""
        p = self.path("segmentation", camera_id, frame)
        return None if p is None else read_segmentation(p)

    def keypoints2d(self, camera_id: str, frame: str | int) -> np.ndarray | None:
        """2D keypoint cue: ``(21, 3) float32`` (u, v pixels, confidence), MANO order, or None."""
        p = self.path("keypoints2d", camera_id, frame)
        return None if p is None else read_keypoints2d(p)

    def has_cues(self, cues: Sequence[str] = ("segmentation", "keypoints2d")) -> bool:
        """True when every camera has every listed cue for every frame (file presence only)."""
        if not self.frame_ids:
            return False
        for cue in cues:
            for cid in self.camera_ids:
                present = self.files(cue, cid)
                if any(f not in present for f in self.frame_ids):
                    return False
        return True


def open_sequence(path: str | Path) -> CaptureSequence:
    """Open a capture sequence folder (nothing is decoded; see :class:`CaptureSequence`)."""
    return CaptureSequence(path)


# ---------------------------------------------------------------------------------------------
# Writing


def _as_numpy(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def _calibration_of(cam: Any, camera_id: str) -> tuple[np.ndarray, np.ndarray, int, int]:
    """(K (3, 3), cam_to_world (4, 4), width, height) of a Camera or CameraCalibration."""
    try:
        K = _as_numpy(cam.K).astype(np.float64)
        T = _as_numpy(cam.cam_to_world).astype(np.float64)
        width, height = cam.width, cam.height
    except AttributeError as exc:
        raise TypeError(f"camera {camera_id!r}: expected a honnotate.geometry.Camera or CameraCalibration "
                        f"(K, cam_to_world, width, height), got {type(cam).__name__}") from exc
    if K.shape != (3, 3) or T.shape != (4, 4):
        raise ValueError(f"camera {camera_id!r}: expected K (3, 3) and cam_to_world (4, 4), got {K.shape}, {T.shape}")
    if width is None or height is None:
        raise ValueError(f"camera {camera_id!r}: image size unknown")
    return K, T, int(width), int(height)


class SequenceWriter:
    """Writes a capture sequence in the layout above; every file is written atomically.

    The constructor writes the calibration files and ``meta.yaml``; :meth:`write_frame` writes
    one camera's data for one frame. A crash leaves complete files only (never a truncated
    one); re-running overwrites.

    Args:
        path: sequence folder (created).
        cameras: camera id -> :class:`honnotate.geometry.Camera` (or ``CameraCalibration``), or
            a sequence of cameras named by their ``name``; K in pixels, cam_to_world
            OpenCV-camera-to-world in metres.
        depth_scale: metres per raw depth unit, for all cameras or per camera id.
        meta: the sequence metadata (written to ``meta.yaml``), or None to write none.
        image_format: "png" (lossless) or "jpg" for the colour images.
        frame_digits: zero padding of integer frame ids (4: frame 7 -> "0007").
        write_trans: write ``trans_<cam>.txt`` (default: always, even with one camera).
        durable: fsync each file before its rename.
    """

    def __init__(self, path: str | Path, cameras: Mapping[str, Any] | Sequence[Any], depth_scale: float | Mapping[str, float] = 0.001,
                 meta: SequenceMeta | Mapping[str, Any] | None = None, *, image_format: str = "png",
                 frame_digits: int = 4, write_trans: bool = True, durable: bool = True) -> None:
        self.root = Path(path)
        if image_format not in ("png", "jpg"):
            raise ValueError(f"image_format must be 'png' or 'jpg', got {image_format!r}")
        if not isinstance(cameras, Mapping):
            cameras = {str(c.name): c for c in cameras}
        if not cameras:
            raise ValueError("at least one camera is required")
        self.image_format = image_format
        self.frame_digits = int(frame_digits)
        self.durable = durable
        self._cams: dict[str, tuple[np.ndarray, np.ndarray, int, int]] = {}
        self._depth_scale: dict[str, float] = {}
        for cid, cam in cameras.items():
            cid = _check_id(str(cid), "camera id")
            self._cams[cid] = _calibration_of(cam, cid)
            scale = depth_scale[cid] if isinstance(depth_scale, Mapping) else depth_scale
            if not (np.isfinite(scale) and scale > 0):
                raise ValueError(f"camera {cid!r}: depth_scale must be positive metres per unit, got {scale}")
            self._depth_scale[cid] = float(scale)
        if meta is not None:
            meta = meta if isinstance(meta, SequenceMeta) else SequenceMeta.model_validate(dict(meta))
        calib = self.root / CALIBRATION_DIR
        for cid, (K, T, w, h) in self._cams.items():
            write_intrinsics(intrinsics_path(calib, cid), K, w, h, durable=durable)
            write_depth_scale(depth_scale_path(calib, cid), self._depth_scale[cid], durable=durable)
            if write_trans or len(self._cams) > 1:
                write_cam_to_world(trans_path(calib, cid), T, durable=durable)
            (self.root / "rgb" / cid).mkdir(parents=True, exist_ok=True)
        if meta is not None:
            write_meta(self.root / META_FILE, meta, durable=durable)

    @property
    def camera_ids(self) -> list[str]:
        return list(self._cams)

    def frame_name(self, frame_id: str | int) -> str:
        """The file stem of a frame: integers are zero-padded to ``frame_digits``."""
        if isinstance(frame_id, (int, np.integer)) and not isinstance(frame_id, bool):
            if frame_id < 0:
                raise ValueError(f"frame index must be >= 0, got {frame_id}")
            return f"{int(frame_id):0{self.frame_digits}d}"
        return _check_id(frame_id, "frame id")

    def write_frame(self, frame_id: str | int, camera_id: str, *, rgb: Any = None, depth: Any = None,
                    depth_units: Any = None, segmentation: Any = None, keypoints2d: Any = None) -> dict[str, Path]:
        """Write one camera's data for one frame (any subset of the modalities).

        Args:
            frame_id: frame id (str) or index (int, zero-padded).
            camera_id: one of the writer's cameras.
            rgb: ``(H, W, 3) uint8`` RGB.
            depth: ``(H, W)`` float metres (0 = missing), stored as ``round(depth / depth_scale)``.
            depth_units: ``(H, W) uint16`` raw units instead of ``depth``.
            segmentation: ``(H, W)`` integer labels in {0, 1, 2}.
            keypoints2d: ``(21, 3)`` (u, v pixels, confidence), MANO order.

        Returns:
            modality -> written file.
        """
        if camera_id not in self._cams:
            raise KeyError(f"no camera {camera_id!r}; the writer has {list(self._cams)}")
        if depth is not None and depth_units is not None:
            raise ValueError("give depth (metres) or depth_units (raw), not both")
        name = self.frame_name(frame_id)
        _, _, w, h = self._cams[camera_id]
        written: dict[str, Path] = {}

        def target(modality: str, suffix: str) -> Path:
            return self.root / modality / camera_id / f"{name}{suffix}"

        def check_size(arr: np.ndarray, what: str) -> np.ndarray:
            if arr.shape[:2] != (h, w):
                raise ValueError(f"camera {camera_id!r} frame {name}: {what} has shape {arr.shape}, "
                                 f"expected ({h}, {w}, ...) for a {w}x{h} camera")
            return arr

        if rgb is not None:
            arr = check_size(_as_numpy(rgb), "rgb")
            written["rgb"] = write_image(target("rgb", f".{self.image_format}"), arr, durable=self.durable)
        if depth is not None or depth_units is not None:
            if depth is not None:
                arr = check_size(_as_numpy(depth), "depth")
                try:
                    units = metres_to_depth_units(arr, self._depth_scale[camera_id])
                except ValueError as exc:
                    raise ValueError(f"camera {camera_id!r} frame {name}: {exc}") from None
            else:
                units = check_size(_as_numpy(depth_units), "depth_units")
            written["depth"] = write_depth_png(target("depth", ".png"), units, durable=self.durable)
        if segmentation is not None:
            arr = check_size(_as_numpy(segmentation), "segmentation")
            written["segmentation"] = write_segmentation(target("segmentation", ".png"), arr, durable=self.durable)
        if keypoints2d is not None:
            written["keypoints2d"] = write_keypoints2d(target("keypoints2d", ".json"), _as_numpy(keypoints2d),
                                                       durable=self.durable)
        return written


def write_sequence(path: str | Path, cameras: Mapping[str, Any] | Sequence[Any],
                   frames: Mapping[str | int, Mapping[str, Mapping[str, Any]]] | Iterable[tuple[str | int, str, Mapping[str, Any]]],
                   *, depth_scale: float | Mapping[str, float] = 0.001,
                   meta: SequenceMeta | Mapping[str, Any] | None = None, **writer_options: Any) -> CaptureSequence:
    """Write a whole sequence and open it.

    Args:
        path, cameras, depth_scale, meta, writer_options: as for :class:`SequenceWriter`.
        frames: ``{frame_id: {camera_id: {"rgb": ..., "depth": ..., ...}}}`` or an iterable of
            ``(frame_id, camera_id, data)``; ``data`` keys are :meth:`SequenceWriter.write_frame`'s
            keyword arguments.

    Returns:
        The written sequence, opened.
    """
    writer = SequenceWriter(path, cameras, depth_scale, meta, **writer_options)
    items = ((f, c, d) for f, per_cam in frames.items() for c, d in per_cam.items()) if isinstance(frames, Mapping) else frames
    for frame_id, camera_id, data in items:
        writer.write_frame(frame_id, camera_id, **dict(data))
    return open_sequence(path)
