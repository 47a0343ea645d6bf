"""Typed term weights and settings, stage presets, and the weighted sum of the terms.

Defaults follow the public HOnnotate code's stage weights (silhouette, depth, 3D hand, 3D
object, limits, contact, temporal) and, for the multi-camera joint optimisation, the paper's
(alpha 20, beta 20, gamma 5e-5, delta 50, epsilon 100, zeta 50, eta 100; Sec. 4.2).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import torch

from honnotate.annotate.robust import ROBUST_KINDS

__all__ = [
    "TermWeights",
    "TermSettings",
    "TERM_NAMES",
    "OBJECT_TRACKING_WEIGHTS",
    "GRASP_POSE_WEIGHTS",
    "HAND_OBJECT_TRACKING_WEIGHTS",
    "REFINEMENT_WEIGHTS",
    "MULTI_CAMERA_WEIGHTS",
    "HAND_INIT_WEIGHTS",
    "total_energy",
]


@dataclass(frozen=True)
class TermWeights:
    """Weight of each energy term (0 switches a term off).

    Attributes:
        mask: E_mask (silhouettes vs segmentation), per camera.
        depth: E_dpt (robust depth residual), per camera.
        keypoints2d: E_j2d (2D keypoint reprojection), per camera.
        points3d_hand / points3d_object: E_3D on the hand / object cloud.
        joint_limits: E_joint.
        interpenetration: E_phy.
        temporal: the paper's E_tc (0th + 1st order on hand and object poses).
        hand_accel: zero acceleration of the finger joints (reference code).
        object_rot_accel: zero acceleration of the object rotation (reference code).
        object_trans_vel: zero velocity of the object translation (reference code).
    """

    mask: float = 0.0
    depth: float = 0.0
    keypoints2d: float = 0.0
    points3d_hand: float = 0.0
    points3d_object: float = 0.0
    joint_limits: float = 0.0
    interpenetration: float = 0.0
    temporal: float = 0.0
    hand_accel: float = 0.0
    object_rot_accel: float = 0.0
    object_trans_vel: float = 0.0

    def __post_init__(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            if not isinstance(v, (int, float)) or isinstance(v, bool) or not v >= 0:
                raise ValueError(f"TermWeights.{f.name}: expected a number >= 0, got {v!r}")

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


#: Names of the terms, as keys of the dict passed to :func:`total_energy`.
TERM_NAMES: tuple[str, ...] = tuple(f.name for f in fields(TermWeights))

#: Reference code, object pose init/tracking: silhouette 1.15, depth 5, 3D object 500.
OBJECT_TRACKING_WEIGHTS = TermWeights(mask=1.15, depth=5.0, points3d_object=500.0)
#: Reference code, grasp pose (Eq. 13): 50, 10, 5e3, 5e3, 1e2, contact 0.1.
GRASP_POSE_WEIGHTS = TermWeights(mask=50.0, depth=10.0, points3d_hand=5e3, points3d_object=5e3,
                                 joint_limits=1e2, interpenetration=0.1)
#: Reference code, hand+object tracking: 10, 1, 1e3, 1e3, 1e2.
HAND_OBJECT_TRACKING_WEIGHTS = TermWeights(mask=10.0, depth=1.0, points3d_hand=1e3, points3d_object=1e3,
                                           joint_limits=1e2)
#: Reference code, multi-frame refinement: 10, 5, 1e2, 1e2, 1e2, contact 0; temporal 10 / 10 / 5e2.
REFINEMENT_WEIGHTS = TermWeights(mask=10.0, depth=5.0, points3d_hand=1e2, points3d_object=1e2, joint_limits=1e2,
                                 hand_accel=10.0, object_rot_accel=10.0, object_trans_vel=5e2)
#: Paper Sec. 4.2 (multi-camera joint optimisation): alpha, beta, gamma, delta, epsilon, zeta, eta.
MULTI_CAMERA_WEIGHTS = TermWeights(mask=20.0, depth=20.0, keypoints2d=5e-5, points3d_hand=50.0,
                                   points3d_object=50.0, joint_limits=100.0, interpenetration=50.0, temporal=100.0)
#: Paper Eq. 11/12 (hand initialisation from 2D keypoints): E_j2d + nu E_joint, nu = 50.
HAND_INIT_WEIGHTS = TermWeights(keypoints2d=1.0, joint_limits=50.0)


@dataclass(frozen=True)
class TermSettings:
    """Settings of the terms other than their weights (defaults: see each attribute).

    Attributes:
        depth_kind: "tukey" (paper Eq. 5) or "truncated_l1" (reference code) or another robust kind.
        tukey_threshold: Tukey threshold, metres. The paper's text gives no value; 2 cm is about the
            hand model's shape error plus sensor noise at 0.5 m.
        truncation: truncated-L1 threshold, metres (reference code: 0.5).
        max_depth: observed depth beyond this (or 0) is ignored, metres (reference code: 0.75).
        pyramid_levels: extra Gaussian-pyramid levels of E_mask / E_dpt (reference code: 2).
        keypoint_kind / keypoint_scale: robust penalty of E_j2d and its threshold, pixels.
        keypoint_conf_threshold: keypoints with confidence <= this are ignored.
        points3d_gate: outlier gate of E_3D, metres. points3d_refresh: calls between closest-face searches.
        phy_mode: "vertices" (paper: subsampled hand vertices, w = 5, no margin) or "joints"
            (reference code: 21 joints, w = 10, 5 mm margin).
        phy_exponent / phy_margin / phy_num_vertices: E_phy parameters (None: the mode's default).
        limit_kind: "l1" (paper Eq. 8) or "squared" (reference code).
    """

    depth_kind: str = "tukey"
    tukey_threshold: float = 0.02
    truncation: float = 0.5
    max_depth: float = 0.75
    pyramid_levels: int = 2
    keypoint_kind: str = "l2"
    keypoint_scale: float = 20.0
    keypoint_conf_threshold: float = 0.0
    points3d_gate: float = 0.02
    points3d_refresh: int = 5
    phy_mode: str = "vertices"
    phy_exponent: float | None = None
    phy_margin: float | None = None
    phy_num_vertices: int = 200
    limit_kind: str = "l1"

    def __post_init__(self) -> None:
        for name in ("depth_kind", "keypoint_kind"):
            if getattr(self, name) not in ROBUST_KINDS:
                raise ValueError(f"TermSettings.{name}: expected one of {ROBUST_KINDS}, got {getattr(self, name)!r}")
        if self.phy_mode not in ("vertices", "joints"):
            raise ValueError(f"TermSettings.phy_mode: expected 'vertices' or 'joints', got {self.phy_mode!r}")
        if self.limit_kind not in ("l1", "squared"):
            raise ValueError(f"TermSettings.limit_kind: expected 'l1' or 'squared', got {self.limit_kind!r}")
        for name in ("tukey_threshold", "truncation", "max_depth", "keypoint_scale", "points3d_gate"):
            if not getattr(self, name) > 0:
                raise ValueError(f"TermSettings.{name}: expected > 0, got {getattr(self, name)!r}")

    @property
    def depth_threshold(self) -> float:
        """Threshold of the selected depth penalty, metres."""
        return self.truncation if self.depth_kind == "truncated_l1" else self.tukey_threshold

    @property
    def phy_parameters(self) -> tuple[float, float]:
        """(exponent 1/m, margin m) of E_phy for :attr:`phy_mode` unless overridden."""
        exp_default, margin_default = (5.0, 0.0) if self.phy_mode == "vertices" else (10.0, 0.005)
        return (self.phy_exponent if self.phy_exponent is not None else exp_default,
                self.phy_margin if self.phy_margin is not None else margin_default)


def total_energy(terms: dict[str, torch.Tensor], weights: TermWeights) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Weighted sum of energy terms.

    Args:
        terms: term name (one of :data:`TERM_NAMES`) -> per-frame values (B,) or per-frame per-camera
            values (B, C) (summed over cameras), unweighted. Terms with weight 0 are skipped
            (they may be absent); a term with a non-zero weight may be absent (not computed).
        weights: :class:`TermWeights`.

    Returns:
        ``(total, per_frame)``: scalar total, and name -> (B,) weighted per-frame values of the
        terms that contributed (for per-frame per-term residual reports).
    """
    unknown = set(terms) - set(TERM_NAMES)
    if unknown:
        raise ValueError(f"terms: unknown term name(s) {sorted(unknown)}; expected names from {TERM_NAMES}")
    per_frame: dict[str, torch.Tensor] = {}
    total = None
    for name, value in terms.items():
        w = getattr(weights, name)
        if w == 0:
            continue
        if not isinstance(value, torch.Tensor) or value.ndim not in (1, 2):
            raise ValueError(f"terms[{name!r}]: expected (B,) or (B, C) values, got "
                             f"{tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__}")
        v = w * (value.sum(-1) if value.ndim == 2 else value)
        per_frame[name] = v
        total = v.sum() if total is None else total + v.sum()
    if total is None:
        raise ValueError("total_energy: no term with a non-zero weight was given")
    return total, per_frame
