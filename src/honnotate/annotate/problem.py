"""The annotation energy over a window of frames, and Adam over its parameters.

:class:`SequenceState` holds the current estimate of every frame (world frame, float64 numpy,
checkpointable). :class:`AnnotationProblem` evaluates all terms of paper Eq. 1 for a window
of frames and all cameras: it poses the hand (MANO-format LBS) and the object, renders their
labelled silhouettes and depth at a stage's resolution, and compares them with the cues
(:mod:`honnotate.annotate.terms`, :mod:`honnotate.annotate.correspondence`).
:func:`optimize_window` runs Adam on a window with a chosen parametrisation:

- object pose per frame (free or fixed); rotations as a left update ``R = exp(d) R0``;
- hand wrist pose in the world frame per frame, or relative to the object (the grasp of the
  single-camera stages, :mod:`honnotate.annotate.grasp`), per frame or shared by the window;
- finger angles (anatomical, flat-hand-mean) per frame or shared, optionally frozen for the
  first steps; hand shape (betas) shared, optionally free.

Everything is device-agnostic (the problem's device), float32 inside the optimisation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import roma
import torch

from honnotate.annotate.correspondence import ObjectSurfaceQuery, SurfaceCorrespondences
from honnotate.annotate.grasp import grasp_to_world, mean_rotation, world_to_grasp
from honnotate.annotate.observations import Observations
from honnotate.annotate.robust import robust_sq
from honnotate.annotate.terms import (
    acceleration_energy,
    depth_energy,
    keypoints2d_energy,
    mask_energy,
    mask_targets,
    occlusion_energy,
    velocity_energy,
)
from honnotate.annotate.weights import TermSettings, TermWeights, total_energy
from honnotate.geometry.mesh import farthest_vertex_subset
from honnotate.models.hand import HandModel
from honnotate.models.limits import limit_energy, model_joint_limits
from honnotate.render.renderer import HAND_LABEL, OBJECT_LABEL, Renderer, SceneMesh

__all__ = ["SequenceState", "AnnotationProblem", "WindowSpec", "optimize_window"]


@dataclass
class SequenceState:
    """Current estimate of T frames (world frame = the capture's world, OpenCV; float64).

    obj_rotvec, obj_transl: (T, 3) object-to-world axis-angle (radians) and translation (m);
    hand_go, hand_transl: (T, 3) MANO global_orient (about the rest wrist) and transl (m);
    hand_anat: (T, 45) finger angles in the joints' anatomical frames (flat-hand-mean; MANO:
    its own axes); betas: (S,) hand shape.
    """

    obj_rotvec: np.ndarray
    obj_transl: np.ndarray
    hand_go: np.ndarray
    hand_transl: np.ndarray
    hand_anat: np.ndarray
    betas: np.ndarray

    KEYS = ("obj_rotvec", "obj_transl", "hand_go", "hand_transl", "hand_anat", "betas")

    @classmethod
    def zeros(cls, T: int, num_betas: int) -> SequenceState:
        z = np.zeros((T, 3))
        return cls(z.copy(), z.copy(), z.copy(), z.copy(), np.zeros((T, 45)), np.zeros(num_betas))

    def copy(self) -> SequenceState:
        return SequenceState(*(np.array(getattr(self, k), dtype=np.float64, copy=True) for k in self.KEYS))

    def arrays(self) -> dict[str, np.ndarray]:
        return {k: getattr(self, k) for k in self.KEYS}

    @classmethod
    def from_arrays(cls, arrays) -> SequenceState:
        missing = [k for k in cls.KEYS if k not in arrays]
        if missing:
            raise ValueError(f"state: missing arrays {missing}")
        return cls(*(np.array(arrays[k], dtype=np.float64) for k in cls.KEYS))


@dataclass(frozen=True)
class WindowSpec:
    """How :func:`optimize_window` parametrises a window.

    object_free: optimise the object pose of each frame.
    hand: "world" (wrist pose per frame in the world frame), "grasp" (relative to the object)
        or "none" (no hand: object-only stage; hand pixels are ignored).
    rigid_free / share_rigid: optimise the wrist pose; one pose shared by the window (grasp).
    fingers_free / share_fingers: optimise finger angles; one set shared by the window.
    finger_delay: steps before the fingers start moving.
    betas_free: optimise the (shared) hand shape.
    """

    object_free: bool = True
    hand: str = "world"
    rigid_free: bool = True
    share_rigid: bool = False
    fingers_free: bool = True
    share_fingers: bool = False
    finger_delay: int = 0
    betas_free: bool = False

    def __post_init__(self) -> None:
        if self.hand not in ("world", "grasp", "none"):
            raise ValueError(f"WindowSpec.hand: expected 'world', 'grasp' or 'none', got {self.hand!r}")


class AnnotationProblem:
    """The energy of paper Eq. 1 for windows of frames of one capture.

    Args:
        hand: the hand model (its dtype/device are used; float32 recommended).
        object_vertices: (V_o, 3) object-frame mesh vertices, metres; object_faces: (F_o, 3).
        observations: :class:`Observations` of the capture.
        settings: :class:`TermSettings`.
    """

    def __init__(self, hand: HandModel, object_vertices, object_faces, observations: Observations,
                 settings: TermSettings | None = None) -> None:
        self.hand = hand
        self.device = hand.v_template.device
        self.dtype = hand.v_template.dtype
        dd = {"device": self.device, "dtype": self.dtype}
        self.obs = observations
        self.settings = settings = settings if settings is not None else TermSettings()
        self.renderer = Renderer(background_depth=2.0)
        self.hand_faces = torch.as_tensor(np.asarray(hand.faces, dtype=np.int64), device=self.device)
        self.object_vertices_np = ov = np.asarray(object_vertices, dtype=np.float64)
        self.object_faces_np = of = np.asarray(object_faces, dtype=np.int64)
        self.object_vertices = torch.as_tensor(ov, **dd)
        self.object_faces = torch.as_tensor(of, device=self.device)
        self.object_query = ObjectSurfaceQuery(ov, of)
        self.cameras = [c.to(self.device) for c in observations.cameras]
        self.K = torch.stack([c.K for c in self.cameras]).to(**dd)
        self.world_to_cam = torch.stack([c.world_to_cam() for c in self.cameras]).to(**dd)
        self.keypoints = observations.keypoints.to(**dd)
        self.clouds = {k: (p.to(**dd), m.to(self.device)) for k, (p, m) in observations.clouds.items()}
        lim = torch.as_tensor(model_joint_limits(hand.data), **dd)
        self.limit_lo, self.limit_hi = lim[..., 0].reshape(45), lim[..., 1].reshape(45)
        with torch.no_grad():
            rest = hand(torch.zeros(1, 3, **dd), torch.zeros(1, 45, **dd)).vertices[0].cpu().numpy()
        self.phy_ids = torch.as_tensor(farthest_vertex_subset(rest, settings.phy_num_vertices), device=self.device)
        self._maps: dict[float, tuple[torch.Tensor, torch.Tensor]] = {}
        self._mask_targets: tuple | None = None  # (key, mask_targets(...)) of the last window

    # -- data at a resolution -----------------------------------------------------------------
    def maps(self, scale: float) -> tuple[torch.Tensor, torch.Tensor]:
        """(segmentation (T, C, h, w), depth (T, C, h, w)) at ``scale``, cached on the device."""
        key = round(float(scale), 6)
        if key not in self._maps:
            seg, dep = self.obs.maps_at(scale)
            self._maps = {k: v for k, v in self._maps.items() if k == round(self.obs.scale, 6)}
            self._maps[key] = (seg.to(self.device), dep.to(self.device, self.dtype))
        return self._maps[key]

    def rest_wrist(self, betas: torch.Tensor) -> torch.Tensor:
        """(3,) rest wrist joint J0 of the shaped hand (differentiable in ``betas`` (1, S))."""
        S = betas.shape[1]
        j0 = self.hand.j_regressor[0] @ self.hand.v_template
        if S == 0:
            return j0
        return j0 + torch.einsum("v,vcs,s->c", self.hand.j_regressor[0], self.hand.shapedirs[..., :S], betas[0])

    def pose_hand(self, go: torch.Tensor, anat: torch.Tensor, transl: torch.Tensor, betas: torch.Tensor):
        """:class:`HandOutput` of (B, 3) wrist axis-angle, (B, 45) anatomical angles, (B, 3)
        translation and (1, S) betas."""
        B = go.shape[0]
        pose = self.hand.anatomical_to_pose(anat.reshape(B, 15, 3))
        return self.hand(go, pose, betas.expand(B, -1) if betas.shape[1] else None, transl)

    def pose_object(self, R: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """(B, V_o, 3) world vertices of (B, 3, 3) rotations and (B, 3) translations."""
        return torch.einsum("bij,vj->bvi", R, self.object_vertices) + t[:, None]

    # -- the energy -----------------------------------------------------------------------------
    def energy(self, frames: np.ndarray, R_o: torch.Tensor, t_o: torch.Tensor, hand_go: torch.Tensor | None,
               hand_anat: torch.Tensor | None, hand_transl: torch.Tensor | None, betas: torch.Tensor,
               weights: TermWeights, scale: float, hand_corr: SurfaceCorrespondences | None = None,
               object_only: bool = False) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """All terms with non-zero weight for the B frames ``frames`` (indices into the observations).

        Args:
            R_o, t_o: (B, 3, 3), (B, 3) object-to-world poses.
            hand_go, hand_anat, hand_transl: (B, 3), (B, 45), (B, 3), or None with ``object_only``.
            betas: (1, S). weights: :class:`TermWeights`. scale: render resolution fraction.
            hand_corr: E_3D hand correspondences (kept across calls within a window).
            object_only: no hand in the scene; hand-labelled pixels are ignored.

        Returns:
            ``(total, per_frame)`` as :func:`~honnotate.annotate.weights.total_energy`.
        """
        st = self.settings
        idx = torch.as_tensor(np.asarray(frames, dtype=np.int64), device=self.device)
        B = len(frames)
        terms: dict[str, torch.Tensor] = {}
        obj_v = self.pose_object(R_o, t_o)
        hand_out = None
        if not object_only:
            hand_out = self.pose_hand(hand_go, hand_anat, hand_transl, betas)
        need_render = weights.mask > 0 or weights.depth > 0
        if need_render:
            seg_all, dep_all = self.maps(scale)
            seg, dep = seg_all[idx], dep_all[idx]
            w, h = self.obs.size_at(scale)
            meshes = [SceneMesh(obj_v, self.object_faces, OBJECT_LABEL)]
            if hand_out is not None:
                meshes.append(SceneMesh(hand_out.vertices, self.hand_faces, HAND_LABEL))
            out = self.renderer.render(meshes, self.cameras, width=w, height=h, depth=weights.depth > 0,
                                       silhouettes=weights.mask > 0)
            valid = self.obs.seg_valid.to(self.device)[idx][..., None, None].expand(B, len(self.cameras), h, w)
            if object_only:
                valid = valid & (seg != HAND_LABEL)
            if weights.mask > 0:
                labels = (OBJECT_LABEL,) if object_only else (OBJECT_LABEL, HAND_LABEL)
                # the cue side is fixed for a window: computed once per window, not per step
                key = (float(scale), tuple(int(f) for f in frames), object_only, labels, st.pyramid_levels,
                       out.silhouettes.dtype)
                if self._mask_targets is None or self._mask_targets[0] != key:
                    self._mask_targets = (key, mask_targets(seg, valid, labels, st.pyramid_levels,
                                                            out.silhouettes.dtype, out.silhouettes.device))
                terms["mask"] = mask_energy(out.silhouettes, seg, valid, labels, st.pyramid_levels,
                                            targets=self._mask_targets[1])
            if weights.depth > 0:
                region = valid & ((seg > 0) | (out.labels > 0))
                if object_only:
                    region = region & ((seg == OBJECT_LABEL) | (out.labels == OBJECT_LABEL))
                terms["depth"] = depth_energy(out.depth, dep, region, st.depth_kind, st.depth_threshold,
                                              st.max_depth, 0)
                if object_only:  # the unseen hand hides the object: behind the hand's depth, not in front
                    hidden = self.obs.seg_valid.to(self.device)[idx][..., None, None] & (seg == HAND_LABEL) & \
                        (out.labels == OBJECT_LABEL)
                    terms["depth"] = terms["depth"] + occlusion_energy(out.depth, dep, hidden, st.depth_kind,
                                                                       st.depth_threshold, st.max_depth)
        if hand_out is not None and weights.keypoints2d > 0:
            terms["keypoints2d"] = keypoints2d_energy(hand_out.joints, self.keypoints[idx], self.K, self.world_to_cam,
                                                      st.keypoint_kind, st.keypoint_scale, st.keypoint_conf_threshold)
        if hand_out is not None and weights.points3d_hand > 0:
            pts, ok = self.clouds[HAND_LABEL]
            corr = hand_corr or SurfaceCorrespondences(self.hand_faces.cpu().numpy(), st.points3d_refresh,
                                                       st.points3d_gate)
            terms["points3d_hand"] = corr(hand_out.vertices, pts[idx], ok[idx])
        if weights.points3d_object > 0:
            pts, ok = self.clouds[OBJECT_LABEL]
            terms["points3d_object"] = self._object_points_energy(R_o, t_o, pts[idx], ok[idx])
        if hand_out is not None and weights.joint_limits > 0:
            terms["joint_limits"] = limit_energy(hand_anat, self.limit_lo, self.limit_hi, kind=st.limit_kind)
        if hand_out is not None and weights.interpenetration > 0:
            pts = hand_out.joints if st.phy_mode == "joints" else hand_out.vertices[:, self.phy_ids]
            terms["interpenetration"] = self._interpenetration(pts, R_o, t_o)
        if B >= 2 and hand_out is not None:
            # rotations enter the temporal terms through their frame-to-frame increments
            # log(R_t R_{t-1}^T), continuous everywhere (a rotation vector jumps near pi)
            w_o = _angular_steps(R_o)
            if weights.temporal > 0:
                R_h = roma.rotvec_to_rotmat(hand_go)
                terms["temporal"] = _increment_energy(torch.cat([_angular_steps(R_h), _diff(hand_anat),
                                                                 _diff(hand_transl)], 1)) + \
                    _increment_energy(torch.cat([w_o, _diff(t_o)], 1))
            if weights.hand_accel > 0:
                terms["hand_accel"] = acceleration_energy(hand_anat)
            if weights.object_rot_accel > 0:
                terms["object_rot_accel"] = torch.cat([w_o.new_zeros(1), velocity_energy(w_o[1:])])
            if weights.object_trans_vel > 0:
                terms["object_trans_vel"] = velocity_energy(t_o)
        return total_energy(terms, weights)

    def _object_points_energy(self, R: torch.Tensor, t: torch.Tensor, points: torch.Tensor,
                              valid: torch.Tensor) -> torch.Tensor:
        """E_3D of the object: observed points in the object frame against their closest surface
        points (re-found at every call on the fixed object mesh; gated), mean squared distance."""
        p_o = torch.einsum("bji,bnj->bni", R, points - t[:, None])
        closest, _, found = self.object_query(p_o, max_dist=self.settings.points3d_gate)
        w = found * valid.to(p_o)
        e = (w * robust_sq(((p_o - closest) ** 2).sum(-1), "l2", 1.0)).sum(-1)
        return e / torch.clamp(w.sum(-1), min=1.0)

    def _interpenetration(self, points: torch.Tensor, R: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """E_phy of (B, M, 3) world hand points against the object (object frame, differentiable in
        both poses; correspondences re-found at every call)."""
        from honnotate.annotate.terms import interpenetration_energy

        p_o = torch.einsum("bji,bnj->bni", R, points - t[:, None])
        closest, normals, found = self.object_query(p_o, max_dist=0.05)
        exp, margin = self.settings.phy_parameters
        return interpenetration_energy(p_o, closest, normals, exp, margin, found)


def _angular_steps(R: torch.Tensor) -> torch.Tensor:
    """(B, 3): 0 for frame 0, then log(R_t R_{t-1}^T) (axis-angle of each frame-to-frame rotation)."""
    w = roma.rotmat_to_rotvec(R[1:] @ R[:-1].transpose(-1, -2))
    return torch.cat([w.new_zeros(1, 3), w])


def _diff(x: torch.Tensor) -> torch.Tensor:
    """(B, D): 0 for frame 0, then x_t - x_{t-1}."""
    return torch.cat([x.new_zeros(1, x.shape[1]), x[1:] - x[:-1]])


def _increment_energy(d: torch.Tensor) -> torch.Tensor:
    """Paper E_tc on increments d_t (B, D), d_0 = 0: |d_t|^2 + |d_t - d_{t-1}|^2 per frame
    (the acceleration part from frame 2 on)."""
    e = (d * d).sum(-1)
    a = torch.cat([d.new_zeros(2), ((d[2:] - d[1:-1]) ** 2).sum(-1)]) if d.shape[0] > 2 else torch.zeros_like(e)
    return e + a


def _lr_lambda(steps: int, final_fraction: float):
    def f(i: int) -> float:
        if steps <= 1:
            return 1.0
        return 1.0 + (final_fraction - 1.0) * min(i, steps - 1) / (steps - 1)

    return f


def optimize_window(problem: AnnotationProblem, frames, state: SequenceState, steps: int, weights: TermWeights,
                    scale: float, spec: WindowSpec = WindowSpec(), lr: float = 0.01, lr_translation: float = 0.001,
                    lr_final_fraction: float = 0.1, beta1: float = 0.5) -> dict[str, np.ndarray]:
    """Adam on the energy of the frames ``frames`` (indices, in order); updates ``state`` in place.

    Args:
        problem: the :class:`AnnotationProblem`.
        frames: (B,) frame indices (consecutive for the temporal terms).
        state: :class:`SequenceState` (initial values; the result is written back).
        steps: Adam steps (0: only evaluate). weights, scale: the stage's weights and resolution.
        spec: :class:`WindowSpec`. lr, lr_translation, lr_final_fraction, beta1: see
            :class:`~honnotate.annotate.config.StageConfig`.

    Returns:
        term name -> (B,) weighted per-frame values at the last evaluation (plus "total").
    """
    frames = np.asarray(frames, dtype=np.int64)
    dd = {"device": problem.device, "dtype": problem.dtype}
    B = len(frames)

    def T(x):
        return torch.as_tensor(np.asarray(x), **dd)

    R0_o = roma.rotvec_to_rotmat(T(state.obj_rotvec[frames]))
    t0_o = T(state.obj_transl[frames])
    betas0 = T(state.betas)[None]
    d_o = torch.zeros(B, 3, **dd, requires_grad=spec.object_free)
    t_o = t0_o.clone().requires_grad_(spec.object_free)
    betas = betas0.clone().requires_grad_(spec.betas_free and spec.hand != "none")
    groups_rot, groups_tr = [], []
    if spec.object_free:
        groups_rot.append(d_o)
        groups_tr.append(t_o)
    hand = spec.hand != "none"
    if hand:
        go_w, tr_w = T(state.hand_go[frames]), T(state.hand_transl[frames])
        anat0 = T(state.hand_anat[frames])
        if spec.hand == "grasp":
            rel_r, rel_t = world_to_grasp(go_w, tr_w, roma.rotmat_to_rotvec(R0_o), t0_o, problem.rest_wrist(betas0))
            if spec.share_rigid:
                rel_r, rel_t = mean_rotation(rel_r)[None], rel_t.mean(0, keepdim=True)
            R0_h, t0_h = roma.rotvec_to_rotmat(rel_r), rel_t
        else:
            R0_h, t0_h = roma.rotvec_to_rotmat(go_w), tr_w
        nh = R0_h.shape[0]
        d_h = torch.zeros(nh, 3, **dd, requires_grad=spec.rigid_free)
        t_h = t0_h.clone().requires_grad_(spec.rigid_free)
        if spec.share_fingers:
            anat0 = anat0.mean(0, keepdim=True)
        anat = anat0.clone().requires_grad_(spec.fingers_free)
        if spec.rigid_free:
            groups_rot.append(d_h)
            groups_tr.append(t_h)
        if spec.fingers_free:
            groups_rot.append(anat)
        if betas.requires_grad:
            groups_rot.append(betas)

    def current():
        R_o = roma.rotvec_to_rotmat(d_o) @ R0_o
        if not hand:
            return R_o, t_o, None, None, None
        R_h = roma.rotvec_to_rotmat(d_h) @ R0_h
        if spec.hand == "grasp":
            go, tr = grasp_to_world(roma.rotmat_to_rotvec(R_h), t_h, roma.rotmat_to_rotvec(R_o), t_o,
                                    problem.rest_wrist(betas))
        else:
            go, tr = roma.rotmat_to_rotvec(R_h), t_h
        return R_o, t_o, go, anat.expand(B, 45), tr

    corr = None
    if hand and weights.points3d_hand > 0:
        st = problem.settings
        corr = SurfaceCorrespondences(problem.hand_faces.cpu().numpy(), st.points3d_refresh, st.points3d_gate)
    params = [{"params": groups_rot, "lr": lr}, {"params": groups_tr, "lr": lr_translation}]
    params = [g for g in params if g["params"]]
    opt = torch.optim.Adam(params, betas=(beta1, 0.999)) if params and steps > 0 else None
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _lr_lambda(steps, lr_final_fraction)) if opt else None
    per_frame: dict[str, torch.Tensor] = {}
    n_eval = max(steps, 1) if opt else 1
    for i in range(n_eval):
        R_o, t_cur, go, an, tr = current()
        total, per_frame = problem.energy(frames, R_o, t_cur, go, an, tr, betas, weights, scale, corr,
                                          object_only=not hand)
        per_frame = {k: v.detach() for k, v in per_frame.items()}
        per_frame["total"] = sum(per_frame.values())
        if opt is None:
            break
        opt.zero_grad(set_to_none=True)
        total.backward()
        if hand and spec.fingers_free and i < spec.finger_delay:
            anat.grad = None
        opt.step()
        sched.step()
    with torch.no_grad():
        R_o, t_cur, go, an, tr = current()
        state.obj_rotvec[frames] = roma.rotmat_to_rotvec(R_o).double().cpu().numpy()
        state.obj_transl[frames] = t_cur.double().cpu().numpy()
        if hand:
            state.hand_go[frames] = go.double().cpu().numpy()
            state.hand_transl[frames] = tr.double().cpu().numpy()
            state.hand_anat[frames] = an.double().cpu().numpy()
            state.betas[:] = betas[0].double().cpu().numpy()
    return {k: v.double().cpu().numpy() for k, v in per_frame.items()}
