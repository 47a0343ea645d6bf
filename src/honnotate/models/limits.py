"""Joint-angle limits and the joint-limit energy (paper Eq. 8).

``E = sum_i max(lower_i - a_i, 0) + max(a_i - upper_i, 0)`` over the 45 finger pose parameters
(the paper: ``kind="l1"``); the public HOnnotate code squares each hinge (``kind="squared"``).
For official MANO the parameters are the axis-angle components of the flat-hand-mean pose
(the table of the reference code). For a model with anatomical joint frames (the open hand) the
limits apply to ``r_anat = A_j^{-1} r`` (x flexion, y twist, z abduction per joint).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch

from honnotate.models.hand_data import HandModelData

__all__ = [
    "MANO_LIMIT_TABLE", "MANO_FROZEN_POSE_INDICES", "mano_joint_limits", "mano_free_dof_mask",
    "limit_energy", "model_joint_limits", "anatomical_limit_energy",
]

#: 48-D pose index -> (min, max) radians, from the HOnnotate reference code (flat hand mean).
MANO_LIMIT_TABLE: dict[int, tuple[float, float]] = {
    3: (0.0, 0.45), 4: (-0.15, 0.2), 5: (0.1, 1.8),
    6: (-0.3, 0.2), 8: (-0.0, 2.0),
    11: (0.0, 1.25),
    13: (-0.15, 0.15), 14: (0.1, 2.0),
    15: (-0.5, -0.2), 17: (-0.0, 2.0),
    20: (0.0, 1.25),
    21: (-1.5, -0.2), 22: (-0.15, 0.6), 23: (-0.1, 1.6),
    25: (-0.5, 0.6), 26: (-0.0, 2.0),
    29: (0.0, 1.25),
    30: (-0.5, -0.4), 31: (-0.25, 0.1), 32: (0.1, 1.8),
    33: (-0.4, -0.2), 35: (-0.0, 2.0),
    38: (0.0, 1.25),
    39: (0.0, 2.0), 40: (-0.83, 0.66), 41: (-0.0, 0.5),
    42: (-0.15, 1.6), 44: (0.0, 0.5),
    46: (-0.5, 0.0), 47: (-1.57, 1.08),
}
#: 48-D pose indices held at 0 by the reference code (15 frozen DOFs).
MANO_FROZEN_POSE_INDICES = (7, 9, 10, 12, 16, 18, 19, 24, 27, 28, 34, 36, 37, 43, 45)


def mano_joint_limits() -> tuple[np.ndarray, np.ndarray]:
    """Lower and upper limits of the 45-D MANO finger pose (flat-hand-mean axis-angle).

    Returns:
        lower, upper: (45,) float64 radians; frozen DOFs have lower = upper = 0 (so the energy
        pins them at 0 unless masked out with :func:`mano_free_dof_mask`).
    """
    lower = np.zeros(45)
    upper = np.zeros(45)
    for i, (lo, hi) in MANO_LIMIT_TABLE.items():
        lower[i - 3], upper[i - 3] = lo, hi
    return lower, upper


def mano_free_dof_mask() -> np.ndarray:
    """(45,) bool: True for the 30 DOFs the reference code optimises, False for frozen ones."""
    mask = np.ones(45, dtype=bool)
    mask[np.asarray(MANO_FROZEN_POSE_INDICES) - 3] = False
    return mask


def _as(x, like: torch.Tensor, name: str, n: int) -> torch.Tensor:
    t = torch.as_tensor(x, dtype=like.dtype, device=like.device)
    if t.shape != (n,):
        raise ValueError(f"{name}: expected shape ({n},), got {tuple(t.shape)}")
    return t


def limit_energy(pose: torch.Tensor, lower, upper, kind: Literal["l1", "squared"] = "l1",
                 mask=None) -> torch.Tensor:
    """Joint-limit energy per sample (paper Eq. 8).

    Args:
        pose: (B, N) joint-angle parameters, radians (N = 45 for the MANO finger pose).
        lower, upper: (N,) limits, radians (tensors or arrays).
        kind: "l1" (paper: sum of hinges) or "squared" (reference code: sum of squared hinges).
        mask: (N,) bool or float weights; DOFs with 0 / False contribute nothing (e.g. frozen
            DOFs the optimiser does not touch). None: all DOFs.

    Returns:
        (B,) energy, radians (l1) or radians^2 (squared), the pose's dtype and device.
    """
    if pose.ndim != 2:
        raise ValueError(f"pose: expected (B, N) joint angles, got {tuple(pose.shape)}")
    N = pose.shape[1]
    lo, hi = _as(lower, pose, "lower", N), _as(upper, pose, "upper", N)
    hinge = torch.relu(lo - pose) + torch.relu(pose - hi)
    if kind == "squared":
        hinge = hinge * hinge
    elif kind != "l1":
        raise ValueError(f"kind: expected 'l1' or 'squared', got {kind!r}")
    if mask is not None:
        hinge = hinge * _as(mask, pose, "mask", N)
    return hinge.sum(dim=1)


def model_joint_limits(data: HandModelData) -> np.ndarray:
    """(15, 3, 2) float64 per finger joint and axis min/max, radians.

    For a model with joint frames the axes are anatomical (x flexion, y twist, z abduction) and
    the limits are ``data.joint_limits``; for official MANO they are the model's own x, y, z
    axes and the table of :func:`mano_joint_limits`.
    """
    if data.joint_limits is not None:
        lim = np.asarray(data.joint_limits, dtype=np.float64)
        if lim.shape != (15, 3, 2):
            raise ValueError(f"HandModelData.joint_limits: expected (15, 3, 2), got {lim.shape}")
        return lim
    lower, upper = mano_joint_limits()
    return np.stack([lower, upper], axis=-1).reshape(15, 3, 2)


def anatomical_limit_energy(hand_pose: torch.Tensor, data: HandModelData,
                            kind: Literal["l1", "squared"] = "l1", mask=None) -> torch.Tensor:
    """Joint-limit energy of a finger pose on the model's anatomical angles.

    Args:
        hand_pose: (B, 45) finger axis-angle actually applied (``HandOutput.full_pose[:, 3:]``,
            flat-hand-mean convention), radians, model rest frame.
        data: the model (its ``joint_frames`` A_j and limits; MANO: identity frames, table).
        kind, mask: as :func:`limit_energy`; ``mask`` (45,) in (joint, axis) order.

    Returns:
        (B,) energy, the pose's dtype and device.
    """
    if hand_pose.ndim != 2 or hand_pose.shape[1] != 45:
        raise ValueError(f"hand_pose: expected (B, 45) axis-angle, got {tuple(hand_pose.shape)}")
    lim = model_joint_limits(data)
    r = hand_pose.reshape(-1, 15, 3)
    if data.joint_frames is not None:
        Ainv = torch.as_tensor(np.linalg.inv(np.asarray(data.joint_frames, dtype=np.float64)),
                               dtype=hand_pose.dtype, device=hand_pose.device)
        r = torch.einsum("jab,njb->nja", Ainv, r)
    return limit_energy(r.reshape(-1, 45), lim[..., 0].reshape(45), lim[..., 1].reshape(45), kind=kind, mask=mask)
