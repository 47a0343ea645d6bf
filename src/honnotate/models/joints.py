"""Hand keypoint orders, skeleton and the HO-3D hand-parameter convention.

MANO order (the project's): wrist; index 1-3; middle 1-3; pinky 1-3; ring 1-3; thumb 1-3; tips
thumb, index, middle, ring, pinky (16-20). OpenPose-like order: wrist, then thumb, index, middle,
ring, pinky with 4 points each (base to tip).

Index maps are "gather" arrays: ``x_openpose = x_mano[..., MANO_TO_OPENPOSE, :]`` and
``x_mano = x_openpose[..., OPENPOSE_TO_MANO, :]``.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch

__all__ = [
    "MANO_JOINT_NAMES", "OPENPOSE_JOINT_NAMES", "FINGERS", "MANO_TO_OPENPOSE", "OPENPOSE_TO_MANO",
    "FINGER_JOINTS", "TIP_INDICES", "KEYPOINT_PARENTS", "SKELETON_BONES", "OPENPOSE_SKELETON_BONES",
    "mano_to_openpose", "openpose_to_mano", "finger_of", "pose_index",
    "to_ho3d_hand", "from_ho3d_hand", "ho3d_camera_annotation",
]

FINGERS = ("thumb", "index", "middle", "ring", "pinky")
MANO_JOINT_NAMES = (
    "wrist",
    "index1", "index2", "index3",
    "middle1", "middle2", "middle3",
    "pinky1", "pinky2", "pinky3",
    "ring1", "ring2", "ring3",
    "thumb1", "thumb2", "thumb3",
    "thumb_tip", "index_tip", "middle_tip", "ring_tip", "pinky_tip",
)
#: MANO-order keypoint indices of each finger, base to tip (4 each).
FINGER_JOINTS = {
    "thumb": (13, 14, 15, 16),
    "index": (1, 2, 3, 17),
    "middle": (4, 5, 6, 18),
    "ring": (10, 11, 12, 19),
    "pinky": (7, 8, 9, 20),
}
TIP_INDICES = (16, 17, 18, 19, 20)
MANO_TO_OPENPOSE = np.array([0] + [j for f in FINGERS for j in FINGER_JOINTS[f]], dtype=np.int64)
OPENPOSE_TO_MANO = np.argsort(MANO_TO_OPENPOSE).astype(np.int64)
OPENPOSE_JOINT_NAMES = tuple(MANO_JOINT_NAMES[i] for i in MANO_TO_OPENPOSE)
#: Parent of each of the 21 MANO-order keypoints (-1 for the wrist).
KEYPOINT_PARENTS = (-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 0, 10, 11, 0, 13, 14, 15, 3, 6, 12, 9)
#: (parent, child) keypoint pairs in MANO order, for drawing (20 bones).
SKELETON_BONES = tuple((p, c) for c, p in enumerate(KEYPOINT_PARENTS) if p >= 0)
#: The same bones in OpenPose-like order.
OPENPOSE_SKELETON_BONES = tuple((int(OPENPOSE_TO_MANO[p]), int(OPENPOSE_TO_MANO[c])) for p, c in SKELETON_BONES)
_AXES = "xyz"


def _reorder(x: Any, index: np.ndarray, name: str) -> Any:
    if x.ndim < 2 or x.shape[-2] != 21:
        raise ValueError(f"{name}: expected shape (..., 21, D), got {tuple(x.shape)}")
    if torch.is_tensor(x):
        return x[..., torch.as_tensor(index, device=x.device), :]
    return np.asarray(x)[..., index, :]


def mano_to_openpose(x: Any) -> Any:
    """(..., 21, D) keypoints in MANO order -> OpenPose-like order (numpy or torch, same type)."""
    return _reorder(x, MANO_TO_OPENPOSE, "x")


def openpose_to_mano(x: Any) -> Any:
    """(..., 21, D) keypoints in OpenPose-like order -> MANO order (numpy or torch, same type)."""
    return _reorder(x, OPENPOSE_TO_MANO, "x")


def finger_of(keypoint: int | str) -> str | None:
    """Finger name of a MANO-order keypoint (index or name); None for the wrist."""
    idx = MANO_JOINT_NAMES.index(keypoint) if isinstance(keypoint, str) else int(keypoint)
    if not 0 <= idx < 21:
        raise ValueError(f"keypoint: expected 0..20 or a name in MANO_JOINT_NAMES, got {keypoint!r}")
    for f, ids in FINGER_JOINTS.items():
        if idx in ids:
            return f
    return None


def pose_index(joint: str, axis: str) -> int:
    """Index in the 45-D finger pose of ``joint`` (e.g. "index2") and ``axis`` ("x", "y", "z").

    Add 3 for the 48-D pose (global rotation first).
    """
    if joint not in MANO_JOINT_NAMES[1:16] or axis not in _AXES:
        raise ValueError(f"pose_index: expected a finger joint in {MANO_JOINT_NAMES[1:16]} and axis x/y/z, "
                         f"got {joint!r}, {axis!r}")
    return 3 * (MANO_JOINT_NAMES.index(joint) - 1) + _AXES.index(axis)


def _flat(x: Any, size: int, name: str) -> np.ndarray:
    arr = x.detach().cpu().numpy() if torch.is_tensor(x) else np.asarray(x)
    if arr.size != size or sum(n > 1 for n in arr.shape) > 1:
        raise ValueError(f"{name}: expected ({size},) or (1, {size}), got {tuple(arr.shape)}")
    return arr.astype(np.float64).reshape(size)


def _hands_mean(flat_hand_mean: bool, hands_mean: Any) -> np.ndarray:
    if flat_hand_mean:
        return np.zeros(45)
    if hands_mean is None:
        raise ValueError("hands_mean: required when flat_hand_mean=False (the model's HandModelData.hands_mean)")
    return _flat(hands_mean, 45, "hands_mean")


def to_ho3d_hand(global_orient: Any, hand_pose_axis_angle: Any, betas: Any, transl: Any, *,
                 flat_hand_mean: bool, hands_mean: Any = None) -> dict[str, np.ndarray]:
    """Hand parameters of one frame in the HO-3D annotation convention.

    Args:
        global_orient: (3,) or (1, 3) wrist axis-angle, radians.
        hand_pose_axis_angle: (45,) or (1, 45) finger axis-angle as given to a model with
            ``flat_hand_mean`` (relative to ``hands_mean`` when False).
        betas: (S,) or (1, S) shape; padded with zeros / truncated to 10 with a warning.
        transl: (3,) or (1, 3) translation, metres (the model frame: convert frames in ``io``).
        flat_hand_mean: the convention of ``hand_pose_axis_angle``.
        hands_mean: (45,) the model's hand mean (needed when ``flat_hand_mean`` is False).

    Returns:
        dict with handPose (48,) flat-hand-mean axis-angle, handTrans (3,), handBeta (10,),
        float64 numpy.
    """
    go = _flat(global_orient, 3, "global_orient")
    hp = _flat(hand_pose_axis_angle, 45, "hand_pose_axis_angle")
    tr = _flat(transl, 3, "transl")
    b = betas.detach().cpu().numpy() if torch.is_tensor(betas) else np.asarray(betas)
    if b.ndim == 2 and b.shape[0] == 1:
        b = b[0]
    if b.ndim != 1:
        raise ValueError(f"betas: expected (S,) or (1, S), got {tuple(b.shape)}")
    b = b.astype(np.float64)
    if b.shape[0] != 10:
        warnings.warn(f"to_ho3d_hand: {b.shape[0]} shape coefficients, HO-3D stores 10 "
                      f"({'truncated' if b.shape[0] > 10 else 'padded with zeros'})", stacklevel=2)
        b = np.concatenate([b, np.zeros(max(0, 10 - b.shape[0]))])[:10]
    pose = np.concatenate([go, hp + _hands_mean(flat_hand_mean, hands_mean)])
    return {"handPose": pose, "handTrans": tr, "handBeta": b}


def from_ho3d_hand(d: dict, *, flat_hand_mean: bool, hands_mean: Any = None,
                   dtype: torch.dtype = torch.float32, device: torch.device | str | None = None) -> dict[str, torch.Tensor]:
    """Inputs of :class:`~honnotate.models.hand.HandModel` from HO-3D hand parameters.

    Args:
        d: dict with handPose (48,), handTrans (3,), handBeta (10,) (e.g. one ``meta/*.pkl``).
        flat_hand_mean: the convention of the target model (subtracts ``hands_mean`` if False).
        hands_mean: (45,) the model's hand mean (needed when ``flat_hand_mean`` is False).

    Returns:
        dict of tensors with a batch of 1: global_orient (1, 3), hand_pose (1, 45) axis-angle,
        betas (1, 10), transl (1, 3).
    """
    for key in ("handPose", "handTrans", "handBeta"):
        if key not in d:
            raise ValueError(f"from_ho3d_hand: missing key {key!r} (have {sorted(d)})")
    pose = _flat(d["handPose"], 48, "handPose")
    out = {
        "global_orient": pose[:3],
        "hand_pose": pose[3:] - _hands_mean(flat_hand_mean, hands_mean),
        "betas": _flat(d["handBeta"], 10, "handBeta"),
        "transl": _flat(d["handTrans"], 3, "handTrans"),
    }
    return {k: torch.as_tensor(v, dtype=dtype, device=device)[None] for k, v in out.items()}


def ho3d_camera_annotation(cam_w2c: np.ndarray, K: np.ndarray, go_w, tr_w, hand_pose, betas, rest_wrist,
                     joints_w: np.ndarray, obj_rot_w: np.ndarray, obj_tr_w: np.ndarray, corners_rest: np.ndarray,
                     obj_name: str, hands_mean: np.ndarray | None) -> dict:
    """One frame's HO-3D annotation (OpenGL camera frame) for one camera, from world-frame values.

    Args:
        cam_w2c: (4, 4) world-to-camera (OpenCV). K: (3, 3) intrinsics, pixels.
        go_w, tr_w: (3,) MANO global_orient and transl, world frame. hand_pose: (45,) finger
            axis-angle, flat-hand-mean. betas: (S,). rest_wrist: (3,) rest wrist joint J0 of the
            shaped hand. joints_w: (21, 3) world joints, MANO order.
        obj_rot_w, obj_tr_w: (3,) object-to-world axis-angle and translation.
        corners_rest: (8, 3) object-frame bounding-box corners. obj_name: object name.
        hands_mean: (45,) the model's hand mean (HO-3D handPose is flat-hand-mean).

    Returns:
        dict with handPose, handTrans, handBeta, handJoints3D, objRot, objTrans, objCorners3DRest,
        objCorners3D, objName, objLabel, camMat (numpy, OpenGL camera frame, metres).
    """
    import roma

    from honnotate.models.hand import rigid_transform_hand_params

    F = np.diag([1.0, -1.0, -1.0])
    Rc, tc = cam_w2c[:3, :3], cam_w2c[:3, 3]
    # OpenCV camera frame, then the OpenGL flip (a rotation by pi about x: also rigid).
    Q = F @ Rc
    q = F @ tc
    go, tr = rigid_transform_hand_params(torch.as_tensor(go_w[None]), torch.as_tensor(tr_w[None]),
                                         torch.as_tensor(rest_wrist), torch.as_tensor(Q), torch.as_tensor(q))
    hand = to_ho3d_hand(go[0], hand_pose, betas[:10] if len(betas) >= 10 else np.pad(betas, (0, 10 - len(betas))),
                        tr[0], flat_hand_mean=True, hands_mean=hands_mean)
    R_o = roma.rotvec_to_rotmat(torch.as_tensor(obj_rot_w)).numpy()
    R_gl = Q @ R_o
    t_gl = Q @ obj_tr_w + q
    corners = corners_rest @ R_gl.T + t_gl
    return {
        **hand,
        "handJoints3D": joints_w @ Q.T + q,
        "objRot": roma.rotmat_to_rotvec(torch.as_tensor(R_gl)).numpy().reshape(3, 1),
        "objTrans": t_gl,
        "objCorners3DRest": corners_rest,
        "objCorners3D": corners,
        "objName": obj_name,
        "objLabel": 1,
        "camMat": K,
    }
