"""Linear blend skinning of a MANO-format model as pure functions (smplx's ``lbs.py`` layout).

Every function takes tensors and returns tensors; nothing holds state. Any batch size, float32
or float64, any device: intermediate tensors are created on the inputs' device and dtype.

Conventions: joint rotations are axis-angle vectors in the world-aligned rest frame (MANO's);
``pose`` is (B, J*3) with the root (wrist) first; a joint j rotates its subtree about its rest
position. Positions are in metres in the model frame.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch

__all__ = [
    "LBSResult",
    "batch_rodrigues",
    "blend_shapes",
    "vertices2joints",
    "batch_rigid_transform",
    "skin_vertices",
    "lbs",
]

# Below this squared angle (rad^2) the Rodrigues coefficients use their Taylor series, so the
# value and gradient stay finite and exact at 0 (truncation error ~theta^6 / 5040 < 1e-22).
_SMALL_ANGLE_SQ = 1e-6


class LBSResult(NamedTuple):
    """Outputs of :func:`lbs`.

    Attributes:
        vertices: (B, V, 3) posed vertices, metres, model frame.
        joints: (B, J, 3) posed joints, metres, model frame.
        transforms: (B, J, 4, 4) skinning transforms (smplx's ``A``): they map a rest-pose
            point (shaped, with pose correctives) rigidly attached to joint j to its posed place.
        rest_joints: (B, J, 3) joints of the shaped rest mesh, metres.
    """

    vertices: torch.Tensor
    joints: torch.Tensor
    transforms: torch.Tensor
    rest_joints: torch.Tensor


def batch_rodrigues(rot_vecs: torch.Tensor) -> torch.Tensor:
    """Rotation matrices of axis-angle vectors, with finite exact gradients at angle 0.

    ``R = I + a K + b K^2`` with ``K`` the cross-product matrix of ``r`` (not normalised),
    ``a = sin(t)/t``, ``b = (1 - cos t)/t^2``, ``t = |r|``; a Taylor series in ``t^2`` below
    1e-3 rad, so no ``+eps`` hack and no NaN gradient at the identity.

    Args:
        rot_vecs: (..., 3) axis-angle vectors, radians, float32 or float64.

    Returns:
        (..., 3, 3) rotation matrices, same dtype and device.
    """
    if rot_vecs.shape[-1:] != (3,):
        raise ValueError(f"rot_vecs: expected shape (..., 3), got {tuple(rot_vecs.shape)}")
    theta_sq = (rot_vecs * rot_vecs).sum(-1)
    small = theta_sq < _SMALL_ANGLE_SQ
    # Keep the non-selected branch finite so torch.where never multiplies a NaN by 0.
    theta_sq_safe = torch.where(small, torch.ones_like(theta_sq), theta_sq)
    theta = torch.sqrt(theta_sq_safe)
    a_big = torch.sin(theta) / theta
    b_big = (1.0 - torch.cos(theta)) / theta_sq_safe
    a_small = 1.0 - theta_sq / 6.0 + theta_sq * theta_sq / 120.0
    b_small = 0.5 - theta_sq / 24.0 + theta_sq * theta_sq / 720.0
    a = torch.where(small, a_small, a_big)[..., None, None]
    b = torch.where(small, b_small, b_big)[..., None, None]

    x, y, z = rot_vecs.unbind(-1)
    zero = torch.zeros_like(x)
    K = torch.stack([zero, -z, y, z, zero, -x, -y, x, zero], dim=-1).reshape(*rot_vecs.shape[:-1], 3, 3)
    eye = torch.eye(3, dtype=rot_vecs.dtype, device=rot_vecs.device)
    return eye + a * K + b * (K @ K)


def blend_shapes(betas: torch.Tensor, shape_disps: torch.Tensor) -> torch.Tensor:
    """Per-vertex displacement of linear blend shapes.

    Args:
        betas: (B, S) coefficients.
        shape_disps: (V, 3, S) blend shapes, metres per unit coefficient.

    Returns:
        (B, V, 3) displacements, metres.
    """
    if betas.ndim != 2 or shape_disps.ndim != 3 or betas.shape[1] != shape_disps.shape[2]:
        raise ValueError(f"blend_shapes: expected betas (B, S) and shape_disps (V, 3, S), got "
                         f"{tuple(betas.shape)} and {tuple(shape_disps.shape)}")
    return torch.einsum("bl,mkl->bmk", betas, shape_disps)


def vertices2joints(j_regressor: torch.Tensor, vertices: torch.Tensor) -> torch.Tensor:
    """Joint positions regressed from vertices.

    Args:
        j_regressor: (J, V) regressor weights.
        vertices: (B, V, 3) vertices, metres.

    Returns:
        (B, J, 3) joints, metres.
    """
    if vertices.ndim != 3 or j_regressor.ndim != 2 or vertices.shape[1] != j_regressor.shape[1]:
        raise ValueError(f"vertices2joints: expected j_regressor (J, V) and vertices (B, V, 3), got "
                         f"{tuple(j_regressor.shape)} and {tuple(vertices.shape)}")
    return torch.einsum("bik,ji->bjk", vertices, j_regressor)


def _levels(parents: Sequence[int]) -> list[list[int]]:
    """Joints grouped by depth in the tree (root level first); parents precede children."""
    depth: list[int] = []
    for j, p in enumerate(parents):
        if p >= j:
            raise ValueError(f"parents: joint {j} has parent {p}; parents must precede children")
        depth.append(0 if p < 0 else depth[p] + 1)
    return [[j for j in range(len(parents)) if depth[j] == d] for d in range(max(depth) + 1)]


def batch_rigid_transform(rot_mats: torch.Tensor, joints: torch.Tensor,
                          parents: Sequence[int] | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Forward kinematics of a tree of joints rotating about their rest positions.

    Joints at the same depth are composed in one batched product (MANO: 4 levels).

    Args:
        rot_mats: (B, J, 3, 3) local rotations (world-aligned rest frame convention).
        joints: (B, J, 3) rest joint positions, metres.
        parents: (J,) parent index per joint, -1 for the root; parents precede children.

    Returns:
        posed_joints: (B, J, 3), metres.
        transforms: (B, J, 4, 4) skinning transforms ``[G_R, G_t - G_R J_rest]`` (smplx's A).
    """
    if rot_mats.ndim != 4 or rot_mats.shape[-2:] != (3, 3) or joints.shape != rot_mats.shape[:2] + (3,):
        raise ValueError(f"batch_rigid_transform: expected rot_mats (B, J, 3, 3) and joints (B, J, 3), "
                         f"got {tuple(rot_mats.shape)} and {tuple(joints.shape)}")
    par = [int(p) for p in (parents.tolist() if torch.is_tensor(parents) else parents)]
    if len(par) != joints.shape[1]:
        raise ValueError(f"parents: expected {joints.shape[1]} entries, got {len(par)}")
    levels = _levels(par)
    B, J = joints.shape[:2]
    glob_R: list[torch.Tensor | None] = [None] * J
    glob_t: list[torch.Tensor | None] = [None] * J
    for level in levels:
        idx = torch.as_tensor(level, device=joints.device)
        R_loc = rot_mats[:, idx]
        if par[level[0]] < 0:
            R_g, t_g = R_loc, joints[:, idx]
        else:
            pidx = [par[j] for j in level]
            R_p = torch.stack([glob_R[p] for p in pidx], dim=1)
            t_p = torch.stack([glob_t[p] for p in pidx], dim=1)
            rel = joints[:, idx] - joints[:, torch.as_tensor(pidx, device=joints.device)]
            R_g = R_p @ R_loc
            t_g = (R_p @ rel.unsqueeze(-1)).squeeze(-1) + t_p
        for k, j in enumerate(level):
            glob_R[j] = R_g[:, k]
            glob_t[j] = t_g[:, k]
    G_R = torch.stack(glob_R, dim=1)  # type: ignore[arg-type]
    G_t = torch.stack(glob_t, dim=1)  # type: ignore[arg-type]
    A_t = G_t - (G_R @ joints.unsqueeze(-1)).squeeze(-1)
    top = torch.cat([G_R, A_t.unsqueeze(-1)], dim=-1)
    bottom = torch.zeros(B, J, 1, 4, dtype=joints.dtype, device=joints.device)
    bottom[..., 0, 3] = 1.0
    return G_t, torch.cat([top, bottom], dim=-2)


def skin_vertices(vertices: torch.Tensor, weights: torch.Tensor, transforms: torch.Tensor) -> torch.Tensor:
    """Linear blend skinning of rest-pose vertices.

    Args:
        vertices: (B, V, 3) rest-pose vertices (with shape and pose correctives), metres.
        weights: (V, J) skinning weights.
        transforms: (B, J, 4, 4) skinning transforms from :func:`batch_rigid_transform`.

    Returns:
        (B, V, 3) posed vertices, metres.
    """
    B, J = transforms.shape[:2]
    T = (weights @ transforms[..., :3, :].reshape(B, J, 12)).reshape(B, -1, 3, 4)
    # One batched product with homogeneous points: slicing the (B, V, 3, 4) blend would cost
    # a full-size zero fill per slice in the backward pass.
    v_h = torch.nn.functional.pad(vertices, (0, 1), value=1.0)
    return (T @ v_h.unsqueeze(-1)).squeeze(-1)


def lbs(betas: torch.Tensor, pose: torch.Tensor, v_template: torch.Tensor, shapedirs: torch.Tensor,
        posedirs: torch.Tensor | None, j_regressor: torch.Tensor, parents: Sequence[int] | torch.Tensor,
        weights: torch.Tensor, pose2rot: bool = True) -> LBSResult:
    """Shape, pose-correct, pose and skin a MANO-format model (smplx's ``lbs``).

    Args:
        betas: (B, S) shape coefficients, S <= shapedirs.shape[2] (missing ones are 0).
        pose: (B, J*3) axis-angle (``pose2rot``) or (B, J, 3, 3) rotation matrices, radians,
            root first.
        v_template: (V, 3) rest template, metres.
        shapedirs: (V, 3, S') shape directions.
        posedirs: (P, V*3) pose correctives with P = (J-1)*9, or None to skip them.
        j_regressor: (J, V) joint regressor.
        parents: (J,) kinematic parents, -1 for the root.
        weights: (V, J) skinning weights.
        pose2rot: whether ``pose`` is axis-angle (True) or rotation matrices (False).

    Returns:
        :class:`LBSResult` (vertices, joints, transforms, rest_joints), model frame, metres.
    """
    V = v_template.shape[0]
    J = j_regressor.shape[0]
    B = pose.shape[0]
    if betas.ndim != 2 or betas.shape[0] != B or betas.shape[1] > shapedirs.shape[2]:
        raise ValueError(f"betas: expected (B={B}, S<={shapedirs.shape[2]}), got {tuple(betas.shape)}")
    if pose2rot:
        if pose.shape != (B, J * 3):
            raise ValueError(f"pose: expected (B, {J * 3}) axis-angle, got {tuple(pose.shape)}")
        rot_mats = batch_rodrigues(pose.reshape(B, J, 3))
    else:
        if pose.shape != (B, J, 3, 3):
            raise ValueError(f"pose: expected (B, {J}, 3, 3) rotation matrices, got {tuple(pose.shape)}")
        rot_mats = pose
    v_shaped = v_template + blend_shapes(betas, shapedirs[..., : betas.shape[1]])
    rest_joints = vertices2joints(j_regressor, v_shaped)
    if posedirs is not None:
        eye = torch.eye(3, dtype=rot_mats.dtype, device=rot_mats.device)
        pose_feature = (rot_mats[:, 1:] - eye).reshape(B, -1)
        v_posed = v_shaped + (pose_feature @ posedirs).reshape(B, V, 3)
    else:
        v_posed = v_shaped
    posed_joints, transforms = batch_rigid_transform(rot_mats, rest_joints, parents)
    vertices = skin_vertices(v_posed, weights, transforms)
    return LBSResult(vertices, posed_joints, transforms, rest_joints)
