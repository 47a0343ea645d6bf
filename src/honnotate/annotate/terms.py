"""Energy terms of the annotation objective (paper Eq. 2-10), as pure functions.

Each term takes rendered tensors / posed geometry and cues and returns per-frame values
(``(B,)``) or per-frame per-camera values (``(B, C)``), unweighted; weights are applied by
:func:`honnotate.annotate.weights.total_energy`, so the pipeline can report every term per
frame. Nothing here renders: the silhouettes and depth maps come from
:class:`honnotate.render.renderer.Renderer` (or any renderer with the same outputs).

Conventions: metres, radians, pixels; camera frame OpenCV; segmentation labels 0 background,
1 object, 2 hand. Gradients flow to every floating-point input derived from the parameters
(rendered silhouettes/depth, joints, vertices, poses); cues are constants.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from honnotate.annotate.robust import RobustKind, robust, robust_sq
from honnotate.models.hand_data import HandModelData
from honnotate.models.limits import anatomical_limit_energy

__all__ = [
    "OBJECT_LABEL",
    "HAND_LABEL",
    "gaussian_pyramid",
    "mask_energy",
    "valid_depth",
    "depth_energy",
    "occlusion_energy",
    "project_to_cameras",
    "keypoints2d_energy",
    "keypoints2d_residuals",
    "joint_limit_energy",
    "interpenetration_energy",
    "velocity_energy",
    "acceleration_energy",
    "temporal_energy",
]

OBJECT_LABEL = 1
HAND_LABEL = 2

# 5-tap binomial kernel: the Gaussian of image pyramids (Burt & Adelson).
_BINOMIAL = (1.0, 4.0, 6.0, 4.0, 1.0)


def _shape(x) -> tuple:
    return tuple(x.shape) if isinstance(x, torch.Tensor) else (type(x).__name__,)


def _blur_down(x: torch.Tensor) -> torch.Tensor:
    """(N, H, W) -> (N, ceil(H/2), ceil(W/2)): 5x5 binomial blur (zero padding) then stride 2."""
    k1 = torch.tensor(_BINOMIAL, dtype=x.dtype, device=x.device) / 16.0
    k = (k1[:, None] * k1[None, :])[None, None]
    return F.conv2d(x[:, None], k, stride=2, padding=2)[:, 0]


def gaussian_pyramid(images: torch.Tensor, levels: int, weights: torch.Tensor | None = None) -> list[torch.Tensor]:
    """Gaussian pyramid (5x5 binomial blur, stride 2), optionally weight-normalised.

    With ``weights`` (e.g. 0 on pixels whose cue is missing) each level is the normalised
    convolution ``blur(w x) / blur(w)``, so ignored pixels never leak into their neighbours; the
    weights' own pyramid is returned by calling this function on them without weights.

    Args:
        images: (..., H, W) float.
        levels: number of levels after the full-resolution one (0: just the input).
        weights: (..., H, W) non-negative float/bool, broadcastable to ``images``, or None.

    Returns:
        ``levels + 1`` tensors (..., H_l, W_l), level 0 the input (masked-normalised inputs
        are returned unchanged at level 0), ``H_{l+1} = ceil(H_l / 2)``.
    """
    if not isinstance(images, torch.Tensor) or images.ndim < 2:
        raise ValueError(f"images: expected (..., H, W), got {_shape(images)}")
    if isinstance(levels, bool) or not isinstance(levels, int) or levels < 0:
        raise ValueError(f"levels: expected an int >= 0, got {levels!r}")
    lead, (h, w) = images.shape[:-2], images.shape[-2:]
    out = [images]
    x = images.reshape(-1, h, w)
    if weights is None:
        for _ in range(levels):
            x = _blur_down(x)
            out.append(x.reshape(*lead, *x.shape[-2:]))
        return out
    wt = torch.broadcast_to(weights.to(images.dtype), images.shape).reshape(-1, h, w)
    wx = wt * x
    for _ in range(levels):
        wx, wt = _blur_down(wx), _blur_down(wt)
        pos = wt > 1e-12
        x = torch.where(pos, wx / torch.where(pos, wt, torch.ones_like(wt)), torch.zeros_like(wx))
        out.append(x.reshape(*lead, *x.shape[-2:]))
    return out


def _check_images(name: str, x, shape: tuple[int, ...] | None = None, ndim: int = 4) -> None:
    if not isinstance(x, torch.Tensor) or x.ndim != ndim or (shape is not None and tuple(x.shape) != shape):
        want = shape if shape is not None else "(B, C, H, W)"
        raise ValueError(f"{name}: expected {want}, got {_shape(x)}")


def mask_targets(segmentation: torch.Tensor, valid: torch.Tensor | None, labels: tuple[int, ...], pyramid_levels: int,
                 dtype: torch.dtype, device: torch.device | str | None = None) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """The observed side of :func:`mask_energy`, which does not change while poses are optimised.

    Args:
        segmentation: (B, C, H, W) integer cue labels. valid: (B, C, H, W) bool/float or None.
        labels, pyramid_levels: as :func:`mask_energy`. dtype, device: of the silhouettes.

    Returns:
        ``(targets, weights)``: per level, the weight-normalised one-hot target
        (B, C, len(labels), H_l, W_l) and the weights' pyramid (B, C, H_l, W_l).
    """
    B, C, H, W = segmentation.shape
    seg = segmentation.to(device)
    target = torch.stack([(seg == k) for k in labels], dim=2).to(dtype)
    w = (torch.ones((B, C, H, W), dtype=dtype, device=seg.device) if valid is None
         else valid.to(device=seg.device, dtype=dtype))
    w_pyr = gaussian_pyramid(w, pyramid_levels)
    return _label_pyramid(target, w_pyr), w_pyr


def _label_pyramid(x: torch.Tensor, w_pyr: list[torch.Tensor]) -> list[torch.Tensor]:
    """:func:`gaussian_pyramid` of ``x`` (B, C, K, H, W) weighted by the per-image weights whose
    own pyramid is ``w_pyr`` (levels of (B, C, H_l, W_l)): the weights are blurred once for all
    K label channels (and for both sides of :func:`mask_energy`)."""
    out = [x]
    wx = w_pyr[0][:, :, None] * x
    for wl in w_pyr[1:]:
        wx = _blur_down(wx.reshape(-1, *wx.shape[-2:])).reshape(*wx.shape[:-2], *wl.shape[-2:])
        pos = (wl > 1e-12)[:, :, None]
        out.append(torch.where(pos, wx / torch.where(pos, wl[:, :, None], torch.ones_like(wl[:, :, None])),
                               torch.zeros_like(wx)))
    return out


def mask_energy(silhouettes: torch.Tensor, segmentation: torch.Tensor, valid: torch.Tensor | None = None,
                labels: tuple[int, ...] = (OBJECT_LABEL, HAND_LABEL), pyramid_levels: int = 2,
                targets: tuple[list[torch.Tensor], list[torch.Tensor]] | None = None) -> torch.Tensor:
    """Silhouette discrepancy E_mask (paper Eq. 4; the reference code's pyramid variant).

    ``sum_l sum_k mean_p w_l(p) (S_l,k(p) - M_l,k(p))^2`` with ``S_k`` the rendered soft silhouette
    of label k, ``M_k`` the one-hot segmentation cue of label k, and ``l`` over the full
    resolution plus ``pyramid_levels`` Gaussian-pyramid levels (the reference code: 2); the mean
    is over the valid pixels of each level (weights ``w_l`` = pyramid of ``valid``).

    Args:
        silhouettes: (B, C, L+1, H, W) float in [0, 1], channel k the soft silhouette of label k
            (channel 0 background), as :class:`RenderOutput.silhouettes`; differentiable.
        segmentation: (B, C, H, W) integer cue labels (0 background, 1 object, 2 hand).
        valid: (B, C, H, W) bool/float, 0 where the cue is missing (ignored pixels), or None.
        labels: labels compared (each < L+1).
        pyramid_levels: extra pyramid levels (0: full resolution only).
        targets: :func:`mask_targets` of the same segmentation, valid, labels and levels, computed
            once for many calls (an optimisation loop); None: computed here.

    Returns:
        (B, C) energy per frame and camera (0 for a camera with no valid pixel).
    """
    if not isinstance(silhouettes, torch.Tensor) or silhouettes.ndim != 5:
        raise ValueError(f"silhouettes: expected (B, C, L+1, H, W), got {_shape(silhouettes)}")
    B, C, L1, H, W = silhouettes.shape
    _check_images("segmentation", segmentation, (B, C, H, W))
    if valid is not None:
        _check_images("valid", valid, (B, C, H, W))
    if not labels or any(not 0 < k < L1 for k in labels):
        raise ValueError(f"labels: expected labels in 1..{L1 - 1} (silhouettes have {L1} channels), got {labels}")
    if targets is None:
        targets = mask_targets(segmentation, valid, labels, pyramid_levels, silhouettes.dtype, silhouettes.device)
    t_pyr, w_pyr = targets
    if len(t_pyr) != pyramid_levels + 1 or tuple(t_pyr[0].shape) != (B, C, len(labels), H, W):
        raise ValueError(f"targets: expected {pyramid_levels + 1} levels of (B, C, {len(labels)}, H, W) = "
                         f"{(B, C, len(labels), H, W)}, got {len(t_pyr)} of {tuple(t_pyr[0].shape)}")
    rendered = silhouettes[:, :, list(labels)]
    r_pyr = _label_pyramid(rendered, w_pyr)
    total = silhouettes.new_zeros(B, C)
    for r, t, wl in zip(r_pyr, t_pyr, w_pyr, strict=True):
        num = (wl[:, :, None] * (r - t) ** 2).sum(dim=(2, 3, 4))
        den = wl.sum(dim=(2, 3))
        total = total + torch.where(den > 0, num / torch.clamp(den, min=1e-12), torch.zeros_like(num))
    return total


def valid_depth(depth: torch.Tensor, max_depth: float = 0.75) -> torch.Tensor:
    """Bool mask of usable observed depth: finite, > 0 and <= ``max_depth`` (metres)."""
    return torch.isfinite(depth) & (depth > 0) & (depth <= max_depth)


def depth_energy(rendered_depth: torch.Tensor, observed_depth: torch.Tensor, region: torch.Tensor | None = None,
                 kind: RobustKind = "tukey", threshold: float = 0.02, max_depth: float = 0.75,
                 pyramid_levels: int = 0) -> torch.Tensor:
    """Robust depth residual E_dpt (paper Eq. 5) per frame and camera.

    ``mean_p w(p) rho(D_rend(p) - D_obs(p))`` over the valid pixels, ``w`` = ``region`` and
    observed depth valid (finite, > 0, <= ``max_depth``: the reference code treats 0 and depth
    beyond 0.75 m as background). ``rho`` is Tukey's biweight with threshold ``threshold``
    (the paper) or ``truncated_l1`` with threshold 0.5 m (the reference code), or any other
    :data:`~honnotate.annotate.robust.ROBUST_KINDS`. With ``pyramid_levels > 0`` the residual
    is also taken on weight-normalised Gaussian-pyramid levels of both depth maps and summed.
    The mean runs over all H x W pixels of a level (as the reference code), so the value does
    not jump when the region grows by a pixel.

    Args:
        rendered_depth: (B, C, H, W) metres, camera z (background at the renderer's
            ``background_depth``); differentiable.
        observed_depth: (B, C, H, W) metres (0 = no measurement).
        region: (B, C, H, W) bool/float pixels to compare (e.g. hand or object in the cue or
            in the rendering), or None for all pixels.

    Returns:
        (B, C) energy (metres^2 for Tukey, metres for truncated L1).
    """
    _check_images("rendered_depth", rendered_depth)
    _check_images("observed_depth", observed_depth, tuple(rendered_depth.shape))
    if region is not None:
        _check_images("region", region, tuple(rendered_depth.shape))
    obs = observed_depth.to(device=rendered_depth.device, dtype=rendered_depth.dtype)
    w = valid_depth(obs, max_depth).to(rendered_depth.dtype)
    if region is not None:
        w = w * region.to(device=rendered_depth.device, dtype=rendered_depth.dtype)
    obs = torch.where(w > 0, obs, torch.zeros_like(obs))
    r_pyr = gaussian_pyramid(rendered_depth, pyramid_levels, w)
    o_pyr = gaussian_pyramid(obs, pyramid_levels, w)
    w_pyr = gaussian_pyramid(w, pyramid_levels)
    total = rendered_depth.new_zeros(rendered_depth.shape[:2])
    for r, o, wl in zip(r_pyr, o_pyr, w_pyr, strict=True):
        rho = robust(r - o, kind, threshold)
        total = total + (wl * rho).mean(dim=(2, 3))
    return total


def occlusion_energy(rendered_depth: torch.Tensor, observed_depth: torch.Tensor, region: torch.Tensor,
                     kind: RobustKind = "tukey", threshold: float = 0.02, max_depth: float = 0.75,
                     margin: float = 0.01) -> torch.Tensor:
    """Free-space residual of a surface hidden behind an occluder, per frame and camera.

    Where the cue shows the occluder (the hand, for the object-only stages) and the rendering
    shows the object (``region``), the object may lie behind the observed surface but not in
    front of it: ``mean_p w(p) rho(max(0, D_obs(p) - margin - D_rend(p)))``, ``w`` = ``region`` and
    observed depth valid; the mean runs over all H x W pixels as in :func:`depth_energy`.

    Args:
        rendered_depth: (B, C, H, W) metres; differentiable. observed_depth: (B, C, H, W) metres.
        region: (B, C, H, W) bool pixels. margin: slack in metres (sensor noise).

    Returns:
        (B, C) energy, units of ``rho``.
    """
    _check_images("rendered_depth", rendered_depth)
    _check_images("observed_depth", observed_depth, tuple(rendered_depth.shape))
    _check_images("region", region, tuple(rendered_depth.shape))
    obs = observed_depth.to(device=rendered_depth.device, dtype=rendered_depth.dtype)
    w = valid_depth(obs, max_depth).to(rendered_depth.dtype) * region.to(device=rendered_depth.device,
                                                                            dtype=rendered_depth.dtype)
    ahead = torch.clamp(torch.where(w > 0, obs, torch.zeros_like(obs)) - margin - rendered_depth, min=0.0)
    return (w * robust(ahead, kind, threshold)).mean(dim=(2, 3))


def project_to_cameras(points_world: torch.Tensor, K: torch.Tensor,
                       world_to_cam: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Project (B, N, 3) world points (metres) into C cameras.

    Args:
        K: (C, 3, 3) intrinsics, pixels. world_to_cam: (C, 4, 4) world-to-camera (OpenCV).

    Returns:
        ``(uv, z)``: (B, C, N, 2) pixels and (B, C, N) camera depth, metres (z is clamped to
        1e-6 before dividing; mask points with small ``z``).
    """
    if not isinstance(points_world, torch.Tensor) or points_world.ndim != 3 or points_world.shape[-1] != 3:
        raise ValueError(f"points_world: expected (B, N, 3), got {_shape(points_world)}")
    if not isinstance(K, torch.Tensor) or K.ndim != 3 or K.shape[1:] != (3, 3):
        raise ValueError(f"K: expected (C, 3, 3), got {_shape(K)}")
    if not isinstance(world_to_cam, torch.Tensor) or world_to_cam.shape != (K.shape[0], 4, 4):
        raise ValueError(f"world_to_cam: expected ({K.shape[0]}, 4, 4), got {_shape(world_to_cam)}")
    K = K.to(points_world)
    T = world_to_cam.to(points_world)
    cam = torch.einsum("cij,bnj->bcni", T[:, :3, :3], points_world) + T[None, :, None, :3, 3]
    z = cam[..., 2]
    zc = torch.clamp(z, min=1e-6)[..., None]
    xy = cam[..., :2] / zc
    uv = torch.einsum("cij,bcnj->bcni", K[:, :2, :2], xy) + K[None, :, None, :2, 2]
    return uv, z


def _check_keypoints(joints: torch.Tensor, keypoints: torch.Tensor, K: torch.Tensor) -> None:
    if not isinstance(joints, torch.Tensor) or joints.ndim != 3 or joints.shape[-1] != 3:
        raise ValueError(f"joints: expected (B, J, 3), got {_shape(joints)}")
    B, J = joints.shape[:2]
    C = K.shape[0] if isinstance(K, torch.Tensor) and K.ndim == 3 else -1
    if not isinstance(keypoints, torch.Tensor) or tuple(keypoints.shape) != (B, C, J, 3):
        raise ValueError(f"keypoints: expected (B, C, J, 3) = ({B}, {C}, {J}, 3) (u, v, confidence), "
                         f"got {_shape(keypoints)}")


def keypoints2d_residuals(joints: torch.Tensor, keypoints: torch.Tensor, K: torch.Tensor, world_to_cam: torch.Tensor,
                          conf_threshold: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Reprojection residuals of 3D joints against 2D keypoint cues and their weights.

    Args:
        joints: (B, J, 3) metres, world frame (J = 21, MANO order).
        keypoints: (B, C, J, 3) cues (u, v pixels, confidence); NaN u/v or confidence <=
            ``conf_threshold`` count as missing.
        K: (C, 3, 3); world_to_cam: (C, 4, 4).

    Returns:
        ``(residuals, weights)``: (B, C, J, 2) ``proj(joint) - (u, v)`` pixels (0 where missing)
        and (B, C, J) confidences (0 where missing or the joint is behind the camera).
    """
    _check_keypoints(joints, keypoints, K)
    uv, z = project_to_cameras(joints, K, world_to_cam)
    kp = keypoints.to(joints)
    conf = kp[..., 2]
    ok = torch.isfinite(kp).all(dim=-1) & (conf > conf_threshold) & (z > 1e-3)
    target = torch.where(ok[..., None], kp[..., :2], uv.detach())
    res = torch.where(ok[..., None], uv - target, torch.zeros_like(uv))
    w = torch.where(ok, conf, torch.zeros_like(conf))
    return res, w


def keypoints2d_energy(joints: torch.Tensor, keypoints: torch.Tensor, K: torch.Tensor, world_to_cam: torch.Tensor,
                       kind: RobustKind = "l2", scale: float = 20.0, conf_threshold: float = 0.0) -> torch.Tensor:
    """Confidence-weighted 2D joint error E_j2d (paper Eq. 6) per frame and camera.

    ``sum_i h_i rho(|proj_c(J_i) - K_c,i|^2)`` with ``rho`` the identity (``kind="l2"``: Eq. 6) or a
    robust penalty (e.g. ``"geman_mcclure"`` / ``"huber"`` with ``scale`` pixels).

    Args:
        joints: (B, 21, 3) metres, world frame. keypoints: (B, C, 21, 3) (u, v, confidence).
        K: (C, 3, 3) pixels; world_to_cam: (C, 4, 4).

    Returns:
        (B, C) energy, pixels^2.
    """
    res, w = keypoints2d_residuals(joints, keypoints, K, world_to_cam, conf_threshold)
    return (w * robust_sq((res ** 2).sum(-1), kind, scale)).sum(-1)


def joint_limit_energy(finger_pose: torch.Tensor, data: HandModelData, kind: str = "l1",
                       mask=None) -> torch.Tensor:
    """Joint-angle limits E_joint (paper Eq. 8) per frame.

    MANO data: the reference code's limit table on the axis-angle components; a model with
    anatomical joint frames (the open hand): its flexion/abduction/twist limits.

    Args:
        finger_pose: (B, 45) finger axis-angle actually applied (``HandOutput.full_pose[:, 3:]``,
            flat-hand-mean), radians.
        kind: "l1" (paper) or "squared" (reference code).

    Returns:
        (B,) energy.
    """
    return anatomical_limit_energy(finger_pose, data, kind=kind, mask=mask)


def interpenetration_energy(points: torch.Tensor, closest: torch.Tensor, normals: torch.Tensor,
                            exponent: float = 5.0, margin: float = 0.0,
                            weights: torch.Tensor | None = None) -> torch.Tensor:
    """Hand-object repulsion E_phy (paper Eq. 9-10) per frame.

    ``sum_m exp(w Gamma_m) - 1`` with ``Gamma_m = max(margin - n_m . (p_m - o_m), 0)``: ``o_m`` the
    object surface point closest to hand point ``p_m`` and ``n_m`` its outward normal, so
    ``Gamma`` is the penetration depth (plus ``margin``). The paper: subsampled hand vertices,
    ``w = 5``, ``margin = 0``; the reference code: the 21 joints, ``w = 10``, ``margin = 5 mm``.
    The ``-1`` makes the energy 0 without contact (the paper's constant offset has no gradient).

    ``closest`` and ``normals`` are correspondences held fixed (from
    :class:`honnotate.annotate.correspondence.ObjectSurfaceQuery`); the gradient flows through
    ``points`` and, when the object pose is optimised, through ``closest`` / ``normals``
    expressed in the world frame, or through ``points`` expressed in the object frame.

    Args:
        points: (B, M, 3) hand points, metres. closest: (B, M, 3) object surface points, metres,
            same frame. normals: (B, M, 3) unit outward normals, same frame.
        exponent: ``w``, 1/metres. margin: metres.
        weights: (B, M) 0/1 validity (e.g. 0 where no surface point was found), or None.

    Returns:
        (B,) energy (dimensionless).
    """
    if not isinstance(points, torch.Tensor) or points.ndim != 3 or points.shape[-1] != 3:
        raise ValueError(f"points: expected (B, M, 3), got {_shape(points)}")
    for name, x in (("closest", closest), ("normals", normals)):
        if not isinstance(x, torch.Tensor) or x.shape != points.shape:
            raise ValueError(f"{name}: expected {tuple(points.shape)} like points, got {_shape(x)}")
    s = ((points - closest.to(points)) * normals.to(points)).sum(-1)
    gamma = torch.relu(margin - s)
    e = torch.expm1(exponent * gamma)
    if weights is not None:
        if weights.shape != points.shape[:2]:
            raise ValueError(f"weights: expected {tuple(points.shape[:2])}, got {_shape(weights)}")
        e = e * weights.to(e)
    return e.sum(-1)


def _check_series(name: str, x) -> None:
    if not isinstance(x, torch.Tensor) or x.ndim != 2:
        raise ValueError(f"{name}: expected (T, D) parameters over T frames, got {_shape(x)}")


def _dim_weights(x: torch.Tensor, dims) -> torch.Tensor:
    if dims is None:
        return torch.ones(x.shape[1], dtype=x.dtype, device=x.device)
    w = torch.as_tensor(dims, dtype=x.dtype, device=x.device)
    if w.shape != (x.shape[1],):
        raise ValueError(f"dim_weights: expected ({x.shape[1]},), got {tuple(w.shape)}")
    return w


def velocity_energy(params: torch.Tensor, dim_weights=None) -> torch.Tensor:
    """0th-order motion model: ``|p_t - p_{t-1}|^2`` per frame (paper's ``|Delta_t|^2``).

    Args:
        params: (T, D) per-frame parameters (axis-angle radians / metres), frames in order.
        dim_weights: (D,) per-dimension weights (e.g. 0 on DOFs left free), or None.

    Returns:
        (T,) energy, frame 0 gets 0.
    """
    _check_series("params", params)
    w = _dim_weights(params, dim_weights)
    d = params[1:] - params[:-1]
    e = (w * d * d).sum(-1)
    return torch.cat([e.new_zeros(min(1, params.shape[0])), e])


def acceleration_energy(params: torch.Tensor, dim_weights=None) -> torch.Tensor:
    """1st-order motion model: ``|Delta_t - Delta_{t-1}|^2 = |p_t - 2 p_{t-1} + p_{t-2}|^2`` per frame.

    Args:
        params: (T, D) per-frame parameters. dim_weights: (D,) or None.

    Returns:
        (T,) energy, frames 0 and 1 get 0.
    """
    _check_series("params", params)
    w = _dim_weights(params, dim_weights)
    a = params[2:] - 2 * params[1:-1] + params[:-2]
    e = (w * a * a).sum(-1)
    return torch.cat([e.new_zeros(min(2, params.shape[0])), e])


def temporal_energy(hand_params: torch.Tensor, object_params: torch.Tensor) -> torch.Tensor:
    """Paper's E_tc per frame: ``|D_h|^2 + |D_o|^2 + |D_h^t - D_h^{t-1}|^2 + |D_o^t - D_o^{t-1}|^2``.

    Args:
        hand_params: (T, Dh) hand pose per frame (e.g. 48-D pose + translation).
        object_params: (T, Do) object pose per frame (rotvec + translation).

    Returns:
        (T,) energy. The reference code's variant (zero acceleration on finger joints and object
        rotation, zero velocity on object translation, each with its own weight) is assembled
        from :func:`velocity_energy` / :func:`acceleration_energy` by the caller.
    """
    _check_series("hand_params", hand_params)
    _check_series("object_params", object_params)
    if hand_params.shape[0] != object_params.shape[0]:
        raise ValueError(f"hand_params and object_params: expected the same T, got {hand_params.shape[0]} "
                         f"and {object_params.shape[0]}")
    return (velocity_energy(hand_params) + velocity_energy(object_params)
            + acceleration_energy(hand_params) + acceleration_energy(object_params))
