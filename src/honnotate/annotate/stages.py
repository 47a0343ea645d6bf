"""The stages of the single- and multi-camera pipelines (paper Sec. 4), as library functions.

Each stage takes the :class:`~honnotate.annotate.problem.AnnotationProblem`, the current
:class:`~honnotate.annotate.problem.SequenceState` and its config, updates the state and
returns per-frame residuals. Per-frame and per-batch stages take a ``start`` position and an
``on_step(position, residuals)`` callback so that the pipeline can checkpoint and resume them
exactly (every unit of work depends only on the state saved before it).

Order of the per-frame stages: from the start frame ``t0`` (where the object was found)
forwards to the last frame, then backwards from ``t0 - 1`` to the first frame, each frame warm
started from its already-processed neighbour.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import roma
import torch

from honnotate.annotate.config import AnnotateConfig, StageConfig
from honnotate.annotate.grasp import grasp_to_world, world_to_grasp
from honnotate.annotate.init_hand import (
    PALM_JOINTS,
    KeypointModel,
    fit_grasp_to_keypoints,
    fit_hand_to_keypoints,
    fit_shape_to_keypoints,
    select_grasp_frames,
)
from honnotate.annotate.init_object import object_pose_candidates, refine_object_pose_icp
from honnotate.annotate.observations import flag_bit
from honnotate.annotate.problem import AnnotationProblem, SequenceState, WindowSpec, optimize_window
from honnotate.render.renderer import HAND_LABEL, OBJECT_LABEL

__all__ = [
    "tracking_order",
    "batch_windows",
    "init_object_first_frame",
    "track_objects",
    "init_hands_multi",
    "init_hands_single",
    "object_fit_gate",
    "refine_grasp",
    "track_frames",
    "refine_batches",
]

#: frames per batched LM call of the multi-camera hand initialisation (one checkpoint unit)
HAND_INIT_CHUNK = 20

OnStep = Callable[[int, dict[str, np.ndarray]], None] | None


def _run(problem: AnnotationProblem, frames, state: SequenceState, stage: StageConfig, spec: WindowSpec,
         steps: int | None = None) -> dict[str, np.ndarray]:
    return optimize_window(problem, frames, state, stage.steps if steps is None else steps, stage.term_weights(),
                           stage.scale, spec, stage.lr, stage.lr_translation, stage.lr_final_fraction, stage.beta1)


def tracking_order(T: int, t0: int) -> list[int]:
    """Frames in processing order: t0..T-1 then t0-1..0."""
    return list(range(t0, T)) + list(range(t0 - 1, -1, -1))


def batch_windows(T: int, size: int, overlap: int) -> list[np.ndarray]:
    """Consecutive windows of ``size`` frames covering 0..T-1, neighbours sharing ``overlap``."""
    size = max(1, min(size, T))
    stride = max(1, size - min(overlap, size - 1))
    starts = list(range(0, max(T - size, 0) + 1, stride))
    if starts[-1] + size < T:
        starts.append(T - size)
    return [np.arange(s, s + size) for s in starts]


# -- object ------------------------------------------------------------------------------------

def _best_object_camera(problem: AnnotationProblem, t: int) -> int:
    return int(np.argmax(problem.obs.mask_fraction[t]))


def init_object_first_frame(problem: AnnotationProblem, state: SequenceState, config: AnnotateConfig,
                            object_stage: StageConfig, meta_pose=None) -> dict:
    """First-frame object pose: ``meta_pose`` (rotvec, transl) when given, else ICP hypotheses on
    the fused object cloud scored by the rendered energy after a short refinement.

    Writes the pose of the start frame into ``state`` and returns
    ``{"frame": t0, "source": ..., "candidates": [(energy, rotvec, transl), ...]}``.
    """
    obs = problem.obs
    oc = config.object_init
    pts, ok = problem.clouds[OBJECT_LABEL]
    counts = ok.sum(1).cpu().numpy()
    stage = object_stage.model_copy(update={"scale": oc.scale, "lr": 0.01, "lr_translation": 0.002})
    if meta_pose is not None:
        t0 = 0
        rv, tr = np.asarray(meta_pose[0], dtype=np.float64), np.asarray(meta_pose[1], dtype=np.float64)
        if counts[t0] >= 10:  # ICP from the rough pose, then the rendered energy
            a = refine_object_pose_icp(problem.object_vertices_np, problem.object_faces_np,
                                       pts[t0][ok[t0]].double().cpu().numpy(), rv, tr, gate=0.03,
                                       query=problem.object_query.query)
            rv, tr = a.rotvec, a.transl
        state.obj_rotvec[t0], state.obj_transl[t0] = rv, tr
        _run(problem, [t0], state, stage, WindowSpec(hand="none"), steps=oc.steps)
        return {"frame": t0, "source": "meta.yaml", "candidates": []}
    eligible = np.flatnonzero(counts >= min(oc.min_points, config.cloud_points))
    if len(eligible) == 0:
        best = int(np.argmax(counts))
        if counts[best] < 10:
            raise ValueError(f"{problem.obs.frame_ids}: no frame has object points (segmentation label 1 with "
                             "depth); cannot place the object. Check the segmentation cues or give "
                             "object_rotvec_init / object_trans_init in meta.yaml")
        eligible = np.array([best])
    t0 = int(eligible[0])
    c = _best_object_camera(problem, t0)
    cam = obs.cameras[c]
    w, h = obs.size_at(obs.scale)
    depth = obs.depth[t0, c].double().numpy()
    cloud = pts[t0][ok[t0]].double().cpu().numpy()
    cands = object_pose_candidates(problem.object_vertices_np, problem.object_faces_np, cloud, cam.world_to_cam().double().numpy(),
                                   cam.rescaled(w, h).K.double().numpy(), depth, num_directions=oc.directions,
                                   num_inplane=oc.inplane, keep=4 * max(oc.candidates, 1), anchors=oc.anchors,
                                   labels=obs.segmentation[t0, c].numpy(), max_depth=config.terms.max_depth)
    scored = []
    for cand in _distinct(cands, oc.candidates):
        trial = state.copy()
        trial.obj_rotvec[t0], trial.obj_transl[t0] = cand.rotvec, cand.transl
        r = _run(problem, [t0], trial, stage, WindowSpec(hand="none"), steps=oc.steps)
        scored.append((float(r["total"][0]), trial.obj_rotvec[t0].copy(), trial.obj_transl[t0].copy()))
    scored.sort(key=lambda x: x[0])
    close = [s for s in scored if s[0] <= scored[0][0] * (1.0 + oc.ambiguity)][: oc.verify_hypotheses]
    verified, winner = _verify_hypotheses(problem, state, t0, close, stage, oc) if len(close) > 1 else ([], -1)
    best = close[winner] if winner >= 0 else scored[0]
    state.obj_rotvec[t0], state.obj_transl[t0] = best[1], best[2]
    return {"frame": t0, "source": "depth", "candidates": [(e, r.tolist(), t.tolist()) for e, r, t in scored],
            "verified": [float(v) for v in verified], "winner": winner}


def _verify_hypotheses(problem: AnnotationProblem, state: SequenceState, t0: int, hypotheses: list,
                       stage: StageConfig, oc) -> tuple[list[float], int]:
    """Track each start-frame hypothesis ``(energy, rotvec, transl)`` from ``t0`` over the
    ``oc.verify_frames`` frames after it (:func:`track_objects`, ``oc.verify_steps`` steps per
    frame), all in lockstep, ``oc.verify_chunk`` frames at a time; after ``oc.verify_min_frames``
    frames a hypothesis whose mean per-frame energy exceeds ``1 + oc.verify_margin`` times the
    lowest is dropped, and tracking stops once one is left (the wrong pose of a turning object
    stops fitting within a few dozen frames: no need to track it, or the winner, further).

    Returns:
        ``(means, winner)``: the mean energy of each hypothesis over the frames it was tracked
        (frames without an object are not scored; NaN when none) and the index of the winner,
        or ``([], -1)`` when no frame could be scored.
    """
    quick = stage.model_copy(update={"steps": oc.verify_steps})
    n = min(1 + oc.verify_frames, problem.obs.num_frames)
    trials, energies = [], []
    for _, rv, tr in hypotheses:
        trial = state.copy()
        trial.obj_rotvec[t0], trial.obj_transl[t0] = rv, tr
        trials.append(trial)
        energies.append([])
    alive = list(range(len(hypotheses)))
    pos = 0
    while pos < n and len(alive) > 1:
        stop = min(n, pos + oc.verify_chunk)
        for i in alive:
            track_objects(problem, trials[i], quick, t0, start=pos, stop=stop,
                          on_step=lambda _pos, r, out=energies[i]: out.extend(float(e) for e in r.get("total", [])))
        pos = stop
        if pos >= oc.verify_min_frames and all(energies[i] for i in alive):
            best = min(float(np.mean(energies[i])) for i in alive)
            alive = [i for i in alive if float(np.mean(energies[i])) <= best * (1.0 + oc.verify_margin)]
    means = [float(np.mean(e)) if e else float("nan") for e in energies]
    if any(np.isnan(means[i]) for i in alive):
        return [], -1
    return means, min(alive, key=lambda i: means[i])


def _distinct(cands, count: int, min_dist: float = 0.01, min_angle: float = 0.2) -> list:
    """The first ``count`` candidates that differ from every earlier kept one by more than
    ``min_dist`` metres or ``min_angle`` radians."""
    kept = []
    for c in cands:
        R = roma.rotvec_to_rotmat(torch.as_tensor(c.rotvec)).numpy()
        dup = False
        for k in kept:
            Rk = roma.rotvec_to_rotmat(torch.as_tensor(k.rotvec)).numpy()
            ang = np.arccos(np.clip((np.trace(R.T @ Rk) - 1) / 2, -1, 1))
            if np.linalg.norm(c.transl - k.transl) < min_dist and ang < min_angle:
                dup = True
                break
        if not dup:
            kept.append(c)
        if len(kept) == count:
            break
    return kept


def _warm_start_object(state: SequenceState, t: int, prev: int, problem: AnnotationProblem | None = None) -> None:
    """Frame t's object pose from frame ``prev``'s, followed by point-to-plane ICP on frame t's
    object cloud when it has enough points (follows fast motion the few Adam steps cannot)."""
    state.obj_rotvec[t] = state.obj_rotvec[prev]
    state.obj_transl[t] = state.obj_transl[prev]
    if problem is None:
        return
    pts, ok = problem.clouds[OBJECT_LABEL]
    if int(ok[t].sum()) < 50:
        return
    a = refine_object_pose_icp(problem.object_vertices_np, problem.object_faces_np,
                               pts[t][ok[t]].double().cpu().numpy(), state.obj_rotvec[t], state.obj_transl[t],
                               iterations=10, gate=0.03, query=problem.object_query.query)
    if a.inlier_fraction > 0.5:
        state.obj_rotvec[t], state.obj_transl[t] = a.rotvec, a.transl


def _has_object(problem: AnnotationProblem, t: int) -> bool:
    return not problem.obs.flags[t] & flag_bit("empty_object_mask")


def track_objects(problem: AnnotationProblem, state: SequenceState, stage: StageConfig, t0: int, start: int = 0,
                  on_step: OnStep = None, stop: int | None = None) -> None:
    """Object-only tracking (reference stage 1): each frame from its neighbour's pose, hand
    pixels ignored. ``start`` / ``stop``: positions in :func:`tracking_order` to resume from /
    to end before (None: all frames)."""
    order = tracking_order(problem.obs.num_frames, t0)[:stop]
    for pos in range(start, len(order)):
        t = order[pos]
        if t != t0:
            _warm_start_object(state, t, t - 1 if t > t0 else t + 1, problem)
        r = _run(problem, [t], state, stage, WindowSpec(hand="none")) if _has_object(problem, t) else {}
        if on_step is not None:
            on_step(pos, r)


# -- hand initialisation --------------------------------------------------------------------------

def _keypoint_model(problem: AnnotationProblem, betas) -> KeypointModel:
    return KeypointModel(problem.hand, torch.as_tensor(np.asarray(betas)), dtype=torch.float64)


def _fill_missing(values: np.ndarray, good: np.ndarray) -> np.ndarray:
    """Copy each bad frame's value from the nearest good frame."""
    idx = np.flatnonzero(good)
    if len(idx) == 0 or good.all():
        return values
    out = values.copy()
    for t in np.flatnonzero(~good):
        out[t] = values[idx[np.argmin(np.abs(idx - t))]]
    return out


def init_hands_multi(problem: AnnotationProblem, state: SequenceState, config: AnnotateConfig, estimate_shape: bool,
                     chunk: int = HAND_INIT_CHUNK, start: int = 0, on_step: OnStep = None) -> None:
    """Multi-camera hand initialisation (paper Eq. 11): optional shared shape from keypoints,
    then a per-frame LM fit in chunks of ``chunk`` frames (``start``: chunk to resume from);
    frames without keypoints copy their nearest fitted neighbour."""
    hc = config.hand_init
    obs = problem.obs
    kp = obs.keypoints.double()
    K = torch.stack([c.K for c in obs.cameras]).double()
    w2c = torch.stack([c.world_to_cam() for c in obs.cameras]).double()
    good = ~(obs.flags & flag_bit("no_keypoints")).astype(bool)
    frames = np.flatnonzero(good)
    if len(frames) == 0:
        raise ValueError("no frame has 6 or more confident 2D keypoints in any camera; cannot initialise the hand "
                         "(check keypoints2d/ cues)")
    if estimate_shape and start == 0:
        n_conf = (kp[..., 2] > hc.conf_threshold).sum((1, 2)).numpy()
        pick = frames[np.argsort(-n_conf[frames], kind="stable")[: hc.shape_frames]]
        model = _keypoint_model(problem, state.betas)
        fit = fit_hand_to_keypoints(model, kp[pick], K, w2c, limit_weight=hc.limit_weight,
                                    conf_threshold=hc.conf_threshold, iterations=hc.iterations)
        state.betas[:] = fit_shape_to_keypoints(model, kp[pick], K, w2c, fit, hc.shape_prior, hc.limit_weight,
                                                hc.conf_threshold).numpy()
    model = _keypoint_model(problem, state.betas)
    chunks = [frames[i:i + chunk] for i in range(0, len(frames), chunk)]
    for ci in range(start, len(chunks)):
        f = chunks[ci]
        fit = fit_hand_to_keypoints(model, kp[f], K, w2c, limit_weight=hc.limit_weight,
                                    conf_threshold=hc.conf_threshold, iterations=hc.iterations)
        state.hand_go[f] = fit.global_orient.numpy()
        state.hand_transl[f] = fit.transl.numpy()
        state.hand_anat[f] = fit.anatomical.numpy()
        if on_step is not None:
            on_step(ci, {"reprojection_px": fit.reprojection_error.numpy()})
    for name in ("hand_go", "hand_transl", "hand_anat"):
        setattr(state, name, _fill_missing(getattr(state, name), good))


def _depth_at_keypoints(problem: AnnotationProblem, frames: np.ndarray) -> torch.Tensor:
    """(F, C, 21) observed depth (tracking resolution) under each keypoint, metres; 0 where unknown
    or where the pixel is not segmented as hand (an occluded joint sees the object or background)."""
    obs = problem.obs
    kp = obs.keypoints[frames]
    u = torch.round(kp[..., 0] * obs.scale - 0.5 + 0.5 * obs.scale).long()
    v = torch.round(kp[..., 1] * obs.scale - 0.5 + 0.5 * obs.scale).long()
    h, w = obs.depth.shape[-2:]
    inside = (u >= 0) & (u < w) & (v >= 0) & (v < h) & (kp[..., 2] > 0)
    d = obs.depth[frames]
    seg = obs.segmentation[frames]
    F_, C = kp.shape[:2]
    out = torch.zeros(F_, C, 21)
    for i in range(F_):
        for c in range(C):
            ok = inside[i, c]
            vals = d[i, c, v[i, c, ok], u[i, c, ok]]
            on_hand = seg[i, c, v[i, c, ok], u[i, c, ok]] == HAND_LABEL
            out[i, c, ok] = torch.where(on_hand, vals, torch.zeros_like(vals))
    return out.double()


def init_hands_single(problem: AnnotationProblem, state: SequenceState, config: AnnotateConfig,
                      object_energy: np.ndarray | None = None) -> dict:
    """Single-camera hand initialisation (paper Eq. 12): one grasp shared over frames chosen by
    :func:`~honnotate.annotate.init_hand.select_grasp_frames`, then every frame's hand placed
    through the grasp on its tracked object pose. ``object_energy``: (T,) object-only energy of
    each frame after the object tracking (NaN: unknown); frames above
    ``hand_init.max_object_energy_ratio`` times its median are not used for the grasp (unless
    fewer than 3 frames would be left). Returns ``{"frames": [...], "reprojection_px": ...}``."""
    hc = config.hand_init
    obs = problem.obs
    kp = obs.keypoints[:, 0].double()
    # a frame's wrist is placed from its palm keypoints (init_hand.initial_wrist_pose): 3 needed
    conf = np.nan_to_num(kp[..., 2].numpy(), nan=0.0)
    placeable = (conf[:, list(PALM_JOINTS)] > hc.conf_threshold).sum(1) >= 3
    fits = object_fit_gate(object_energy, hc.max_object_energy_ratio, obs.num_frames)

    def select(eligible):
        return select_grasp_frames(kp.numpy(), state.obj_rotvec, obs.mask_fraction[:, 0], count=hc.grasp_frames,
                                   conf_threshold=max(hc.conf_threshold, 0.3), min_joints=8, eligible=eligible)

    sel = select(fits)
    if len(sel) < 3 and fits is not None:  # the gate left too few: choose as without it
        sel = select(None)
    sel = sel[placeable[sel]]
    if len(sel) == 0:  # low-confidence cues (a detector's weak heatmaps): any frame with a placeable palm
        sel = np.flatnonzero(~(obs.flags & flag_bit("no_keypoints")).astype(bool) & placeable)[: hc.grasp_frames]
    if len(sel) == 0:
        raise ValueError("no frame has 3 or more confident palm keypoints (wrist and finger bases); cannot "
                         "initialise the hand (check keypoints2d/ cues or lower hand_init.conf_threshold)")
    model = _keypoint_model(problem, state.betas)
    K = obs.cameras[0].K.double()[None]
    w2c = obs.cameras[0].world_to_cam().double()[None]
    fit = fit_grasp_to_keypoints(model, obs.keypoints[sel].double(), K, w2c,
                                 torch.as_tensor(state.obj_rotvec[sel]), torch.as_tensor(state.obj_transl[sel]),
                                 _depth_at_keypoints(problem, sel), limit_weight=hc.limit_weight,
                                 conf_threshold=hc.conf_threshold, per_frame_iterations=hc.iterations,
                                 starts=hc.grasp_starts)
    _apply_grasp(problem, state, fit.rel_rotvec, fit.rel_transl, fit.anatomical.numpy())
    return {"frames": sel.tolist(), "reprojection_px": fit.reprojection_error.numpy().tolist()}


def object_fit_gate(energy: np.ndarray | None, ratio: float, T: int) -> np.ndarray | None:
    """(T,) bool: frames whose object energy is at most ``ratio`` times the median of the known
    (finite) energies; unknown energies pass. None when there is no gate (``ratio`` 0, no
    energies, or none known)."""
    if energy is None or ratio <= 0:
        return None
    e = np.asarray(energy, dtype=np.float64)
    if e.shape != (T,):
        raise ValueError(f"object energies: expected ({T},), got {e.shape}")
    known = np.isfinite(e)
    if not known.any():
        return None
    return ~known | (e <= ratio * float(np.median(e[known])))


def _apply_grasp(problem: AnnotationProblem, state: SequenceState, rel_rotvec, rel_transl, anat: np.ndarray) -> None:
    """Every frame's hand from one grasp (object frame) and its object pose."""
    T = state.obj_rotvec.shape[0]
    j0 = problem.rest_wrist(torch.as_tensor(state.betas, dtype=problem.dtype)[None]).double().cpu()
    go, tr = grasp_to_world(torch.as_tensor(rel_rotvec).double().reshape(1, 3),
                            torch.as_tensor(rel_transl).double().reshape(1, 3),
                            torch.as_tensor(state.obj_rotvec), torch.as_tensor(state.obj_transl), j0)
    state.hand_go[:] = go.numpy()
    state.hand_transl[:] = tr.numpy()
    state.hand_anat[:] = np.broadcast_to(np.asarray(anat).reshape(1, 45), (T, 45))


# -- single-camera grasp refinement and tracking ---------------------------------------------------

def refine_grasp(problem: AnnotationProblem, state: SequenceState, frames: np.ndarray, stage: StageConfig,
                 finger_delay: int, estimate_shape: bool) -> dict[str, np.ndarray]:
    """Paper Eq. 13: one grasp (relative wrist pose and finger angles) shared by ``frames``, their
    object poses free too (and the shape when ``estimate_shape``); then every frame's hand is
    re-attached through the refined grasp."""
    frames = np.asarray(frames, dtype=np.int64)
    spec = WindowSpec(hand="grasp", share_rigid=True, share_fingers=True, finger_delay=finger_delay,
                      betas_free=estimate_shape)
    r = _run(problem, frames, state, stage, spec)
    j0 = problem.rest_wrist(torch.as_tensor(state.betas, dtype=problem.dtype)[None]).double().cpu()
    t = frames[:1]
    rel_r, rel_t = world_to_grasp(torch.as_tensor(state.hand_go[t]), torch.as_tensor(state.hand_transl[t]),
                                  torch.as_tensor(state.obj_rotvec[t]), torch.as_tensor(state.obj_transl[t]), j0)
    _apply_grasp(problem, state, rel_r, rel_t, state.hand_anat[frames[0]])
    return r


def track_frames(problem: AnnotationProblem, state: SequenceState, stage: StageConfig, t0: int, mode: str,
                 start: int = 0, on_step: OnStep = None, warm_start_object: bool = True,
                 neighbour_ratio: float = 1.0) -> None:
    """Frame-by-frame tracking, from ``t0`` forwards then backwards (:func:`tracking_order`).

    mode "grasp" (single camera, reference stage "hand+object tracking"): the object pose per
    frame, the hand rigidly attached through the grasp (fingers fixed). Each frame starts from
    its own pose (from the object-only tracking) unless its already-tracked neighbour's pose
    (object and attached hand) has an energy there below ``neighbour_ratio`` times its own (1:
    the lower energy wins; 0: never). Where the object alone is barely seen (hidden by the
    hand, cut by the image border) the object-only tracking drifts, while the attached hand's
    keypoints and depth still hold the neighbour's pose. A ratio below 1 keeps a frame's own
    evidence where both fit about as well (a chain of neighbour starts follows a wrong grasp).
    mode "world" (multi-camera): object and hand (wrist and fingers) per frame, the hand
    starting from its keypoint initialisation, the object from the neighbouring frame when
    ``warm_start_object``.
    """
    order = tracking_order(problem.obs.num_frames, t0)
    spec = (WindowSpec(hand="grasp", rigid_free=False, fingers_free=False) if mode == "grasp"
            else WindowSpec(hand="world"))
    for pos in range(start, len(order)):
        t = order[pos]
        prev = t - 1 if t > t0 else t + 1
        if warm_start_object and t != t0 and mode == "world":
            _warm_start_object(state, t, prev, problem)
        if t != t0 and mode == "grasp" and neighbour_ratio > 0:
            _start_from_better(problem, state, stage, spec, t, prev, neighbour_ratio)
        r = _run(problem, [t], state, stage, spec)
        if on_step is not None:
            on_step(pos, r)


def _start_from_better(problem: AnnotationProblem, state: SequenceState, stage: StageConfig, spec: WindowSpec,
                       t: int, prev: int, ratio: float = 1.0) -> None:
    """Replace frame t's object and hand poses by frame ``prev``'s when their energy at frame t is
    below ``ratio`` times that of t's own (both evaluated, nothing optimised; the grasp is the
    same in both)."""
    own = float(_run(problem, [t], state.copy(), stage, spec, steps=0)["total"][0])  # (evaluating writes back)
    trial = state.copy()
    for name in ("obj_rotvec", "obj_transl", "hand_go", "hand_transl", "hand_anat"):
        getattr(trial, name)[t] = getattr(state, name)[prev]
    if float(_run(problem, [t], trial, stage, spec, steps=0)["total"][0]) < ratio * own:
        for name in ("obj_rotvec", "obj_transl", "hand_go", "hand_transl", "hand_anat"):
            getattr(state, name)[t] = getattr(trial, name)[t]


def refine_batches(problem: AnnotationProblem, state: SequenceState, stage: StageConfig, batch_size: int,
                   overlap: int, mode: str, estimate_shape: bool = False, start: int = 0,
                   on_step: OnStep = None) -> None:
    """Joint multi-frame optimisation in overlapping batches with the temporal terms.

    mode "grasp" (single camera, reference refinement): per batch a shared relative wrist pose,
    per-frame finger angles and object poses. mode "world" (multi-camera, paper Eq. 1): every
    parameter per frame. ``estimate_shape``: the shared betas are free too.
    """
    windows = batch_windows(problem.obs.num_frames, batch_size, overlap)
    spec = (WindowSpec(hand="grasp", share_rigid=True, betas_free=estimate_shape) if mode == "grasp"
            else WindowSpec(hand="world", betas_free=estimate_shape))
    for wi in range(start, len(windows)):
        r = _run(problem, windows[wi], state, stage, spec)
        if on_step is not None:
            on_step(wi, r)


def object_vertex_error(vertices: np.ndarray, rotvec_a: np.ndarray, transl_a: np.ndarray, rotvec_b: np.ndarray,
                        transl_b: np.ndarray) -> np.ndarray:
    """(T,) mean distance between the object's vertices posed two ways, metres."""
    Ra = roma.rotvec_to_rotmat(torch.as_tensor(rotvec_a)).numpy()
    Rb = roma.rotvec_to_rotmat(torch.as_tensor(rotvec_b)).numpy()
    pa = np.einsum("tij,vj->tvi", Ra, vertices) + transl_a[:, None]
    pb = np.einsum("tij,vj->tvi", Rb, vertices) + transl_b[:, None]
    return np.linalg.norm(pa - pb, axis=-1).mean(-1)
