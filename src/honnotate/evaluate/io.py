"""Reading and writing what the evaluation consumes.

Three input kinds:

1. HO-3D evaluation files: ``evaluation_xyz.json`` (N x (21, 3)), ``evaluation_verts.json``
   (N x (778, 3)) and the submission ``pred.json`` (``[xyz_list, verts_list]``); metres, OpenGL
   camera frame, MANO joint order. Also a combined ground-truth file in the ``pred.json`` layout.
2. Directories of HO-3D annotation pickles (``<seq>/meta/<frame>.pkl``, OpenGL), read with the
   restricted unpickler and converted to the OpenCV camera frame.
3. honnotate's consolidated annotation file, an ``.npz`` (OpenCV camera frame, metres):

   ===================  ============  ===========================================================
   array                shape         meaning
   ===================  ============  ===========================================================
   ``frame_ids``        (N,) str      frame names, unique within a sequence
   ``hand_joints``      (N, 21, 3)    hand joints, MANO order, metres, OpenCV camera frame
   ``hand_verts``       (N, V, 3)     optional hand mesh vertices, same frame
   ``obj_rot``          (N, 3)        optional object rotation, axis-angle, radians
   ``obj_trans``        (N, 3)        optional object translation, metres
   ``object_vertices``  (V_o, 3)      optional object mesh vertices in the object frame, metres
   ``sequence_ids``     (N,) str      optional sequence name per frame (default: file stem)
   ===================  ============  ===========================================================

   Posed object points are ``v @ R(obj_rot)^T + obj_trans``. Written by
   :func:`write_consolidated_npz`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import roma
import torch

from honnotate.io.safe_pickle import safe_load

__all__ = [
    "AnnotationSet",
    "opengl_to_opencv_points",
    "axis_angle_to_rotmat",
    "load_ho3d_eval_json",
    "load_ho3d_eval_inputs",
    "write_pred_json",
    "load_annotation_dir",
    "load_consolidated_npz",
    "write_consolidated_npz",
    "match_annotation_sets",
]

_GL_TO_CV = np.array([1.0, -1.0, -1.0])  # diag(1, -1, -1): OpenGL <-> OpenCV camera frame


def opengl_to_opencv_points(points) -> np.ndarray:
    """Camera-frame points from OpenGL (y up, z backward) to OpenCV (y down, z forward).

    Args:
        points: ``(..., 3)`` metres, OpenGL camera frame.

    Returns:
        ``(..., 3)`` float64 metres, OpenCV camera frame (the map is its own inverse).
    """
    p = np.asarray(points, dtype=np.float64)
    if p.shape[-1:] != (3,):
        raise ValueError(f"points: expected shape (..., 3), got {p.shape}")
    return p * _GL_TO_CV


def axis_angle_to_rotmat(rotvec) -> np.ndarray:
    """Rotation matrices from axis-angle vectors (roma, float64).

    Args:
        rotvec: ``(..., 3)`` axis-angle, radians.

    Returns:
        ``(..., 3, 3)`` float64 rotation matrices.
    """
    r = np.asarray(rotvec, dtype=np.float64)
    if r.shape[-1:] != (3,):
        raise ValueError(f"rotvec: expected shape (..., 3), got {r.shape}")
    return roma.rotvec_to_rotmat(torch.from_numpy(np.ascontiguousarray(r))).numpy()


# ----------------------------------------------------------------------------- HO-3D json


def _stack_frames(frames, n_points: int | None, what: str, path: Path) -> np.ndarray:
    """List of per-frame (K, 3) -> (N, K, 3) float64, naming the first bad frame and the file."""
    if not isinstance(frames, (list, tuple)):
        raise ValueError(f"{path}: {what}: expected a list of frames, got {type(frames).__name__}")
    expected = None if n_points is None else (n_points, 3)
    out = []
    for i, fr in enumerate(frames):
        try:
            a = np.asarray(fr, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{path}: {what}: frame index {i} is not a numeric array ({exc})") from None
        if expected is None and a.ndim == 2 and a.shape[1] == 3:
            expected = a.shape
        if a.shape != expected:
            exp = "(K, 3)" if expected is None else str(expected)
            raise ValueError(f"{path}: {what}: frame index {i} has shape {a.shape}, expected {exp}")
        if not np.isfinite(a).all():
            raise ValueError(f"{path}: {what}: frame index {i} contains NaN or infinite values")
        out.append(a)
    if not out:
        return np.zeros((0, n_points or 0, 3))
    return np.stack(out)


def _depth(x) -> int:
    d = 0
    while isinstance(x, list) and x:
        x, d = x[0], d + 1
    return d


def load_ho3d_eval_json(path, verts_path=None) -> tuple[np.ndarray, np.ndarray | None]:
    """Read HO-3D evaluation JSON: ``pred.json`` layout or ``evaluation_xyz.json`` (+ verts).

    Args:
        path: a ``[xyz_list, verts_list]`` file (``pred.json`` or a combined ground truth), or an
            ``evaluation_xyz.json`` (list of (21, 3)).
        verts_path: ``evaluation_verts.json`` (list of (V, 3)) to go with an xyz-only file.

    Returns:
        ``(xyz (N, 21, 3), verts (N, V, 3) or None)`` float64, metres, OpenGL camera frame.

    Raises:
        ValueError: malformed layout, a frame of the wrong shape or with NaN (naming the frame
            index and the file), or differing counts of joints and vertex frames.
    """
    path = Path(path)
    data = json.loads(path.read_text())
    if not isinstance(data, list):
        raise ValueError(f"{path}: expected a JSON list, got {type(data).__name__}")
    if len(data) == 2 and _depth(data) == 4:  # [xyz_list, verts_list]
        xyz = _stack_frames(data[0], 21, "xyz (entry 0)", path)
        verts = _stack_frames(data[1], None, "verts (entry 1)", path)
    elif _depth(data) == 3 or not data:
        xyz = _stack_frames(data, 21, "xyz", path)
        verts = None
    else:
        raise ValueError(f"{path}: expected [xyz_list, verts_list] or a list of (21, 3) frames")
    if verts_path is not None:
        if verts is not None:
            raise ValueError(f"{path}: already holds vertices; do not pass verts_path too")
        vp = Path(verts_path)
        verts = _stack_frames(json.loads(vp.read_text()), None, "verts", vp)
    if verts is not None and len(verts) != len(xyz):
        raise ValueError(
            f"{path}: {len(xyz)} joint frames but {len(verts)} vertex frames "
            f"(counts differ from frame index {min(len(xyz), len(verts))} on)"
        )
    return xyz, verts


def load_ho3d_eval_inputs(path) -> tuple[np.ndarray, np.ndarray | None]:
    """HO-3D evaluation arrays from a file or a directory.

    A directory must hold ``evaluation_xyz.json`` (with ``evaluation_verts.json`` if present) or
    ``pred.json``. Returns what :func:`load_ho3d_eval_json` returns.
    """
    path = Path(path)
    if path.is_file():
        return load_ho3d_eval_json(path)
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: no such file or directory")
    xyz_file, verts_file = path / "evaluation_xyz.json", path / "evaluation_verts.json"
    if xyz_file.is_file():
        return load_ho3d_eval_json(xyz_file, verts_file if verts_file.is_file() else None)
    if (path / "pred.json").is_file():
        return load_ho3d_eval_json(path / "pred.json")
    raise FileNotFoundError(f"{path}: holds neither evaluation_xyz.json nor pred.json")


def write_pred_json(path, xyz_list, verts_list) -> Path:
    """Write a HO-3D submission file ``[xyz_list, verts_list]``.

    Args:
        path: output file (``pred.json``; the challenge expects it zipped as ``pred.zip``).
        xyz_list: N predictions of ``(21, 3)`` joints, metres, OpenGL camera frame, MANO order,
            in the order of the split's file list (a list or an ``(N, 21, 3)`` array).
        verts_list: N predictions of ``(V, 3)`` vertices (778 for MANO), same frame.

    Returns:
        The written path.

    Raises:
        ValueError: differing counts, a frame of the wrong shape or with NaN (naming the frame).
    """
    path = Path(path)
    xyz = _stack_frames(list(xyz_list), 21, "xyz_list", path)
    verts = _stack_frames(list(verts_list), None, "verts_list", path)
    if len(xyz) != len(verts):
        raise ValueError(
            f"{path}: {len(xyz)} joint predictions but {len(verts)} vertex predictions "
            f"(counts differ from frame index {min(len(xyz), len(verts))} on)"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        json.dump([xyz.tolist(), verts.tolist()], f)
    return path


# ----------------------------------------------------------------------------- annotation sets


@dataclass(frozen=True)
class AnnotationSet:
    """Per-frame hand and object annotations of one or more sequences (OpenCV camera frame).

    Attributes:
        sequence_ids: ``(N,)`` str sequence name per frame.
        frame_ids: ``(N,)`` str frame name, unique within a sequence.
        hand_joints: ``(N, 21, 3)`` float64, metres, MANO joint order.
        hand_verts: ``(N, V, 3)`` float64 metres, or None.
        obj_rotmat: ``(N, 3, 3)`` float64 object-to-camera rotations, or None.
        obj_trans: ``(N, 3)`` float64 metres, or None. Posed points: ``v @ R^T + t``.
        object_vertices: ``(V_o, 3)`` float64 object-frame vertices, metres, or None.
        source: where it was read from (for messages).
        notes: what is missing and why.
    """

    sequence_ids: np.ndarray
    frame_ids: np.ndarray
    hand_joints: np.ndarray
    hand_verts: np.ndarray | None = None
    obj_rotmat: np.ndarray | None = None
    obj_trans: np.ndarray | None = None
    object_vertices: np.ndarray | None = None
    source: str = ""
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def n_frames(self) -> int:
        return int(self.hand_joints.shape[0])

    def take(self, index: np.ndarray) -> AnnotationSet:
        """The frames at ``index`` ``(M,)`` int, in that order."""

        def sel(a):
            return None if a is None else a[index]

        return replace(
            self,
            sequence_ids=self.sequence_ids[index],
            frame_ids=self.frame_ids[index],
            hand_joints=self.hand_joints[index],
            hand_verts=sel(self.hand_verts),
            obj_rotmat=sel(self.obj_rotmat),
            obj_trans=sel(self.obj_trans),
        )


def _pkl_array(meta: dict, key: str, shape: tuple[int, ...], file: Path, *, required: bool) -> np.ndarray | None:
    value = meta.get(key)
    if value is None:
        if required:
            raise ValueError(f"{file}: key '{key}' is missing or None (expected shape {shape})")
        return None
    a = np.asarray(value, dtype=np.float64)
    if a.size == int(np.prod(shape)) and a.shape != shape:
        a = a.reshape(shape)  # objRot is stored (3,) or (3, 1)
    if a.shape != shape:
        raise ValueError(f"{file}: '{key}' has shape {a.shape}, expected {shape}")
    if not np.isfinite(a).all():
        raise ValueError(f"{file}: '{key}' contains NaN or infinite values")
    return a


def load_annotation_dir(
    root,
    *,
    verts_fn: Callable[[dict], np.ndarray] | None = None,
    object_vertices=None,
    progress: Callable[[int, int], None] | None = None,
) -> AnnotationSet:
    """Read a directory tree of HO-3D annotation pickles into the OpenCV camera frame.

    Every ``*.pkl`` under ``root`` is one frame; its sequence is the path of its folder relative
    to ``root`` with a trailing ``meta`` dropped (``<seq>/meta/0000.pkl`` -> ``<seq>``; pickles
    directly in ``root`` or ``root/meta`` take ``root``'s name). Frames are sorted by sequence
    and name.

    Args:
        root: directory.
        verts_fn: optional ``verts_fn(annotation_dict) -> (V, 3)`` hand vertices, metres, OpenGL
            camera frame (HO-3D pickles store no vertices; a hand model computes them from
            ``handPose``/``handBeta``/``handTrans``). Without it mesh metrics are skipped.
        object_vertices: optional ``(V_o, 3)`` object-frame vertices, metres (the object mesh);
            needed for object metrics.
        progress: called as ``progress(files_done, n_files)``.

    Returns:
        :class:`AnnotationSet` (float64, OpenCV camera frame).

    Raises:
        FileNotFoundError: no pickle under ``root``. ValueError: a file without ``handJoints3D``,
        a key of the wrong shape or with NaN (naming the file).
    """
    root = Path(root)
    files = sorted(root.rglob("*.pkl"))
    if not files:
        raise FileNotFoundError(f"{root}: no annotation pickles (*.pkl) found")
    seqs, frames, joints, verts, rots, trans = [], [], [], [], [], []
    has_obj = True
    for i, file in enumerate(files):
        meta = safe_load(file)
        if not isinstance(meta, dict):
            raise ValueError(f"{file}: expected a dict of annotations, got {type(meta).__name__}")
        rel = file.parent.relative_to(root)
        parts = rel.parts[:-1] if rel.parts and rel.parts[-1] == "meta" else rel.parts
        seqs.append("/".join(parts) if parts else root.name)
        frames.append(file.stem)
        joints.append(_pkl_array(meta, "handJoints3D", (21, 3), file, required=True))
        if verts_fn is not None:
            v = np.asarray(verts_fn(meta), dtype=np.float64)
            if v.ndim != 2 or v.shape[1] != 3 or (verts and v.shape != verts[0].shape):
                raise ValueError(f"{file}: verts_fn returned shape {v.shape}, expected (V, 3)")
            verts.append(v)
        r = _pkl_array(meta, "objRot", (3,), file, required=False)
        t = _pkl_array(meta, "objTrans", (3,), file, required=False)
        has_obj = has_obj and r is not None and t is not None
        rots.append(r)
        trans.append(t)
        if progress is not None:
            progress(i + 1, len(files))
    order = sorted(range(len(files)), key=lambda k: (seqs[k], frames[k]))
    notes = []
    hand_verts = None
    if verts_fn is None:
        notes.append(f"{root}: no hand model (verts_fn) given: hand mesh metrics skipped")
    else:
        hand_verts = opengl_to_opencv_points(np.stack(verts)[order])
    obj_rotmat = obj_trans = None
    if has_obj:
        # R_cv = F R_gl and t_cv = F t_gl with F = diag(1, -1, -1).
        obj_rotmat = _GL_TO_CV[:, None] * axis_angle_to_rotmat(np.stack(rots)[order])
        obj_trans = opengl_to_opencv_points(np.stack(trans)[order])
    else:
        notes.append(f"{root}: some frames lack objRot/objTrans: object metrics skipped")
    ov = None
    if object_vertices is not None:
        ov = np.asarray(object_vertices, dtype=np.float64)
        if ov.ndim != 2 or ov.shape[1] != 3 or ov.shape[0] == 0:
            raise ValueError(f"object_vertices: expected shape (V_o, 3), got {ov.shape}")
    return AnnotationSet(
        sequence_ids=np.asarray(seqs)[order],
        frame_ids=np.asarray(frames)[order],
        hand_joints=opengl_to_opencv_points(np.stack(joints)[order]),
        hand_verts=hand_verts,
        obj_rotmat=obj_rotmat,
        obj_trans=obj_trans,
        object_vertices=ov,
        source=str(root),
        notes=tuple(notes),
    )


# ----------------------------------------------------------------------------- consolidated npz


def _npz_points(z, key: str, shape_tail: tuple[int, ...], n: int | None, file: Path) -> np.ndarray:
    a = np.asarray(z[key], dtype=np.float64)
    tail = "x".join(str(s) for s in shape_tail)
    ok = a.ndim == 1 + len(shape_tail) and all(e in (-1, s) for e, s in zip(shape_tail, a.shape[1:], strict=True))
    if not ok or (n is not None and a.shape[0] != n):
        exp = ("N" if n is None else str(n)) + ", " + ", ".join("V" if s == -1 else str(s) for s in shape_tail)
        raise ValueError(f"{file}: '{key}' has shape {a.shape}, expected ({exp}) [{tail}]")
    bad = ~np.isfinite(a.reshape(a.shape[0], -1)).all(axis=1)
    if bad.any():
        raise ValueError(f"{file}: '{key}' frame index {int(np.flatnonzero(bad)[0])} contains NaN or infinite values")
    return a


def load_consolidated_npz(path) -> AnnotationSet:
    """Read honnotate's consolidated annotation ``.npz`` (layout in the module docstring).

    Args:
        path: the ``.npz`` file (read with ``allow_pickle=False``).

    Returns:
        :class:`AnnotationSet` (float64, metres, OpenCV camera frame).

    Raises:
        ValueError: missing required arrays, wrong shapes or NaN (naming the array, the frame
            index and the file).
    """
    path = Path(path)
    with np.load(path, allow_pickle=False) as z:
        for key in ("frame_ids", "hand_joints"):
            if key not in z:
                raise ValueError(f"{path}: required array '{key}' is missing")
        frame_ids = np.asarray(z["frame_ids"]).astype(str)
        if frame_ids.ndim != 1:
            raise ValueError(f"{path}: 'frame_ids' has shape {frame_ids.shape}, expected (N,)")
        n = frame_ids.shape[0]
        joints = _npz_points(z, "hand_joints", (21, 3), n, path)
        verts = _npz_points(z, "hand_verts", (-1, 3), n, path) if "hand_verts" in z else None
        has_obj = "obj_rot" in z and "obj_trans" in z
        rotmat = axis_angle_to_rotmat(_npz_points(z, "obj_rot", (3,), n, path)) if has_obj else None
        trans = _npz_points(z, "obj_trans", (3,), n, path) if has_obj else None
        ov = None
        if "object_vertices" in z:
            ov = np.asarray(z["object_vertices"], dtype=np.float64)
            if ov.ndim != 2 or ov.shape[1] != 3 or not np.isfinite(ov).all():
                raise ValueError(f"{path}: 'object_vertices' must be finite (V_o, 3), got {ov.shape}")
        seq = np.asarray(z["sequence_ids"]).astype(str) if "sequence_ids" in z else np.full(n, path.stem)
        if seq.shape != (n,):
            raise ValueError(f"{path}: 'sequence_ids' has shape {seq.shape}, expected ({n},)")
    notes = []
    if verts is None:
        notes.append(f"{path}: no hand_verts: hand mesh metrics skipped")
    if not has_obj:
        notes.append(f"{path}: no obj_rot/obj_trans: object metrics skipped")
    return AnnotationSet(seq, frame_ids, joints, verts, rotmat, trans, ov, str(path), tuple(notes))


def write_consolidated_npz(
    path,
    frame_ids: Sequence[str],
    hand_joints,
    *,
    hand_verts=None,
    obj_rot=None,
    obj_trans=None,
    object_vertices=None,
    sequence_ids: Sequence[str] | None = None,
    extra: dict | None = None,
) -> Path:
    """Write honnotate's consolidated annotation ``.npz`` (layout in the module docstring).

    Args:
        path: output file.
        frame_ids: N frame names.
        hand_joints: ``(N, 21, 3)`` metres, OpenCV camera frame, MANO order.
        hand_verts: optional ``(N, V, 3)`` metres.
        obj_rot: optional ``(N, 3)`` axis-angle, radians (with ``obj_trans``).
        obj_trans: optional ``(N, 3)`` metres.
        object_vertices: optional ``(V_o, 3)`` object-frame metres.
        sequence_ids: optional N sequence names.
        extra: further named arrays stored as they are (e.g. the annotation pipeline's
            residuals and flags); readers ignore them. Names must not clash with the above.

    Returns:
        The written path. Values are validated by reading the file back.
    """
    path = Path(path)
    arrays: dict[str, np.ndarray] = {
        "frame_ids": np.asarray(frame_ids, dtype=str),
        "hand_joints": np.asarray(hand_joints, dtype=np.float32),
    }
    optional = {
        "hand_verts": hand_verts,
        "obj_rot": obj_rot,
        "obj_trans": obj_trans,
        "object_vertices": object_vertices,
    }
    for key, value in optional.items():
        if value is not None:
            arrays[key] = np.asarray(value, dtype=np.float32)
    if (obj_rot is None) != (obj_trans is None):
        raise ValueError("obj_rot and obj_trans must be given together")
    if sequence_ids is not None:
        arrays["sequence_ids"] = np.asarray(sequence_ids, dtype=str)
    for key, value in (extra or {}).items():
        if key in arrays or key in optional:
            raise ValueError(f"extra: array name {key!r} clashes with a standard array")
        arrays[key] = np.asarray(value)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as f:
        np.savez(f, **arrays)
    load_consolidated_npz(tmp)
    tmp.replace(path)
    return path


def match_annotation_sets(gt: AnnotationSet, pred: AnnotationSet) -> AnnotationSet:
    """Reorder ``pred`` to ``gt``'s frames by (sequence, frame) id.

    When each side holds a single sequence the frames are matched by frame id alone (and take
    ``gt``'s sequence name).

    Returns:
        ``pred`` restricted and ordered to ``gt``'s frames.

    Raises:
        ValueError: a ground-truth frame has no prediction or a key is duplicated (naming the
            frame and the file).
    """
    # One sequence on each side (two files or two sequence folders named differently): match
    # on frame names only.
    single = len(set(gt.sequence_ids.tolist())) == 1 and len(set(pred.sequence_ids.tolist())) == 1
    pred_seq = np.full(pred.n_frames, "") if single else pred.sequence_ids
    gt_seq = np.full(gt.n_frames, "") if single else gt.sequence_ids
    index: dict[tuple[str, str], int] = {}
    for i, key in enumerate(zip(pred_seq.tolist(), pred.frame_ids.tolist(), strict=True)):
        if key in index:
            raise ValueError(f"{pred.source}: frame {key[0]}/{key[1]} appears twice")
        index[key] = i
    order = []
    for i, key in enumerate(zip(gt_seq.tolist(), gt.frame_ids.tolist(), strict=True)):
        if key not in index:
            raise ValueError(
                f"{pred.source}: no prediction for ground-truth frame index {i} "
                f"({gt.sequence_ids[i]}/{gt.frame_ids[i]} of {gt.source}); {pred.n_frames} predicted vs {gt.n_frames} ground-truth frames"
            )
        order.append(index[key])
    matched = pred.take(np.asarray(order, dtype=np.int64))
    return replace(matched, sequence_ids=gt.sequence_ids.copy())
