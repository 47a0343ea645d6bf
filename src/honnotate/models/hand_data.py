"""The MANO-format hand model representation shared by every hand source.

A :class:`HandModelData` holds the arrays of a MANO-format linear-blend-skinning hand: template,
shape directions, pose correctives, joint regressor, skinning weights, kinematic tree, faces and
fingertip vertex ids. Two sources produce it: the official MANO v1.2 pickle
(:mod:`honnotate.models.mano`) and the open hand derived from the ``anny`` package
(:mod:`honnotate.models.open_hand`). The LBS forward (:mod:`honnotate.models.lbs`) consumes
only this container, so both sources share one code path.

Conventions (the MANO ones): 16 skinning joints (wrist + 15 finger joints in MANO order
index1-3, middle1-3, pinky1-3, ring1-3, thumb1-3), joint rotations are axis-angle in the
world-aligned rest frame, metres. The rest pose of a right hand has the fingers along -x, the
palm facing -y and the thumb toward +z (the left hand is mirrored in x).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np
import torch

__all__ = ["HandModelData", "NUM_SKIN_JOINTS", "NUM_KEYPOINTS", "MANO_PARENTS"]

NUM_SKIN_JOINTS = 16
NUM_KEYPOINTS = 21
#: Parent of each of the 16 MANO skinning joints (-1 for the wrist).
MANO_PARENTS = (-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 0, 10, 11, 0, 13, 14)


@dataclass(frozen=True)
class HandModelData:
    """Arrays of one MANO-format hand (numpy, float64 unless stated).

    Attributes:
        v_template: (V, 3) rest vertices at zero shape, metres.
        shapedirs: (V, 3, S) linear shape directions (``betas`` coefficients).
        posedirs: (P, V*3) pose-corrective blend shapes in smplx's layout (P = 135 for MANO),
            or None when the model has none (the open hand).
        j_regressor: (16, V) joint regressor: rest joints = j_regressor @ shaped vertices.
        parents: (16,) int64 kinematic parents, -1 for the root (wrist).
        weights: (V, 16) skinning weights, rows sum to 1.
        faces: (F, 3) int64 triangles.
        tip_vertex_ids: (5,) int64 fingertip vertices, order thumb, index, middle, ring, pinky.
        hands_components: (45, 45) PCA basis of the finger pose (rows are components).
        hands_mean: (45,) mean finger pose (added unless flat_hand_mean).
        side: "right" or "left".
        source: "mano" or "open" (with a version string in ``source_version``).
        source_version: e.g. "MANO v1.2" or "anny 0.6.2 / open-hand 1".
        joint_frames: (15, 3, 3) per finger joint anatomical frame A_j whose columns are the
            flexion (x), twist (y) and abduction (z) axes in the rest frame, or None.
            An anatomical axis-angle r_anat maps to the model's pose as r = A_j @ r_anat.
        joint_limits: (15, 3, 2) per finger joint, per anatomical axis (x flexion, y twist,
            z abduction) min/max in radians, or None. For MANO (joint_frames None) the axes are
            the model's own x, y, z axes of the 45-D pose.
    """

    v_template: np.ndarray
    shapedirs: np.ndarray
    posedirs: np.ndarray | None
    j_regressor: np.ndarray
    parents: np.ndarray
    weights: np.ndarray
    faces: np.ndarray
    tip_vertex_ids: np.ndarray
    hands_components: np.ndarray
    hands_mean: np.ndarray
    side: Literal["right", "left"]
    source: Literal["mano", "open"]
    source_version: str = ""
    joint_frames: np.ndarray | None = None
    joint_limits: np.ndarray | None = None
    extras: dict = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        V = self.v_template.shape[0]
        checks = {
            "v_template": (self.v_template, (V, 3)),
            "j_regressor": (self.j_regressor, (NUM_SKIN_JOINTS, V)),
            "parents": (self.parents, (NUM_SKIN_JOINTS,)),
            "weights": (self.weights, (V, NUM_SKIN_JOINTS)),
            "tip_vertex_ids": (self.tip_vertex_ids, (5,)),
            "hands_components": (self.hands_components, (45, 45)),
            "hands_mean": (self.hands_mean, (45,)),
        }
        for name, (arr, shape) in checks.items():
            if tuple(arr.shape) != shape:
                raise ValueError(f"HandModelData.{name}: expected shape {shape}, got {tuple(arr.shape)}")
        if self.shapedirs.ndim != 3 or self.shapedirs.shape[:2] != (V, 3):
            raise ValueError(f"HandModelData.shapedirs: expected shape ({V}, 3, S), got {self.shapedirs.shape}")
        if self.posedirs is not None and self.posedirs.shape[1] != V * 3:
            raise ValueError(f"HandModelData.posedirs: expected shape (P, {V * 3}), got {self.posedirs.shape}")
        if self.faces.ndim != 2 or self.faces.shape[1] != 3:
            raise ValueError(f"HandModelData.faces: expected shape (F, 3), got {self.faces.shape}")
        if self.side not in ("right", "left"):
            raise ValueError(f"HandModelData.side must be 'right' or 'left', got {self.side!r}")

    @property
    def num_vertices(self) -> int:
        return int(self.v_template.shape[0])

    @property
    def num_betas(self) -> int:
        return int(self.shapedirs.shape[2])

    def with_tip_vertex_ids(self, tip_vertex_ids) -> "HandModelData":
        """Copy with other fingertip vertex ids (thumb, index, middle, ring, pinky)."""
        ids = np.asarray(tip_vertex_ids, dtype=np.int64)
        if ids.shape != (5,) or ids.min() < 0 or ids.max() >= self.num_vertices:
            raise ValueError(f"tip_vertex_ids: expected 5 vertex ids in [0, {self.num_vertices}), got {tip_vertex_ids}")
        return replace(self, tip_vertex_ids=ids)

    def to_torch(self, dtype: torch.dtype = torch.float32, device: torch.device | str | None = None) -> dict[str, torch.Tensor]:
        """Tensors of the arrays (float ones in ``dtype``; ``posedirs`` omitted when None)."""
        out = {}
        for name in ("v_template", "shapedirs", "posedirs", "j_regressor", "weights", "hands_components", "hands_mean"):
            arr = getattr(self, name)
            if arr is not None:
                out[name] = torch.as_tensor(np.ascontiguousarray(arr), dtype=dtype, device=device)
        for name in ("parents", "faces", "tip_vertex_ids"):
            out[name] = torch.as_tensor(np.asarray(getattr(self, name)), dtype=torch.int64, device=device)
        return out

    def save_npz(self, path) -> None:
        """Write the arrays to an ``.npz`` (no pickle; loadable with ``allow_pickle=False``)."""
        arrays = {k: getattr(self, k) for k in (
            "v_template", "shapedirs", "j_regressor", "parents", "weights", "faces",
            "tip_vertex_ids", "hands_components", "hands_mean")}
        for k in ("posedirs", "joint_frames", "joint_limits"):
            if getattr(self, k) is not None:
                arrays[k] = getattr(self, k)
        arrays["side"] = np.array(self.side)
        arrays["source"] = np.array(self.source)
        arrays["source_version"] = np.array(self.source_version)
        for k, v in self.extras.items():
            arrays[f"extra__{k}"] = np.asarray(v)
        np.savez_compressed(path, **arrays)

    @classmethod
    def load_npz(cls, path) -> "HandModelData":
        with np.load(path, allow_pickle=False) as z:
            d = {k: z[k] for k in z.files}
        extras = {k[len("extra__"):]: d.pop(k) for k in list(d) if k.startswith("extra__")}
        return cls(
            v_template=d["v_template"], shapedirs=d["shapedirs"], posedirs=d.get("posedirs"),
            j_regressor=d["j_regressor"], parents=d["parents"].astype(np.int64), weights=d["weights"],
            faces=d["faces"].astype(np.int64), tip_vertex_ids=d["tip_vertex_ids"].astype(np.int64),
            hands_components=d["hands_components"], hands_mean=d["hands_mean"],
            side=str(d["side"]), source=str(d["source"]), source_version=str(d["source_version"]),
            joint_frames=d.get("joint_frames"), joint_limits=d.get("joint_limits"), extras=extras,
        )
