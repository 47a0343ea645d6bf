"""The hand layer: a ``torch.nn.Module`` holding a MANO-format model's arrays as buffers.

Optimisation variables (global rotation, finger pose, shape, translation) live outside the
module and are passed to :meth:`HandModel.forward`; the module only holds constants, so one
instance serves every frame, batch and optimiser. The forward is
:func:`honnotate.models.lbs.lbs` plus MANO's conventions: PCA finger pose, the hand mean
(``flat_hand_mean``), translation and the five fingertip keypoints.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from honnotate.models.hand_data import HandModelData
from honnotate.models.lbs import lbs

__all__ = ["HandModel", "HandOutput", "rigid_transform_hand_params"]


@dataclass(frozen=True)
class HandOutput:
    """Output of :meth:`HandModel.forward` (model frame, metres, the inputs' dtype/device).

    Attributes:
        vertices: (B, V, 3) posed vertices.
        joints: (B, 21, 3) keypoints in MANO order: the 16 skinning joints (wrist, index1-3,
            middle1-3, pinky1-3, ring1-3, thumb1-3) then the tips thumb, index, middle, ring,
            pinky (the model's ``tip_vertex_ids``).
        joint_transforms: (B, 16, 4, 4) skinning transforms including the translation: a point
            ``x`` of the shaped rest mesh rigidly attached to joint j is posed at
            ``T[:3, :3] x + T[:3, 3]``.
        rest_joints: (B, 16, 3) joints of the shaped rest mesh (no translation).
        full_pose: (B, 48) axis-angle actually applied (global + 15 joints, the hand mean and
            PCA already resolved: the flat-hand-mean convention of HO-3D ``handPose``), radians.
    """

    vertices: torch.Tensor
    joints: torch.Tensor
    joint_transforms: torch.Tensor
    rest_joints: torch.Tensor
    full_pose: torch.Tensor


def _check_batch(name: str, x: torch.Tensor | None, B: int, width: int, what: str) -> None:
    if x is not None and (x.ndim != 2 or x.shape[0] != B or x.shape[1] != width):
        raise ValueError(f"{name}: expected (B, {width}) {what} with B={B}, got {tuple(x.shape)}")


class HandModel(torch.nn.Module):
    """MANO-format hand layer (buffers only; see :class:`HandOutput`).

    Args:
        data: the model arrays (official MANO or the open hand).
        use_pca: ``hand_pose`` holds ``num_pca_comps`` PCA coefficients instead of 45 axis-angle
            values (with ``num_pca_comps=45`` it still means 45 PCA coefficients).
        num_pca_comps: number of PCA components (1..45) when ``use_pca``.
        flat_hand_mean: if False, the model's ``hands_mean`` is added to the finger pose (smplx's
            semantics); if True, a zero ``hand_pose`` is the flat hand.

        dtype: dtype of the buffers (float32 default; build float64 models with ``dtype`` rather
            than ``.to(torch.float64)``, which keeps float32-rounded values). Move with ``.to``.
            Inputs must match the buffers' dtype and device.
    """

    def __init__(self, data: HandModelData, use_pca: bool = False, num_pca_comps: int = 45,
                 flat_hand_mean: bool = True, dtype: torch.dtype = torch.float32) -> None:
        super().__init__()
        if not 1 <= num_pca_comps <= 45:
            raise ValueError(f"num_pca_comps: expected 1..45, got {num_pca_comps}")
        self.data = data
        self.use_pca = bool(use_pca)
        self.num_pca_comps = int(num_pca_comps)
        self.flat_hand_mean = bool(flat_hand_mean)
        self._parents = [int(p) for p in data.parents]
        t = data.to_torch(dtype)
        self.register_buffer("v_template", t["v_template"])
        self.register_buffer("shapedirs", t["shapedirs"])
        self.register_buffer("posedirs", t.get("posedirs"))
        self.register_buffer("j_regressor", t["j_regressor"])
        self.register_buffer("weights", t["weights"])
        self.register_buffer("faces_tensor", t["faces"])
        self.register_buffer("tip_vertex_ids", t["tip_vertex_ids"])
        self.register_buffer("hand_components", t["hands_components"][: self.num_pca_comps].clone())
        mean = torch.zeros(45, dtype=dtype) if self.flat_hand_mean else t["hands_mean"]
        self.register_buffer("hand_mean", mean)
        if data.joint_frames is not None:
            frames = np.asarray(data.joint_frames, dtype=np.float64)
            if frames.shape != (15, 3, 3):
                raise ValueError(f"HandModelData.joint_frames: expected (15, 3, 3), got {frames.shape}")
            inv = np.linalg.inv(frames)
        else:
            frames = inv = np.broadcast_to(np.eye(3), (15, 3, 3))
        self.register_buffer("joint_frames", torch.as_tensor(np.ascontiguousarray(frames), dtype=dtype))
        self.register_buffer("joint_frames_inv", torch.as_tensor(np.ascontiguousarray(inv), dtype=dtype))

    # -- properties -----------------------------------------------------------------------------
    @property
    def faces(self) -> np.ndarray:
        """(F, 3) int64 triangles (numpy)."""
        return np.asarray(self.data.faces, dtype=np.int64)

    @property
    def side(self) -> str:
        """"right" or "left"."""
        return self.data.side

    @property
    def num_betas(self) -> int:
        """Number of shape coefficients of the model."""
        return int(self.shapedirs.shape[2])

    @property
    def num_vertices(self) -> int:
        return int(self.v_template.shape[0])

    @property
    def hand_pose_dim(self) -> int:
        """Width of ``hand_pose``: ``num_pca_comps`` with PCA, else 45."""
        return self.num_pca_comps if self.use_pca else 45

    # -- pose conversions -----------------------------------------------------------------------
    def pca_to_axis_angle(self, coeffs: torch.Tensor) -> torch.Tensor:
        """Finger axis-angle (B, 45) of PCA coefficients (B, num_pca_comps), hand mean excluded."""
        if coeffs.ndim != 2 or coeffs.shape[1] != self.num_pca_comps:
            raise ValueError(f"coeffs: expected (B, {self.num_pca_comps}) PCA coefficients, got {tuple(coeffs.shape)}")
        return coeffs @ self.hand_components

    def anatomical_to_pose(self, r_anat: torch.Tensor) -> torch.Tensor:
        """Model axis-angle of anatomical per-joint axis-angles: ``r_j = A_j r_anat_j``.

        Args:
            r_anat: (B, 15, 3) radians, each joint's own frame (x flexion, y twist, z abduction);
                for MANO (no joint frames) the model's own axes.

        Returns:
            (B, 45) axis-angle finger pose in the model's rest frame (flat-hand-mean convention).
        """
        if r_anat.ndim != 3 or r_anat.shape[1:] != (15, 3):
            raise ValueError(f"r_anat: expected (B, 15, 3), got {tuple(r_anat.shape)}")
        A = self.joint_frames.to(r_anat.dtype)
        return torch.einsum("jab,njb->nja", A, r_anat).reshape(r_anat.shape[0], 45)

    def pose_to_anatomical(self, hand_pose: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`anatomical_to_pose`: (B, 45) axis-angle -> (B, 15, 3) radians."""
        if hand_pose.ndim != 2 or hand_pose.shape[1] != 45:
            raise ValueError(f"hand_pose: expected (B, 45) axis-angle, got {tuple(hand_pose.shape)}")
        Ainv = self.joint_frames_inv.to(hand_pose.dtype)
        return torch.einsum("jab,njb->nja", Ainv, hand_pose.reshape(-1, 15, 3))

    # -- forward --------------------------------------------------------------------------------
    def forward(self, global_orient: torch.Tensor, hand_pose: torch.Tensor, betas: torch.Tensor | None = None,
                transl: torch.Tensor | None = None) -> HandOutput:
        """Posed hand.

        Args:
            global_orient: (B, 3) wrist axis-angle, radians (rotation about the rest wrist joint).
            hand_pose: (B, 45) finger axis-angle or (B, num_pca_comps) PCA coefficients, relative
                to the hand mean unless ``flat_hand_mean``.
            betas: (B, S) shape coefficients with S <= num_betas (missing ones are 0), or None.
            transl: (B, 3) translation, metres, or None.

        Returns:
            :class:`HandOutput`, model frame (the frame of ``transl``), metres.
        """
        if global_orient.ndim != 2 or global_orient.shape[1] != 3:
            raise ValueError(f"global_orient: expected (B, 3) axis-angle, got {tuple(global_orient.shape)}")
        B = global_orient.shape[0]
        if self.use_pca:
            _check_batch("hand_pose", hand_pose, B, self.num_pca_comps, "PCA coefficients (use_pca=True)")
        else:
            _check_batch("hand_pose", hand_pose, B, 45, "axis-angle (use_pca=False)")
        if betas is not None and (betas.ndim != 2 or betas.shape[0] != B or betas.shape[1] > self.num_betas):
            raise ValueError(f"betas: expected (B, S) with B={B} and S <= {self.num_betas}, got {tuple(betas.shape)}")
        _check_batch("transl", transl, B, 3, "translation (metres)")
        dtype, device = self.v_template.dtype, self.v_template.device
        for name, x in (("global_orient", global_orient), ("hand_pose", hand_pose), ("betas", betas), ("transl", transl)):
            if x is not None and (x.dtype != dtype or x.device != device):
                raise ValueError(f"{name}: expected dtype {dtype} on {device} (the model's buffers; use "
                                 f"model.to(...)), got {x.dtype} on {x.device}")
        if betas is None:
            betas = torch.zeros(B, 0, dtype=dtype, device=device)
        fingers = hand_pose @ self.hand_components if self.use_pca else hand_pose
        full_pose = torch.cat([global_orient, fingers + self.hand_mean], dim=1)
        res = lbs(betas, full_pose, self.v_template, self.shapedirs, self.posedirs, self.j_regressor,
                  self._parents, self.weights, pose2rot=True)
        vertices, joints, transforms = res.vertices, res.joints, res.transforms
        if transl is not None:
            vertices = vertices + transl[:, None]
            joints = joints + transl[:, None]
            pad = torch.cat([transl, torch.zeros_like(transl[:, :1])], dim=1)
            transforms = transforms + torch.nn.functional.pad(pad[:, None, :, None], (3, 0))
        keypoints = torch.cat([joints, vertices[:, self.tip_vertex_ids]], dim=1)
        return HandOutput(vertices=vertices, joints=keypoints, joint_transforms=transforms,
                          rest_joints=res.rest_joints, full_pose=full_pose)

    def extra_repr(self) -> str:
        return (f"source={self.data.source!r}, side={self.side!r}, V={self.num_vertices}, "
                f"num_betas={self.num_betas}, use_pca={self.use_pca}, num_pca_comps={self.num_pca_comps}, "
                f"flat_hand_mean={self.flat_hand_mean}")



def rigid_transform_hand_params(global_orient: torch.Tensor, transl: torch.Tensor, rest_wrist: torch.Tensor,
                                rotation: torch.Tensor, translation: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """MANO parameters of a hand moved rigidly by ``x -> rotation x + translation``.

    MANO rotates about the rest wrist joint J0: posed = R (v - J0) + J0 + transl. Moved by
    (Q, q), the same hand has R' = Q R and transl' = Q (J0 + transl) + q - J0.

    Args:
        global_orient: (B, 3) axis-angle; transl: (B, 3) metres.
        rest_wrist: (B, 3) or (3,) rest wrist joint J0 of the shaped hand (``HandOutput.rest_joints[:, 0]``).
        rotation: (B, 3, 3) or (3, 3) rotation Q; translation: (B, 3) or (3,) q, metres.

    Returns:
        (global_orient', transl') (B, 3) each, differentiable.
    """
    import roma

    if global_orient.ndim != 2 or global_orient.shape[-1] != 3 or transl.shape != global_orient.shape:
        raise ValueError(f"global_orient and transl: expected (B, 3) each, got {tuple(global_orient.shape)} "
                         f"and {tuple(transl.shape)}")
    R = roma.rotvec_to_rotmat(global_orient)
    Q = rotation.to(R).expand(R.shape[0], 3, 3) if rotation.ndim == 2 else rotation.to(R)
    j0 = rest_wrist.to(R).expand_as(transl)
    q = translation.to(R).expand_as(transl)
    new_rot = roma.rotmat_to_rotvec(Q @ R)
    new_transl = (Q @ (j0 + transl)[..., None])[..., 0] + q - j0
    return new_rot, new_transl
