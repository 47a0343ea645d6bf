"""Grasp pose (the hand pose in the object frame) <-> hand pose in the world frame.

The relative grasp convention of the public HOnnotate code: MANO rotates about the rest wrist
joint J0 (posed = R_h (v - J0) + J0 + t_h), so with the object pose x_w = R_o x_o + t_o,

    R_rel = R_o^T R_h,        t_rel = R_o^T (J0 + t_h - t_o) - J0,

and back: R_h = R_o R_rel, t_h = R_o (J0 + t_rel) + t_o - J0. The relative pose is itself a
MANO (global_orient, transl) pair of the hand in the object frame.
"""

from __future__ import annotations

import roma
import torch

__all__ = ["world_to_grasp", "grasp_to_world", "mean_rotation"]


def _check(name: str, x, B: int | None = None) -> int:
    if not isinstance(x, torch.Tensor) or x.ndim != 2 or x.shape[-1] != 3 or (B is not None and x.shape[0] != B):
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"{name}: expected (B, 3){'' if B is None else f' with B={B}'}, got {shape}")
    return x.shape[0]


def _wrist(rest_wrist: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    if not isinstance(rest_wrist, torch.Tensor) or rest_wrist.shape not in ((3,), like.shape):
        shape = tuple(rest_wrist.shape) if isinstance(rest_wrist, torch.Tensor) else type(rest_wrist).__name__
        raise ValueError(f"rest_wrist: expected (3,) or {tuple(like.shape)} metres, got {shape}")
    return rest_wrist.to(like).expand_as(like)


def world_to_grasp(hand_rotvec: torch.Tensor, hand_transl: torch.Tensor, object_rotvec: torch.Tensor,
                   object_transl: torch.Tensor, rest_wrist: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Relative grasp (R_rel, t_rel) of world hand and object poses (differentiable).

    Args:
        hand_rotvec, hand_transl: (B, 3) MANO global_orient (radians) and transl (metres), world.
        object_rotvec, object_transl: (B, 3) object-to-world rotation (axis-angle) and translation.
        rest_wrist: (3,) or (B, 3) rest wrist joint J0 of the shaped hand, metres.

    Returns:
        (B, 3) relative global_orient (axis-angle) and (B, 3) relative transl, object frame.
    """
    B = _check("hand_rotvec", hand_rotvec)
    for n, x in (("hand_transl", hand_transl), ("object_rotvec", object_rotvec), ("object_transl", object_transl)):
        _check(n, x, B)
    j0 = _wrist(rest_wrist, hand_transl)
    Ro = roma.rotvec_to_rotmat(object_rotvec)
    Rrel = Ro.transpose(-1, -2) @ roma.rotvec_to_rotmat(hand_rotvec)
    trel = (Ro.transpose(-1, -2) @ (j0 + hand_transl - object_transl)[..., None])[..., 0] - j0
    return roma.rotmat_to_rotvec(Rrel), trel


def grasp_to_world(rel_rotvec: torch.Tensor, rel_transl: torch.Tensor, object_rotvec: torch.Tensor,
                   object_transl: torch.Tensor, rest_wrist: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """World hand pose of a relative grasp and object poses (inverse of :func:`world_to_grasp`).

    Args:
        rel_rotvec, rel_transl: (B, 3) or (1, 3) (one grasp shared by all frames), object frame.
        object_rotvec, object_transl: (B, 3) object-to-world poses.
        rest_wrist: (3,) or (B, 3) metres.

    Returns:
        (B, 3) global_orient (axis-angle, radians) and (B, 3) transl (metres), world frame.
    """
    B = _check("object_rotvec", object_rotvec)
    _check("object_transl", object_transl, B)
    _check("rel_rotvec", rel_rotvec)
    _check("rel_transl", rel_transl, rel_rotvec.shape[0])
    if rel_rotvec.shape[0] not in (1, B):
        raise ValueError(f"rel_rotvec: expected (1, 3) or ({B}, 3), got {tuple(rel_rotvec.shape)}")
    rel_rotvec = rel_rotvec.expand(B, 3)
    rel_transl = rel_transl.expand(B, 3)
    j0 = _wrist(rest_wrist, object_transl)
    Ro = roma.rotvec_to_rotmat(object_rotvec)
    Rh = Ro @ roma.rotvec_to_rotmat(rel_rotvec)
    th = (Ro @ (j0 + rel_transl)[..., None])[..., 0] + object_transl - j0
    return roma.rotmat_to_rotvec(Rh), th


def mean_rotation(rotvecs: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    """Chordal L2 mean of rotations (projection of the weighted mean matrix onto SO(3)).

    Args:
        rotvecs: (N, 3) axis-angle, radians. weights: (N,) non-negative or None.

    Returns:
        (3,) axis-angle of the mean rotation.
    """
    _check("rotvecs", rotvecs)
    R = roma.rotvec_to_rotmat(rotvecs)
    w = torch.ones(R.shape[0], dtype=R.dtype, device=R.device) if weights is None else weights.to(R)
    M = (w[:, None, None] * R).sum(0)
    return roma.rotmat_to_rotvec(roma.special_procrustes(M))
