"""Rotations and rigid transforms (torch, any device, any leading batch dimensions).

One convention for the whole project: rotations are stored as axis-angle vectors (``rotvec``,
radians, the rotation axis scaled by the angle) and converted with ``roma`` only, which has
finite gradients at the identity (angle 0 and 1e-7 are tested). Rigid transforms are 4x4
matrices acting on column vectors, ``p' = R p + t``; on row-stacked points this is
``points @ R.T + t`` (the HO-3D object-pose convention ``v @ R(objRot).T + objTrans``).
"""

from __future__ import annotations

import roma
import torch

__all__ = [
    "axis_angle_to_matrix",
    "matrix_to_axis_angle",
    "rigid_matrix",
    "invert_rigid",
    "transform_points",
    "apply_rotvec",
]


def _check_last(x: torch.Tensor, shape: tuple[int, ...], name: str, expected: str) -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.ndim < len(shape) or tuple(x.shape[x.ndim - len(shape):]) != shape:
        raise ValueError(f"{name} must have shape {expected}, got {tuple(x.shape)}")


def axis_angle_to_matrix(rotvec: torch.Tensor) -> torch.Tensor:
    """Rotation matrices from axis-angle vectors.

    Args:
        rotvec: (..., 3) axis-angle, radians, float.
    Returns:
        (..., 3, 3) rotation matrices, same dtype/device. Gradients are finite at angle 0.
    """
    _check_last(rotvec, (3,), "rotvec", "(..., 3)")
    return roma.rotvec_to_rotmat(rotvec)


def matrix_to_axis_angle(matrix: torch.Tensor) -> torch.Tensor:
    """Axis-angle vectors from rotation matrices.

    Args:
        matrix: (..., 3, 3) rotation matrices (orthonormal, det +1), float.
    Returns:
        (..., 3) axis-angle, radians, angle in [0, pi].
    """
    _check_last(matrix, (3, 3), "matrix", "(..., 3, 3)")
    return roma.rotmat_to_rotvec(matrix)


def rigid_matrix(rotvec: torch.Tensor, transl: torch.Tensor) -> torch.Tensor:
    """4x4 rigid transforms ``[[R(rotvec), t], [0, 0, 0, 1]]``.

    Args:
        rotvec: (..., 3) axis-angle, radians.
        transl: (..., 3) translation, metres; leading dimensions broadcast with ``rotvec``'s.
    Returns:
        (..., 4, 4) float matrices mapping source-frame points to target-frame points.
    """
    _check_last(rotvec, (3,), "rotvec", "(..., 3)")
    _check_last(transl, (3,), "transl", "(..., 3)")
    rot = axis_angle_to_matrix(rotvec)
    batch = torch.broadcast_shapes(rot.shape[:-2], transl.shape[:-1])
    rot = rot.expand(*batch, 3, 3)
    transl = transl.to(rot.dtype).expand(*batch, 3)
    top = torch.cat([rot, transl[..., :, None]], dim=-1)
    bottom = torch.zeros(*batch, 1, 4, dtype=rot.dtype, device=rot.device)
    bottom[..., 0, 3] = 1.0
    return torch.cat([top, bottom], dim=-2)


def invert_rigid(transform: torch.Tensor) -> torch.Tensor:
    """Inverse of rigid 4x4 transforms, ``[[R.T, -R.T t], [0, 1]]`` (exact, no matrix inverse).

    Args:
        transform: (..., 4, 4) rigid transforms (rotation + translation, last row 0 0 0 1).
    Returns:
        (..., 4, 4) inverses, same dtype/device.
    """
    _check_last(transform, (4, 4), "transform", "(..., 4, 4)")
    rot_t = transform[..., :3, :3].transpose(-1, -2)
    transl = -(rot_t @ transform[..., :3, 3:4])
    top = torch.cat([rot_t, transl], dim=-1)
    return torch.cat([top, transform[..., 3:4, :]], dim=-2)


def transform_points(transform: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """Apply 4x4 rigid (or affine) transforms to points: ``points @ R.T + t``.

    Args:
        transform: (..., 4, 4); leading dimensions broadcast with ``points``' leading ones.
        points: (..., N, 3), metres, in the transform's source frame.
    Returns:
        (..., N, 3) points in the transform's target frame.
    """
    _check_last(transform, (4, 4), "transform", "(..., 4, 4)")
    _check_last(points, (3,), "points", "(..., N, 3)")
    if points.ndim < 2:
        raise ValueError(f"points must have shape (..., N, 3), got {tuple(points.shape)}")
    rot = transform[..., :3, :3]
    transl = transform[..., None, :3, 3]
    return points @ rot.transpose(-1, -2) + transl


def apply_rotvec(points: torch.Tensor, rotvec: torch.Tensor, transl: torch.Tensor | None = None) -> torch.Tensor:
    """Pose points with an axis-angle rotation and a translation: ``points @ R.T + t``.

    This is HO-3D's object pose convention (``objRot``, ``objTrans``).

    Args:
        points: (..., N, 3) metres, source frame (e.g. the object frame).
        rotvec: (..., 3) axis-angle, radians; leading dimensions broadcast with ``points``'.
        transl: (..., 3) metres, or None for no translation.
    Returns:
        (..., N, 3) posed points.
    """
    _check_last(points, (3,), "points", "(..., N, 3)")
    if points.ndim < 2:
        raise ValueError(f"points must have shape (..., N, 3), got {tuple(points.shape)}")
    rot = axis_angle_to_matrix(rotvec)
    out = points @ rot.transpose(-1, -2)
    if transl is not None:
        _check_last(transl, (3,), "transl", "(..., 3)")
        out = out + transl[..., None, :]
    return out
