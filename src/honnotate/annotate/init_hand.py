"""Automatic hand initialisation from 2D keypoint cues (paper Sec. 4.1, Eq. 11 and 12).

- :func:`fit_hand_to_keypoints` (multi-camera, Eq. 11): per frame, the wrist rotation and
  translation and the 15 finger joints (anatomical angles; for MANO data its own axes) fitted
  to the 2D keypoints of all cameras with joint limits, by Levenberg-Marquardt with
  confidence weights and an annealed robust (Geman-McClure) IRLS loss. The wrist starts from
  a geometric guess: triangulated palm keypoints (several cameras), palm keypoints lifted with
  depth (one camera with depth), or a multi-start perspective-n-point fit of the palm.
- :func:`fit_grasp_to_keypoints` (single camera, Eq. 12): one finger pose shared over a subset
  of frames, only the wrist rotation/translation free per frame; the result is turned into a
  grasp relative to the object (:mod:`honnotate.annotate.grasp`).
- :func:`select_grasp_frames`: the reference code's frame choice (confident keypoints, visible
  object), spread by farthest-point sampling of the object rotation.

The fits use :class:`KeypointModel`, the hand model reduced to its 21 keypoints (exact: the
16 joints and 5 fingertip vertices of the full LBS), which makes Jacobians cheap.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import roma
import torch

from honnotate.annotate.grasp import grasp_to_world, mean_rotation, world_to_grasp
from honnotate.annotate.lm import batch_jacobian, levenberg_marquardt
from honnotate.annotate.robust import irls_weight_sq, robust_sq
from honnotate.annotate.terms import keypoints2d_residuals, project_to_cameras
from honnotate.geometry.multiview import triangulate_points
from honnotate.models.hand import HandModel
from honnotate.models.lbs import lbs
from honnotate.models.limits import model_joint_limits

__all__ = [
    "PALM_JOINTS",
    "KeypointModel",
    "HandFit",
    "GraspFit",
    "triangulate_points",
    "kabsch",
    "initial_wrist_pose",
    "fit_hand_to_keypoints",
    "fit_grasp_to_keypoints",
    "select_grasp_frames",
    "fit_shape_to_keypoints",
    "align_depth",
]

#: Keypoints moved by the wrist only (wrist, index1, middle1, pinky1, ring1, thumb1; MANO order).
PALM_JOINTS = (0, 1, 4, 7, 10, 13)


class KeypointModel(torch.nn.Module):
    """A hand model reduced to its 21 keypoints (MANO order), for fast fitting.

    Built from a :class:`HandModel`: 16 pseudo-vertices at the regressed joints (their shape
    directions regressed too) plus the 5 fingertip vertices with their shape directions, pose
    correctives and skinning weights, so its output equals ``HandModel.forward(...).joints``.

    Args:
        hand: the full model. betas: (S,) subject shape (None: mean shape). dtype: of the buffers.
    """

    def __init__(self, hand: HandModel, betas: torch.Tensor | None = None, dtype: torch.dtype = torch.float64) -> None:
        super().__init__()
        dev = hand.v_template.device
        f = {k: getattr(hand, k).to(dtype) for k in ("v_template", "shapedirs", "j_regressor", "weights")}
        tips = hand.tip_vertex_ids.long()
        J = f["j_regressor"].shape[0]
        V = f["v_template"].shape[0]
        S = f["shapedirs"].shape[2]
        jt = f["j_regressor"] @ f["v_template"]
        jdirs = torch.einsum("jv,vcs->jcs", f["j_regressor"], f["shapedirs"])
        self.register_buffer("v_template", torch.cat([jt, f["v_template"][tips]]))
        self.register_buffer("shapedirs", torch.cat([jdirs, f["shapedirs"][tips]]))
        if hand.posedirs is not None:
            pd = hand.posedirs.to(dtype).reshape(-1, V, 3)
            pd = torch.cat([torch.zeros(pd.shape[0], J, 3, dtype=dtype, device=dev), pd[:, tips]], dim=1)
            self.register_buffer("posedirs", pd.reshape(pd.shape[0], -1))
        else:
            self.posedirs = None
        reg = torch.zeros(J, J + len(tips), dtype=dtype, device=dev)
        reg[:, :J] = torch.eye(J, dtype=dtype, device=dev)
        self.register_buffer("j_regressor", reg)
        self.register_buffer("weights", torch.cat([torch.eye(J, dtype=dtype, device=dev), f["weights"][tips]]))
        self.register_buffer("hand_mean", hand.hand_mean.to(dtype))
        self.register_buffer("joint_frames", hand.joint_frames.to(dtype))
        b = torch.zeros(1, S, dtype=dtype, device=dev) if betas is None else torch.as_tensor(
            betas, dtype=dtype, device=dev).reshape(1, -1)
        if b.shape[1] > S:
            raise ValueError(f"betas: expected at most {S} coefficients, got {b.shape[1]}")
        self.register_buffer("betas", b)
        self._parents = list(hand._parents)
        self.data = hand.data

    @property
    def rest_wrist(self) -> torch.Tensor:
        """(3,) rest wrist joint J0 of the shaped hand, metres."""
        return self.v_template[0] + (self.shapedirs[0, :, : self.betas.shape[1]] @ self.betas[0])

    def finger_pose(self, anatomical: torch.Tensor) -> torch.Tensor:
        """(B, 45) model axis-angle of (B, 45) anatomical angles (joint-major, x/y/z per joint)."""
        return torch.einsum("jab,njb->nja", self.joint_frames, anatomical.reshape(-1, 15, 3)).reshape(-1, 45)

    def forward(self, global_orient: torch.Tensor, anatomical: torch.Tensor, transl: torch.Tensor,
                betas: torch.Tensor | None = None) -> torch.Tensor:
        """Keypoints (B, 21, 3), metres, world frame, of (B, 3) wrist axis-angle, (B, 45)
        anatomical finger angles (radians, flat-hand-mean), (B, 3) translation and optional
        (B, S) betas (default: the model's subject shape)."""
        B = global_orient.shape[0]
        pose = torch.cat([global_orient, self.finger_pose(anatomical) + self.hand_mean], dim=1)
        res = lbs(self.betas.expand(B, -1) if betas is None else betas, pose, self.v_template, self.shapedirs, self.posedirs, self.j_regressor,
                  self._parents, self.weights)
        return torch.cat([res.joints, res.vertices[:, res.joints.shape[1]:]], dim=1) + transl[:, None]


@dataclass(frozen=True)
class HandFit:
    """Result of :func:`fit_hand_to_keypoints` (B frames, float64, CPU or the input's device).

    global_orient: (B, 3) axis-angle; anatomical: (B, 45) finger angles (joint frames);
    finger_pose: (B, 45) model axis-angle (flat-hand-mean); transl: (B, 3) metres;
    joints: (B, 21, 3) metres, world frame; reprojection_error: (B,) mean confidence-weighted
    reprojection error of the inlier keypoints, pixels.
    """

    global_orient: torch.Tensor
    anatomical: torch.Tensor
    finger_pose: torch.Tensor
    transl: torch.Tensor
    joints: torch.Tensor
    reprojection_error: torch.Tensor


@dataclass(frozen=True)
class GraspFit:
    """Result of :func:`fit_grasp_to_keypoints`.

    rel_rotvec, rel_transl: (3,) shared grasp (hand global_orient/transl in the object frame);
    anatomical, finger_pose: (45,) shared finger pose; global_orient, transl: (T, 3) per-frame
    wrist fits, world frame; joints: (T, 21, 3); reprojection_error: (T,) pixels.
    """

    rel_rotvec: torch.Tensor
    rel_transl: torch.Tensor
    anatomical: torch.Tensor
    finger_pose: torch.Tensor
    global_orient: torch.Tensor
    transl: torch.Tensor
    joints: torch.Tensor
    reprojection_error: torch.Tensor


def kabsch(source: torch.Tensor, target: torch.Tensor, weights: torch.Tensor | None = None
           ) -> tuple[torch.Tensor, torch.Tensor]:
    """Rigid (R, t) minimising ``sum_i w_i |R s_i + t - t_i|^2`` for (N, 3) point sets (N >= 3)."""
    w = torch.ones(source.shape[0], dtype=source.dtype, device=source.device) if weights is None else weights.to(source)
    w = w / torch.clamp(w.sum(), min=1e-12)
    cs = (w[:, None] * source).sum(0)
    ct = (w[:, None] * target).sum(0)
    H = ((source - cs) * w[:, None]).T @ (target - ct)
    R = roma.special_procrustes(H.T)
    return R, ct - R @ cs


def _fibonacci_rotations(n: int, dtype, device) -> torch.Tensor:
    """(n * 4, 3, 3) rotations: n directions on a Fibonacci sphere x 4 in-plane angles."""
    i = torch.arange(n, dtype=dtype, device=device) + 0.5
    phi = torch.arccos(1 - 2 * i / n)
    theta = np.pi * (1 + 5 ** 0.5) * i
    z = torch.stack([torch.cos(theta) * torch.sin(phi), torch.sin(theta) * torch.sin(phi), torch.cos(phi)], -1)
    ref = torch.tensor([1.0, 0.0, 0.0], dtype=dtype, device=device).expand_as(z)
    alt = torch.tensor([0.0, 1.0, 0.0], dtype=dtype, device=device).expand_as(z)
    ref = torch.where((z[:, :1].abs() > 0.9), alt, ref)
    x = torch.nn.functional.normalize(torch.cross(ref, z, dim=-1), dim=-1)
    y = torch.cross(z, x, dim=-1)
    base = torch.stack([x, y, z], dim=-1)  # columns x, y, z
    out = []
    for a in (0.0, 0.5 * np.pi, np.pi, 1.5 * np.pi):
        Rz = roma.rotvec_to_rotmat(torch.tensor([0.0, 0.0, a], dtype=dtype, device=device))
        out.append(base @ Rz)
    return torch.cat(out)


def _transl_for(R: torch.Tensor, t_rigid: torch.Tensor, j0: torch.Tensor) -> torch.Tensor:
    """MANO transl of a hand whose rest keypoints map rigidly by x -> R x + t_rigid."""
    return t_rigid - j0 + (R @ j0[..., None])[..., 0]


def initial_wrist_pose(model: KeypointModel, keypoints: torch.Tensor, K: torch.Tensor, world_to_cam: torch.Tensor,
                       depth_at_keypoints: torch.Tensor | None = None, conf_threshold: float = 0.1,
                       typical_distance: float = 0.5, num_directions: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    """Geometric first guess of the wrist pose of one frame from its palm keypoints.

    Several cameras seeing the palm: triangulate the palm keypoints and align the rest palm to
    them (Kabsch). One camera with depth: lift the palm keypoints with ``depth_at_keypoints``.
    Otherwise: a multi-start rigid fit of the rest palm to the 2D palm keypoints (rotations on a
    Fibonacci sphere x 4 in-plane angles, distance from the palm's image size, or
    ``typical_distance`` metres) refined by Levenberg-Marquardt; the best is kept.

    Args:
        keypoints: (C, 21, 3) (u, v, confidence) cues of one frame, MANO order.
        K: (C, 3, 3); world_to_cam: (C, 4, 4).
        depth_at_keypoints: (C, 21) metres (0 / NaN unknown) or None.

    Returns:
        (global_orient (3,), transl (3,)) float64 on the model's device.
    """
    dt = model.v_template.dtype
    kp = keypoints.to(dt)
    Kd, Td = K.to(dt), world_to_cam.to(dt)
    C = kp.shape[0]
    zero = torch.zeros(1, 45, dtype=dt, device=kp.device)
    rest = model(torch.zeros(1, 3, dtype=dt, device=kp.device), zero, torch.zeros(1, 3, dtype=dt, device=kp.device))[0]
    palm = list(PALM_JOINTS)
    conf = torch.where(torch.isfinite(kp[..., 2]) & (kp[..., 2] > conf_threshold), kp[..., 2], torch.zeros_like(kp[..., 2]))
    j0 = model.rest_wrist
    if C >= 2:
        pts, ok = triangulate_points(torch.nan_to_num(kp[:, palm, :2]), conf[:, palm], Kd, Td)
        if int(ok.sum()) >= 3:
            R, t = kabsch(rest[palm][ok], pts[ok])
            return roma.rotmat_to_rotvec(R), _transl_for(R, t, j0)
    if depth_at_keypoints is not None:
        d = depth_at_keypoints.to(dt)[:, palm]
        ok_c = (conf[:, palm] > 0) & torch.isfinite(d) & (d > 0)
        c = int(ok_c.sum(1).argmax())
        if int(ok_c[c].sum()) >= 3:
            sel = ok_c[c]
            uv1 = torch.cat([kp[c, palm, :2], torch.ones(len(palm), 1, dtype=dt, device=kp.device)], 1)
            cam = (torch.linalg.inv(Kd[c]) @ uv1.T).T * d[c][:, None]
            c2w = torch.linalg.inv(Td[c])
            world = cam @ c2w[:3, :3].T + c2w[:3, 3]
            R, t = kabsch(rest[palm][sel], world[sel])
            return roma.rotmat_to_rotvec(R), _transl_for(R, t, j0)
    # multi-start perspective-n-point on the palm in the camera seeing most palm keypoints
    c = int((conf[:, palm] > 0).sum(1).argmax())
    sel = conf[c, palm] > 0
    if int(sel.sum()) < 3:
        raise ValueError("initial_wrist_pose: fewer than 3 confident palm keypoints (wrist, index1, middle1, "
                         "pinky1, ring1, thumb1) in every camera; cannot place the hand")
    uv = kp[c, palm, :2][sel]
    spread2d = (uv - uv.mean(0)).norm(dim=-1).mean()
    rest_palm = rest[palm][sel]
    spread3d = (rest_palm - rest_palm.mean(0)).norm(dim=-1).mean()
    dist = float(Kd[c, 0, 0] * spread3d / spread2d) if spread2d > 1 else typical_distance
    c2w = torch.linalg.inv(Td[c])
    ray = torch.linalg.inv(Kd[c]) @ torch.cat([uv.mean(0), uv.new_ones(1)])
    centre_world = c2w[:3, :3] @ (ray / ray[2] * dist) + c2w[:3, 3]
    Rs = c2w[:3, :3][None] @ _fibonacci_rotations(num_directions, dt, kp.device)  # hypotheses in the world frame
    H = Rs.shape[0]
    t0 = centre_world[None] - (Rs @ rest_palm.mean(0)[:, None])[..., 0]
    x0 = torch.cat([roma.rotmat_to_rotvec(Rs), _transl_for(Rs, t0, j0.expand(H, 3))], dim=1)
    w = conf[c, palm][sel]
    Kc, Tc = Kd[c:c + 1], Td[c:c + 1]
    pidx = torch.as_tensor(palm, device=kp.device)[sel]

    def residual(x: torch.Tensor) -> torch.Tensor:
        j = model(x[:, :3], zero.expand(x.shape[0], 45), x[:, 3:])[:, pidx]
        proj, z = project_to_cameras(j, Kc, Tc)
        r = (proj[:, 0] - uv) * torch.sqrt(w)[:, None]
        behind = torch.relu(0.05 - z[:, 0]) * 1e4
        return torch.cat([r.reshape(x.shape[0], -1), behind], dim=1)

    res = levenberg_marquardt(residual, x0, iterations=15)
    best = int(torch.argmin(torch.nan_to_num(res.cost, nan=float("inf"))))
    return res.x[best, :3], res.x[best, 3:]


def _limits(model: KeypointModel) -> tuple[torch.Tensor, torch.Tensor]:
    lim = torch.as_tensor(model_joint_limits(model.data), dtype=model.v_template.dtype, device=model.v_template.device)
    return lim[..., 0].reshape(45), lim[..., 1].reshape(45)


def _check_frames(keypoints: torch.Tensor, K: torch.Tensor, world_to_cam: torch.Tensor) -> tuple[int, int]:
    if not isinstance(keypoints, torch.Tensor) or keypoints.ndim != 4 or keypoints.shape[2:] != (21, 3):
        shape = tuple(keypoints.shape) if isinstance(keypoints, torch.Tensor) else type(keypoints).__name__
        raise ValueError(f"keypoints: expected (B, C, 21, 3) (u, v, confidence), got {shape}")
    B, C = keypoints.shape[:2]
    if not isinstance(K, torch.Tensor) or tuple(K.shape) != (C, 3, 3):
        raise ValueError(f"K: expected ({C}, 3, 3), got {tuple(K.shape) if isinstance(K, torch.Tensor) else K!r}")
    if not isinstance(world_to_cam, torch.Tensor) or tuple(world_to_cam.shape) != (C, 4, 4):
        raise ValueError(f"world_to_cam: expected ({C}, 4, 4), got "
                         f"{tuple(world_to_cam.shape) if isinstance(world_to_cam, torch.Tensor) else world_to_cam!r}")
    return B, C


def _keypoint_weights(keypoints: torch.Tensor, conf_threshold: float) -> torch.Tensor:
    c = keypoints[..., 2]
    return torch.where(torch.isfinite(keypoints).all(-1) & (c > conf_threshold), c, torch.zeros_like(c))


def _robust_reweight(n_kp: int, kind: str, scale: float, anneal: int):
    """IRLS weights for residual vectors [keypoint (u, v) pairs..., limit residuals...]."""

    def reweight(r: torch.Tensor, it: int) -> torch.Tensor:
        w = torch.ones_like(r)
        if kind == "l2":
            return w
        s = (r[:, : 2 * n_kp].reshape(r.shape[0], n_kp, 2) ** 2).sum(-1)
        sc = scale * (1.0 + 3.0 * max(0.0, 1.0 - it / max(anneal, 1)))
        wk = irls_weight_sq(s, kind, sc)
        w[:, : 2 * n_kp] = wk.repeat_interleave(2, dim=1)
        return w

    return reweight


def fit_hand_to_keypoints(model: KeypointModel, keypoints: torch.Tensor, K: torch.Tensor, world_to_cam: torch.Tensor,
                          depth_at_keypoints: torch.Tensor | None = None, init: tuple[torch.Tensor, ...] | None = None,
                          limit_weight: float = 50.0, conf_threshold: float = 0.1, robust_kind: str = "geman_mcclure",
                          robust_scale: float = 10.0, iterations: int = 40, pose_prior: float = 1e-2) -> HandFit:
    """Per-frame hand fit to the 2D keypoints of all cameras (paper Eq. 11), batched over frames.

    Minimises ``sum_c sum_i h_ci rho(|proj_c(J_i) - K_ci|^2) + nu sum hinge^2 + mu |anat|^2`` over
    the wrist axis-angle, translation and 45 anatomical finger angles of each frame (LM, IRLS
    for ``rho``, annealed over the first half of the iterations). ``mu`` (``pose_prior``,
    pixels^2 / rad^2) is a weak pull towards the flat hand that keeps unobservable DOFs put.

    Args:
        keypoints: (B, C, 21, 3) (u, v, confidence), MANO order; NaN or low confidence: missing.
        K: (C, 3, 3); world_to_cam: (C, 4, 4) (shared by the B frames).
        depth_at_keypoints: (B, C, 21) metres or None (used only for the wrist guess).
        init: optional (global_orient (B, 3), anatomical (B, 45), transl (B, 3)) warm start
            (e.g. the previous frame); None: :func:`initial_wrist_pose` and the flat hand.
        limit_weight: ``nu`` (paper: 50).

    Returns:
        :class:`HandFit`.
    """
    B, C = _check_frames(keypoints, K, world_to_cam)
    dt = model.v_template.dtype
    kp = keypoints.to(dt)
    Kd, Td = K.to(dt), world_to_cam.to(dt)
    if init is None:
        rots, trs = [], []
        for b in range(B):
            d = None if depth_at_keypoints is None else depth_at_keypoints[b]
            r, t = initial_wrist_pose(model, kp[b], Kd, Td, d, conf_threshold)
            rots.append(r)
            trs.append(t)
        x0 = torch.cat([torch.stack(rots), torch.stack(trs), torch.zeros(B, 45, dtype=dt, device=kp.device)], 1)
    else:
        go, an, tr = (torch.as_tensor(v, dtype=dt, device=kp.device) for v in init)
        x0 = torch.cat([go.reshape(B, 3), tr.reshape(B, 3), an.reshape(B, 45)], 1)
    lower, upper = _limits(model)
    conf = _keypoint_weights(kp, conf_threshold)
    target = torch.nan_to_num(kp[..., :2])
    sw = torch.sqrt(conf)
    sqrt_nu = float(limit_weight) ** 0.5
    sqrt_mu = float(pose_prior) ** 0.5

    def residual(x: torch.Tensor) -> torch.Tensor:
        j = model(x[:, :3], x[:, 6:], x[:, 3:6])
        uv, _ = project_to_cameras(j, Kd, Td)
        r = ((uv - target) * sw[..., None]).reshape(x.shape[0], -1)
        a = x[:, 6:]
        hinge = torch.relu(lower - a) + torch.relu(a - upper)
        return torch.cat([r, sqrt_nu * hinge, sqrt_mu * a], dim=1)

    reweight = _robust_reweight(C * 21, robust_kind, robust_scale, iterations // 2)
    res = levenberg_marquardt(residual, x0, iterations=iterations, reweight_fn=reweight,
                              jacobian_fn=lambda y: batch_jacobian(residual, y))
    x = res.x
    with torch.no_grad():
        j = model(x[:, :3], x[:, 6:], x[:, 3:6])
        err = _reprojection_error(j, kp, Kd, Td, conf_threshold)
    return HandFit(global_orient=x[:, :3], anatomical=x[:, 6:], finger_pose=model.finger_pose(x[:, 6:]),
                   transl=x[:, 3:6], joints=j, reprojection_error=err)


def _reprojection_error(joints: torch.Tensor, kp: torch.Tensor, K: torch.Tensor, T: torch.Tensor,
                        conf_threshold: float) -> torch.Tensor:
    res, w = keypoints2d_residuals(joints, kp, K, T, conf_threshold)
    e = res.norm(dim=-1)
    return (w * e).sum((1, 2)) / torch.clamp(w.sum((1, 2)), min=1e-12)


def _replace_transl(fit: HandFit, transl: torch.Tensor) -> HandFit:
    from dataclasses import replace

    return replace(fit, transl=transl, joints=fit.joints + (transl - fit.transl)[:, None])


#: metres between a joint and the skin a depth camera sees in front of it
SKIN_OFFSET = 0.008


def align_depth(joints: torch.Tensor, transl: torch.Tensor, depth_at_keypoints: torch.Tensor,
                world_to_cam: torch.Tensor, valid: torch.Tensor, surface_offset: float = SKIN_OFFSET,
                max_residual: float = 0.03) -> torch.Tensor:
    """Hand translations moved along the viewing ray so the joints sit ``surface_offset`` behind
    the observed depth under their keypoints (one camera; resolves the depth ambiguity of a 2D
    fit). Scaling a point about the camera centre keeps its projection, so the 2D fit is kept.

    Args:
        joints: (B, 21, 3) fitted joints, world. transl: (B, 3) their translations.
        depth_at_keypoints: (B, 21) observed depth at the keypoints, metres (0: unknown).
        world_to_cam: (4, 4). valid: (B, 21) bool keypoints used.
        max_residual: after a first median shift, joints farther than this from the observed
            depth (a keypoint on the object or the background) are left out of a second one.

    Returns:
        (B, 3) new translations (unchanged for frames with fewer than 3 usable keypoints).
    """
    R, t = world_to_cam[:3, :3].to(joints), world_to_cam[:3, 3].to(joints)
    cam = joints @ R.T + t
    d = depth_at_keypoints.to(joints)
    ok = valid & (d > 0) & torch.isfinite(d)
    out = transl.clone()
    for b in range(joints.shape[0]):
        sel = ok[b]
        if int(sel.sum()) < 3:
            continue
        z = cam[b, sel, 2]
        target = d[b, sel] + surface_offset
        delta = torch.median(target - z)
        close = (z + delta - target).abs() < max_residual
        if int(close.sum()) >= 3:
            delta = torch.median((target - z)[close])
        centre = cam[b].mean(0)
        shift_cam = centre * (delta / torch.clamp(centre[2], min=1e-3))
        out[b] = transl[b] + R.T @ shift_cam
    return out


def _attached_cost(model: KeypointModel, rel_rotvec: torch.Tensor, rel_transl: torch.Tensor, anatomical: torch.Tensor,
                   object_rotvec: torch.Tensor, object_transl: torch.Tensor, kp: torch.Tensor, K: torch.Tensor,
                   world_to_cam: torch.Tensor, conf_threshold: float, robust_kind: str, robust_scale: float,
                   depth_at_keypoints: torch.Tensor | None = None, depth_scale: float = 1000.0,
                   surface_offset: float = SKIN_OFFSET, chunk: int = 64) -> torch.Tensor:
    """(N,) robust cost over all T frames of N candidate grasps, each hand rigidly attached to the
    frames' object poses: keypoint reprojection (pixels) plus, where ``depth_at_keypoints`` is
    given, each joint's camera depth against the observed skin depth under its keypoint plus
    ``surface_offset`` (metres times ``depth_scale``: 1 mm counts as 1 pixel by default), both
    confidence-weighted through the robust penalty.

    Args:
        rel_rotvec, rel_transl: (N, 3) grasps (object frame). anatomical: (N, 45).
        object_rotvec, object_transl: (T, 3). kp: (T, C, 21, 3). K: (C, 3, 3); world_to_cam: (C, 4, 4).
        depth_at_keypoints: (T, C, 21) metres, 0 where unknown, or None.

    Returns:
        (N,) pixels^2.
    """
    T_ = object_rotvec.shape[0]
    out = []
    for s in range(0, rel_rotvec.shape[0], chunk):
        r, t, a = rel_rotvec[s:s + chunk], rel_transl[s:s + chunk], anatomical[s:s + chunk]
        n = r.shape[0]
        go, tr = grasp_to_world(r.repeat_interleave(T_, 0), t.repeat_interleave(T_, 0), object_rotvec.repeat(n, 1),
                                object_transl.repeat(n, 1), model.rest_wrist)
        j = model(go, a.repeat_interleave(T_, 0), tr)
        res, w = keypoints2d_residuals(j, kp.repeat(n, 1, 1, 1), K, world_to_cam, conf_threshold)
        c = (w * robust_sq((res ** 2).sum(-1), robust_kind, robust_scale)).sum((1, 2))
        if depth_at_keypoints is not None:
            _, z = project_to_cameras(j, K, world_to_cam)  # (n*T, C, 21)
            d = depth_at_keypoints.repeat(n, 1, 1)
            rd = (z - surface_offset - d) * depth_scale
            c = c + (w * (d > 0) * robust_sq(rd ** 2, robust_kind, robust_scale)).sum((1, 2))
        out.append(c.reshape(n, T_).sum(1))
    return torch.cat(out)


def fit_grasp_to_keypoints(model: KeypointModel, keypoints: torch.Tensor, K: torch.Tensor, world_to_cam: torch.Tensor,
                           object_rotvec: torch.Tensor, object_transl: torch.Tensor,
                           depth_at_keypoints: torch.Tensor | None = None, limit_weight: float = 50.0,
                           conf_threshold: float = 0.1, robust_kind: str = "geman_mcclure", robust_scale: float = 10.0,
                           iterations: int = 30, per_frame_iterations: int = 25, pose_prior: float = 1e-2,
                           starts: int = 3) -> GraspFit:
    """Single-camera grasp initialisation (paper Eq. 12) over T selected frames.

    First a per-frame fit (:func:`fit_hand_to_keypoints`) gives each frame's wrist pose and a
    finger pose; then one finger pose is shared by all frames and refined jointly with the
    per-frame wrist rotations/translations (block Jacobian: shared columns + one 6-column block
    per frame), by one LM batched over ``starts`` starting points: the confidence-weighted mean of
    the per-frame finger poses with each frame's own wrist, and, for the ``starts - 1`` frames
    whose own fit best explains all frames when rigidly attached to the object, that frame's
    finger pose with the wrists its grasp implies in every frame. Candidate grasps relative to
    the object are then, for each start, the weighted chordal mean of its frames' relative poses
    (weights 1 / reprojection error) and each frame's own; the candidate whose attached hand has
    the lowest robust keypoint cost over all frames (:func:`_attached_cost`) wins. Monocular
    per-frame fits often sit in a mirrored minimum (a few pixels of error, 5-9 cm off in 3D) and
    the mean start alone reached different minima for frame subsets differing by one frame; the
    attached-hand score uses the object's motion to tell them apart. Relative poses:
    :func:`~honnotate.annotate.grasp.world_to_grasp`.

    Args:
        keypoints: (T, C, 21, 3) cues (usually C = 1). K: (C, 3, 3); world_to_cam: (C, 4, 4).
        object_rotvec, object_transl: (T, 3) object-to-world poses of those frames.
        depth_at_keypoints: (T, C, 21) observed (skin) depth under the keypoints, metres (0 where
            unknown or not on the hand), or None. Used for the wrist guess and to place each
            frame's hand along the viewing rays (:func:`align_depth`, joints 8 mm behind the skin).

    Returns:
        :class:`GraspFit`.
    """
    T_, C = _check_frames(keypoints, K, world_to_cam)
    if starts < 1:
        raise ValueError(f"starts: expected >= 1, got {starts}")
    for n, x in (("object_rotvec", object_rotvec), ("object_transl", object_transl)):
        if not isinstance(x, torch.Tensor) or tuple(x.shape) != (T_, 3):
            raise ValueError(f"{n}: expected ({T_}, 3), got {tuple(x.shape) if isinstance(x, torch.Tensor) else x!r}")
    dt = model.v_template.dtype
    kp = keypoints.to(dt)
    Kd, Td = K.to(dt), world_to_cam.to(dt)
    first = fit_hand_to_keypoints(model, kp, Kd, Td, depth_at_keypoints, None, limit_weight, conf_threshold,
                                  robust_kind, robust_scale, per_frame_iterations, pose_prior)
    if depth_at_keypoints is not None:
        first = _replace_transl(first, align_depth(first.joints, first.transl, depth_at_keypoints[:, 0].to(dt),
                                                   Td[0], _keypoint_weights(kp, conf_threshold)[:, 0] > 0))
    conf = _keypoint_weights(kp, conf_threshold)
    weight_frame = conf.sum((1, 2))
    shared0 = (weight_frame[:, None] * first.anatomical).sum(0) / torch.clamp(weight_frame.sum(), min=1e-12)
    obj_r, obj_t = object_rotvec.to(dt), object_transl.to(dt)
    depth = depth_at_keypoints.to(dt) if depth_at_keypoints is not None else None
    x0 = torch.cat([shared0, torch.cat([first.global_orient, first.transl], 1).reshape(-1)])[None]
    if starts > 1:  # each frame's own fit, rigidly attached to every frame's object pose
        with torch.no_grad():
            fr_r, fr_t = world_to_grasp(first.global_orient, first.transl, obj_r, obj_t, model.rest_wrist)
            c = _attached_cost(model, fr_r, fr_t, first.anatomical, obj_r, obj_t, kp, Kd, Td, conf_threshold,
                               robust_kind, robust_scale, depth)
            extra = []
            for f in torch.argsort(c)[: starts - 1].tolist():
                go_f, tr_f = grasp_to_world(fr_r[f:f + 1], fr_t[f:f + 1], obj_r, obj_t, model.rest_wrist)
                extra.append(torch.cat([first.anatomical[f], torch.cat([go_f, tr_f], 1).reshape(-1)]))
        x0 = torch.cat([x0, torch.stack(extra)])
    B = x0.shape[0]
    lower, upper = _limits(model)
    target = torch.nan_to_num(kp[..., :2])
    sw = torch.sqrt(conf)
    sqrt_nu = float(limit_weight) ** 0.5
    sqrt_mu = float(pose_prior) ** 0.5

    def frame_residual(xf: torch.Tensor) -> torch.Tensor:
        """(B*T, 51) per-frame [shared anat copy (45), rot, transl] -> (B*T, C*42) keypoint residuals."""
        j = model(xf[:, 45:48], xf[:, :45], xf[:, 48:51])
        uv, _ = project_to_cameras(j, Kd, Td)
        return ((uv.reshape(-1, T_, *uv.shape[1:]) - target) * sw[..., None]).reshape(xf.shape[0], -1)

    def split(x: torch.Tensor) -> torch.Tensor:
        b = x.shape[0]
        return torch.cat([x[:, None, :45].expand(b, T_, 45), x[:, 45:].reshape(b, T_, 6)], 2).reshape(b * T_, 51)

    def residual(x: torch.Tensor) -> torch.Tensor:
        a = x[:, :45]
        hinge = torch.relu(lower - a) + torch.relu(a - upper)
        return torch.cat([frame_residual(split(x)).reshape(x.shape[0], -1), sqrt_nu * hinge, sqrt_mu * a], dim=1)

    def jacobian(x: torch.Tensor) -> torch.Tensor:
        b = x.shape[0]
        Jf = batch_jacobian(frame_residual, split(x)).reshape(b, T_, -1, 51)  # (B, T, R, 51)
        R = Jf.shape[2]
        P = 45 + 6 * T_
        J = x.new_zeros(b, T_ * R + 90, P)
        for t in range(T_):
            J[:, t * R:(t + 1) * R, :45] = Jf[:, t, :, :45]
            J[:, t * R:(t + 1) * R, 45 + 6 * t: 51 + 6 * t] = Jf[:, t, :, 45:]
        a = x[:, :45]
        J[:, T_ * R: T_ * R + 45, :45] = torch.diag_embed(sqrt_nu * (-(a < lower).to(a) + (a > upper).to(a)))
        J[:, T_ * R + 45:, :45] = sqrt_mu * torch.eye(45, dtype=x.dtype, device=x.device)
        return J

    n_kp = T_ * C * 21
    reweight = _robust_reweight(n_kp, robust_kind, robust_scale, 0)
    res = levenberg_marquardt(residual, x0, iterations=iterations, jacobian_fn=jacobian, reweight_fn=reweight)
    xf = split(res.x).reshape(B, T_, 51)
    go, tr = xf[..., 45:48].reshape(-1, 3), xf[..., 48:51].reshape(-1, 3)
    anat = res.x[:, :45]
    with torch.no_grad():
        j = model(go, anat.repeat_interleave(T_, 0), tr)
        if depth is not None:  # the shared fit can slide along the rays again
            tr2 = align_depth(j, tr, depth[:, 0].repeat(B, 1), Td[0], (conf[:, 0] > 0).repeat(B, 1))
            j = j + (tr2 - tr)[:, None]
            tr = tr2
        err = _reprojection_error(j, kp.repeat(B, 1, 1, 1), Kd, Td, conf_threshold).reshape(B, T_)
        rel_r, rel_t = world_to_grasp(go, tr, obj_r.repeat(B, 1), obj_t.repeat(B, 1), model.rest_wrist)
        rel_r, rel_t = rel_r.reshape(B, T_, 3), rel_t.reshape(B, T_, 3)
        # candidate grasps: per start, the weighted mean of its frames' relative poses and each
        # frame's own; the one whose rigidly attached hand fits all frames' keypoints best wins
        w = 1.0 / torch.clamp(err, min=0.5)
        cand_r = torch.cat([torch.stack([mean_rotation(rel_r[b], w[b]) for b in range(B)])[:, None], rel_r], 1)
        cand_t = torch.cat([((w[..., None] * rel_t).sum(1) / w.sum(1, keepdim=True))[:, None], rel_t], 1)
        cost = _attached_cost(model, cand_r.reshape(-1, 3), cand_t.reshape(-1, 3),
                              anat.repeat_interleave(T_ + 1, 0), obj_r, obj_t, kp, Kd, Td, conf_threshold,
                              robust_kind, robust_scale, depth)
    k = int(torch.argmin(cost))
    b = k // (T_ + 1)
    rel_rot, rel_tr = cand_r.reshape(-1, 3)[k], cand_t.reshape(-1, 3)[k]
    sl = slice(b * T_, (b + 1) * T_)
    go, tr, j, err, anat = go[sl], tr[sl], j[sl], err[b], anat[b]
    return GraspFit(rel_rotvec=rel_rot, rel_transl=rel_tr, anatomical=anat, finger_pose=model.finger_pose(anat[None])[0],
                    global_orient=go, transl=tr, joints=j, reprojection_error=err)


def select_grasp_frames(keypoints: np.ndarray, object_rotvec: np.ndarray, mask_fraction: np.ndarray | None = None,
                        count: int = 25, conf_threshold: float = 0.5, min_joints: int = 12,
                        min_mask_fraction: float = 0.01, eligible: np.ndarray | None = None) -> np.ndarray:
    """Frames for the grasp initialisation (reference code's criteria, deterministic choice).

    Eligible frames have more than ``min_joints`` keypoints with confidence > ``conf_threshold``
    and an object mask covering more than ``min_mask_fraction`` of the image; among them
    ``count`` are chosen by farthest-point sampling of the object rotation (geodesic angle),
    starting from the frame with the most confident keypoints.

    Args:
        keypoints: (T, 21, 3) (u, v, confidence) of the camera used. object_rotvec: (T, 3) radians.
        mask_fraction: (T,) object-mask area / image area, or None (not checked).
        eligible: (T,) bool, frames allowed at all (e.g. where the object tracking fits), or None.

    Returns:
        (n,) int64 sorted frame indices, n <= count (empty if no frame is eligible).
    """
    kp = np.asarray(keypoints, dtype=np.float64)
    rv = np.asarray(object_rotvec, dtype=np.float64)
    if kp.ndim != 3 or kp.shape[1:] != (21, 3):
        raise ValueError(f"keypoints: expected (T, 21, 3), got {kp.shape}")
    if rv.shape != (len(kp), 3):
        raise ValueError(f"object_rotvec: expected ({len(kp)}, 3), got {rv.shape}")
    n_conf = (np.nan_to_num(kp[..., 2], nan=0.0) > conf_threshold).sum(1)
    ok = n_conf > min_joints
    if mask_fraction is not None:
        mf = np.asarray(mask_fraction, dtype=np.float64)
        if mf.shape != (len(kp),):
            raise ValueError(f"mask_fraction: expected ({len(kp)},), got {mf.shape}")
        ok &= mf > min_mask_fraction
    if eligible is not None:
        el = np.asarray(eligible, dtype=bool)
        if el.shape != (len(kp),):
            raise ValueError(f"eligible: expected ({len(kp)},), got {el.shape}")
        ok &= el
    idx = np.flatnonzero(ok)
    if len(idx) == 0 or count <= 0:
        return np.zeros(0, dtype=np.int64)
    R = roma.rotvec_to_rotmat(torch.as_tensor(rv[idx])).numpy()
    chosen = [int(np.argmax(n_conf[idx]))]
    dmin = np.full(len(idx), np.inf)
    while len(chosen) < min(count, len(idx)):
        Rc = R[chosen[-1]]
        cos = np.clip((np.einsum("nij,ij->n", R, Rc) - 1) / 2, -1, 1)
        dmin = np.minimum(dmin, np.arccos(cos))
        dmin[chosen] = -1
        chosen.append(int(np.argmax(dmin)))
    return np.sort(idx[chosen]).astype(np.int64)


def fit_shape_to_keypoints(model: KeypointModel, keypoints: torch.Tensor, K: torch.Tensor, world_to_cam: torch.Tensor,
                           init: HandFit, shape_prior: float = 5.0, limit_weight: float = 50.0,
                           conf_threshold: float = 0.1, robust_kind: str = "geman_mcclure", robust_scale: float = 10.0,
                           iterations: int = 20, pose_prior: float = 1e-2) -> torch.Tensor:
    """Subject hand shape from the 2D keypoints of several cameras over M frames.

    One set of betas shared by the M frames and each frame's wrist pose and finger angles are
    fitted jointly (LM, block Jacobian), starting from per-frame fits ``init``; a prior
    ``shape_prior |betas|^2`` (pixels^2) keeps the shape plausible. Needs several cameras (one
    view cannot tell hand size from distance).

    Args:
        keypoints: (M, C, 21, 3) cues. K: (C, 3, 3); world_to_cam: (C, 4, 4).
        init: :class:`HandFit` of the same M frames (with the mean shape).

    Returns:
        (S,) betas (float64).
    """
    M, C = _check_frames(keypoints, K, world_to_cam)
    dt = model.v_template.dtype
    kp = keypoints.to(dt)
    Kd, Td = K.to(dt), world_to_cam.to(dt)
    S = model.shapedirs.shape[2]
    lower, upper = _limits(model)
    conf = _keypoint_weights(kp, conf_threshold)
    target = torch.nan_to_num(kp[..., :2])
    sw = torch.sqrt(conf)
    sqrt_nu, sqrt_mu, sqrt_b = float(limit_weight) ** 0.5, float(pose_prior) ** 0.5, float(shape_prior) ** 0.5
    P = 51  # go 3, transl 3, anat 45

    def frame_residual(xf: torch.Tensor) -> torch.Tensor:
        """(M, S + 51) [betas copy, go, transl, anat] -> (M, C*42 + 90) residuals."""
        b, go, tr, an = xf[:, :S], xf[:, S:S + 3], xf[:, S + 3:S + 6], xf[:, S + 6:]
        j = model(go, an, tr, betas=b)
        uv, _ = project_to_cameras(j, Kd, Td)
        r = ((uv - target) * sw[..., None]).reshape(xf.shape[0], -1)
        hinge = torch.relu(lower - an) + torch.relu(an - upper)
        return torch.cat([r, sqrt_nu * hinge, sqrt_mu * an], 1)

    def split(x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x[0, :S].expand(M, S), x[0, S:].reshape(M, P)], 1)

    def residual(x: torch.Tensor) -> torch.Tensor:
        return torch.cat([frame_residual(split(x)).reshape(1, -1), sqrt_b * x[:, :S]], 1)

    def jacobian(x: torch.Tensor) -> torch.Tensor:
        Jf = batch_jacobian(frame_residual, split(x))  # (M, R, S + 51)
        R = Jf.shape[1]
        J = x.new_zeros(M * R + S, S + P * M)
        for m in range(M):
            J[m * R:(m + 1) * R, :S] = Jf[m, :, :S]
            J[m * R:(m + 1) * R, S + P * m:S + P * (m + 1)] = Jf[m, :, S:]
        J[M * R:, :S] = sqrt_b * torch.eye(S, dtype=x.dtype, device=x.device)
        return J[None]

    b0 = torch.zeros(S, dtype=dt, device=kp.device)
    b0[: model.betas.shape[1]] = model.betas[0].to(dt)
    x0 = torch.cat([b0, torch.cat([init.global_orient.to(dt), init.transl.to(dt), init.anatomical.to(dt)], 1).reshape(-1)])

    def reweight(r: torch.Tensor, it: int) -> torch.Tensor:
        w = torch.ones_like(r)
        if robust_kind == "l2":
            return w
        R = C * 42 + 90
        body = r[:, : M * R].reshape(M, R)[:, : C * 42].reshape(M, C * 21, 2)
        wk = irls_weight_sq((body ** 2).sum(-1), robust_kind, robust_scale)
        wf = torch.ones(M, R, dtype=r.dtype, device=r.device)
        wf[:, : C * 42] = wk.repeat_interleave(2, dim=1)
        w[:, : M * R] = wf.reshape(1, -1)
        return w

    res = levenberg_marquardt(residual, x0[None], iterations=iterations, jacobian_fn=jacobian, reweight_fn=reweight)
    return res.x[0, :S].detach()
