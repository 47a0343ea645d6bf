"""``honnotate annotate SEQ``: the whole annotation of one capture, with checkpoints and resume.

Stages (paper Sec. 4; the reference code's schedule, :mod:`honnotate.annotate.config`):

- multi-camera (>= 2 cameras): ``hand_init`` (shape + per-frame fit to the keypoints of all
  cameras) -> ``object_init`` -> ``tracking`` (per frame, all terms) -> ``refinement`` (all
  frames in overlapping batches, temporal terms on);
- single camera: ``object_init`` -> ``object_tracking`` -> ``hand_init`` (shared grasp from
  keypoints) -> ``grasp`` (Eq. 13) -> ``tracking`` (object with the hand attached) ->
  ``refinement``.

Outputs in ``OUT`` (default ``SEQ/annotation``):

- ``annotate_config.json``: the resolved config; ``summary.json``: timings per stage, flags,
  accuracy per stage when the capture has synthetic ground truth;
- ``annotation.npz``: consolidated file in the evaluation's format (camera 0's OpenCV frame,
  :mod:`honnotate.evaluate.io`) plus world-frame parameters, per-frame per-term residuals
  (``residual_names`` / ``residuals``), silhouette IoU, keypoint and depth errors and review
  flags (``flags`` bits named by ``flag_names``);
- ``meta/<cam>/<frame>.pkl``: HO-3D annotation per camera and frame (OpenGL camera frame);
- ``report.png`` / ``report.html``: overlays and per-frame residual plots;
- ``checkpoints/<stage>.npz``: the state after each finished stage, and the progress of the
  running one; ``--resume`` continues from them without redoing finished work.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from honnotate.annotate.config import AnnotateConfig, parse_frame_slice, save_config
from honnotate.annotate.observations import flag_bit, load_observations
from honnotate.annotate.problem import AnnotationProblem, SequenceState

__all__ = ["annotate_sequence", "AnnotationInterrupted", "MissingCuesError", "stage_names", "Checkpoints"]

MULTI_STAGES = ("hand_init", "object_init", "tracking", "refinement")
SINGLE_STAGES = ("object_init", "object_tracking", "hand_init", "grasp", "tracking", "refinement")


class MissingCuesError(FileNotFoundError):
    """Cue folders are missing and detection is off or unavailable (the message says how to make them)."""


class AnnotationInterrupted(RuntimeError):
    """Raised by a ``stop`` callback (tests, time limits); the checkpoints allow ``resume``."""


def stage_names(num_cameras: int, mode: str = "auto") -> tuple[str, ...]:
    """Stage names of the pipeline used for ``num_cameras`` cameras in ``mode``."""
    multi = mode == "multi" or (mode == "auto" and num_cameras >= 2)
    return MULTI_STAGES if multi else SINGLE_STAGES


class Checkpoints:
    """Atomic ``.npz`` checkpoints of the sequence state, one per stage.

    A finished stage's file holds ``complete=1``; a running one holds the position of the next
    unit of work (frame or batch) in ``next``. Extra JSON-able info is stored as ``info``.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)

    def path(self, stage: str) -> Path:
        return self.folder / f"{stage}.npz"

    def save(self, stage: str, state: SequenceState, *, complete: bool, next_pos: int = 0,
             info: dict | None = None) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        tmp = self.folder / f".{stage}.tmp.npz"
        with open(tmp, "wb") as f:
            np.savez(f, **state.arrays(), complete=np.int64(complete), next=np.int64(next_pos),
                     info=np.array(json.dumps(info or {})))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path(stage))

    def load(self, stage: str) -> tuple[SequenceState, bool, int, dict] | None:
        p = self.path(stage)
        if not p.is_file():
            return None
        try:
            with np.load(p, allow_pickle=False) as z:
                return (SequenceState.from_arrays(z), bool(z["complete"]), int(z["next"]),
                        json.loads(str(z["info"])))
        except (OSError, ValueError, KeyError) as exc:
            raise ValueError(f"{p}: unreadable checkpoint ({exc}); delete it to redo that stage") from None

    def clear(self) -> None:
        if self.folder.is_dir():
            for p in self.folder.glob("*.npz"):
                p.unlink()


@dataclass
class _Ctx:
    problem: AnnotationProblem
    config: AnnotateConfig
    ckpt: Checkpoints
    log: Callable[[str], None]
    progress: Callable[[str, int, int], None] | None
    stop: Callable[[str, int], bool] | None
    estimate_shape: bool
    meta_pose: tuple | None
    timings: dict
    infos: dict
    stage_states: dict


def _consensus(obs, cfg) -> tuple[torch.Tensor, torch.Tensor]:
    """The keypoint cues of ``obs`` with the views that disagree with a multi-view consensus off
    (:func:`honnotate.annotate.consensus.keypoint_consensus`)."""
    from honnotate.annotate.consensus import keypoint_consensus

    K = torch.stack([c.K for c in obs.cameras])
    world_to_cam = torch.stack([c.world_to_cam() for c in obs.cameras])
    return keypoint_consensus(obs.keypoints, K, world_to_cam, threshold_px=cfg.consensus_px,
                              min_views=cfg.consensus_views)


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def _ensure_cues(seq, config: AnnotateConfig, log) -> bool:
    """Run the detector for cameras without cue files; True when it wrote any."""
    cams = config.cameras or seq.camera_ids
    missing = [c for c in cams if not seq.files("segmentation", c) or not seq.files("keypoints2d", c)]
    if not missing:
        return False
    how = (f"run `honnotate detect {seq.root}` (honnotate's networks) or write them from another detector in "
           f"the cue format (segmentation/<cam>/<frame>.png: 0 background, 1 object, 2 hand; "
           f"keypoints2d/<cam>/<frame>.json: 21 x (u, v, confidence), MANO order)")
    if not config.detect:
        raise MissingCuesError(f"{seq.root}: no cue files for camera(s) {missing} (segmentation/ and keypoints2d/); "
                               f"{how}")
    from honnotate.perception.detect import detect_sequence
    from honnotate.perception.weights import WeightsError

    log(f"cue files missing for camera(s) {missing}: running honnotate's detector")
    try:
        s = detect_sequence(seq.root, cameras=missing, device=config.device)
    except (WeightsError, FileNotFoundError) as exc:
        raise MissingCuesError(f"{seq.root}: no cue files for camera(s) {missing} and the detector is unavailable "
                               f"({exc}); {how}") from None
    if s.fused is not None:
        log(f"keypoints fused across {len(missing)} views: {s.fused.replaced} of {s.fused.keypoints} replaced by "
            f"the views' consensus (per-view detections in keypoints2d_views/)")
    return True


def _hand_and_betas(seq, config: AnnotateConfig, device):
    from honnotate.models.registry import load_hand_model

    meta = seq.meta
    kind = config.hand_model or meta.hand_model
    hand = load_hand_model(kind, meta.hand_side, flat_hand_mean=True).to(device)
    betas = np.zeros(hand.num_betas)
    given = None
    if meta.betas is not None:
        given = np.asarray(meta.betas, dtype=np.float64)
    elif meta.shape_file is not None:
        p = seq.root / meta.shape_file
        try:
            given = np.loadtxt(p, dtype=np.float64).reshape(-1)
        except (OSError, ValueError) as exc:
            raise ValueError(f"{p}: cannot read the subject's betas ({exc})") from None
    if given is not None and config.shape != "estimate":
        n = min(len(given), hand.num_betas)
        betas[:n] = given[:n]
    estimate = config.shape == "estimate" or (config.shape == "auto" and given is None)
    return hand, betas, estimate


def _object_mesh(seq):
    from honnotate.models.object import load_object_mesh, make_object

    meta = seq.meta
    p = meta.object_mesh_path(seq.root)
    if p is None:
        return make_object(meta.object)
    if not p.is_file():
        raise FileNotFoundError(f"{seq.root / 'meta.yaml'}: object mesh {p} not found")
    return load_object_mesh(p, scale="auto")


def _select(seq, config: AnnotateConfig) -> list[str]:
    frames = list(seq.frame_ids)
    if config.frames:
        frames = frames[parse_frame_slice(config.frames)]
    if not frames:
        raise ValueError(f"{seq.root}: the frame selection {config.frames!r} is empty ({len(seq.frame_ids)} frames)")
    return frames


def _run_stage(ctx: _Ctx, name: str, state: SequenceState, body, units: int | None = None,
               extra: Callable[[], dict] | None = None) -> SequenceState:
    """Run or skip one stage; ``body(state, start, on_step)`` does the work from position ``start``.
    ``extra()``: more info saved with every checkpoint of the stage (a resumed stage finds the
    last saved info in ``ctx.infos[name]`` when its body starts)."""
    got = ctx.ckpt.load(name)
    if got is not None and got[1]:
        ctx.log(f"{name}: done (checkpoint)")
        ctx.infos[name] = got[3]
        ctx.stage_states[name] = got[0].copy()  # the returned state is updated by later stages
        ctx.timings[name] = got[3].get("seconds", 0.0)
        return got[0]
    start, t_prev = 0, 0.0
    if got is not None:
        state, start, info = got[0], got[2], got[3]
        t_prev = info.get("seconds", 0.0)
        ctx.infos[name] = info
        ctx.log(f"{name}: resuming at unit {start}")
    t0 = time.perf_counter()
    every = ctx.config.checkpoint_every

    def on_step(pos: int, _res) -> None:
        done = pos + 1
        if ctx.progress is not None and units:
            ctx.progress(name, done, units)
        if units and (done % every == 0 or done == units):
            ctx.ckpt.save(name, state, complete=False, next_pos=done,
                          info={**(extra() if extra else {}), "seconds": t_prev + time.perf_counter() - t0})
        if ctx.stop is not None and ctx.stop(name, done):
            ctx.ckpt.save(name, state, complete=False, next_pos=done,
                          info={**(extra() if extra else {}), "seconds": t_prev + time.perf_counter() - t0})
            raise AnnotationInterrupted(f"stopped in stage {name} after unit {done}")

    info = body(state, start, on_step) or {}
    seconds = t_prev + time.perf_counter() - t0
    info = {**(extra() if extra else {}), **info, "seconds": seconds}
    ctx.ckpt.save(name, state, complete=True, info=info)
    ctx.timings[name] = seconds
    ctx.infos[name] = info
    ctx.stage_states[name] = state.copy()
    ctx.log(f"{name}: {seconds:.1f} s")
    if ctx.stop is not None and ctx.stop(name, -1):
        raise AnnotationInterrupted(f"stopped after stage {name}")
    return state


def _t0(ctx: _Ctx) -> int:
    return int(ctx.infos["object_init"]["frame"])


def _multi(ctx: _Ctx, state: SequenceState) -> SequenceState:
    from honnotate.annotate import stages as S

    p, cfg = ctx.problem, ctx.config
    T = p.obs.num_frames
    with_keypoints = int((~(p.obs.flags & flag_bit("no_keypoints")).astype(bool)).sum())
    n_chunks = int(np.ceil(max(1, with_keypoints) / S.HAND_INIT_CHUNK))

    def hand_init(st, start, on_step):
        S.init_hands_multi(p, st, cfg, ctx.estimate_shape, start=start, on_step=on_step)

    state = _run_stage(ctx, "hand_init", state, hand_init, n_chunks)

    def object_init(st, start, on_step):
        return S.init_object_first_frame(p, st, cfg, cfg.single.object_tracking, ctx.meta_pose)

    state = _run_stage(ctx, "object_init", state, object_init)
    t0 = _t0(ctx)

    def tracking(st, start, on_step):
        S.track_frames(p, st, cfg.multi.tracking, t0, "world", start=start, on_step=on_step)

    state = _run_stage(ctx, "tracking", state, tracking, T)
    mc = cfg.multi
    n_win = len(S.batch_windows(T, mc.batch_size, mc.batch_overlap))

    def refinement(st, start, on_step):
        S.refine_batches(p, st, mc.refinement, mc.batch_size, mc.batch_overlap, "world", start=start,
                         on_step=on_step)

    return _run_stage(ctx, "refinement", state, refinement, n_win)


def _single(ctx: _Ctx, state: SequenceState) -> SequenceState:
    from honnotate.annotate import stages as S

    p, cfg = ctx.problem, ctx.config
    sc = cfg.single
    T = p.obs.num_frames

    def object_init(st, start, on_step):
        return S.init_object_first_frame(p, st, cfg, sc.object_tracking, ctx.meta_pose)

    state = _run_stage(ctx, "object_init", state, object_init)
    t0 = _t0(ctx)

    # each frame's object-only energy after tracking (NaN: no object): the grasp is fitted on
    # frames where the tracking fits (hand_init.max_object_energy_ratio)
    energy = np.full(T, np.nan)
    order = S.tracking_order(T, t0)

    def object_tracking(st, start, on_step):
        saved = ctx.infos.get("object_tracking", {}).get("energy") if start else None
        if saved is not None:
            energy[:] = [np.nan if e is None else e for e in saved]

        def step(pos, r):
            if len(r.get("total", [])):
                energy[order[pos]] = float(r["total"][0])
            on_step(pos, r)

        S.track_objects(p, st, sc.object_tracking, t0, start=start, on_step=step)

    state = _run_stage(ctx, "object_tracking", state, object_tracking, T,
                       extra=lambda: {"energy": [None if np.isnan(e) else float(e) for e in energy]})
    tracked = ctx.infos["object_tracking"].get("energy")

    def hand_init(st, start, on_step):
        e = np.array([np.nan if v is None else v for v in tracked], dtype=np.float64) if tracked is not None else None
        return S.init_hands_single(p, st, cfg, e)

    state = _run_stage(ctx, "hand_init", state, hand_init)
    grasp_frames = np.asarray(ctx.infos["hand_init"]["frames"], dtype=np.int64)
    if len(grasp_frames) > sc.grasp_frames:
        grasp_frames = grasp_frames[np.linspace(0, len(grasp_frames) - 1, sc.grasp_frames).round().astype(int)]

    def grasp(st, start, on_step):
        S.refine_grasp(p, st, grasp_frames, sc.grasp, sc.grasp_finger_delay, ctx.estimate_shape)
        return {"frames": grasp_frames.tolist()}

    state = _run_stage(ctx, "grasp", state, grasp)

    def tracking(st, start, on_step):
        S.track_frames(p, st, sc.tracking, t0, "grasp", start=start, on_step=on_step,
                       neighbour_ratio=sc.tracking_neighbour_ratio)

    state = _run_stage(ctx, "tracking", state, tracking, T)
    n_win = len(S.batch_windows(T, sc.batch_size, sc.batch_overlap))

    def refinement(st, start, on_step):
        S.refine_batches(p, st, sc.refinement, sc.batch_size, sc.batch_overlap, "grasp", start=start,
                         on_step=on_step)

    return _run_stage(ctx, "refinement", state, refinement, n_win)


def annotate_sequence(sequence: str | Path, out_dir: str | Path | None = None,
                      config: AnnotateConfig | None = None, *, resume: bool = False,
                      log: Callable[[str], None] = print, progress: Callable[[str, int, int], None] | None = None,
                      stop: Callable[[str, int], bool] | None = None) -> dict:
    """Annotate one capture end to end (see the module docstring for stages and outputs).

    Args:
        sequence: capture folder. out_dir: output folder (default ``<sequence>/annotation``).
        config: :class:`AnnotateConfig` (default: the reference schedule).
        resume: continue from the checkpoints in ``out_dir`` (the saved config must match);
            without it, existing checkpoints are discarded.
        log: receives one line per event. progress: ``progress(stage, done, total)``.
        stop: ``stop(stage, done) -> bool`` asked after every unit of work (``done = -1`` after
            a stage); True interrupts with :class:`AnnotationInterrupted` after checkpointing.

    Returns:
        The summary dict (also ``summary.json``).
    """
    from honnotate.io.sequence import open_sequence
    from honnotate.pipeline.annotate_output import write_outputs

    t_start = time.perf_counter()
    config = config or AnnotateConfig()
    seq = open_sequence(sequence)
    out = Path(out_dir) if out_dir is not None else seq.root / "annotation"
    out.mkdir(parents=True, exist_ok=True)
    cfg_path = out / "annotate_config.json"
    ckpt = Checkpoints(out / "checkpoints")
    if resume and cfg_path.is_file():
        saved = json.loads(cfg_path.read_text())
        if saved != config.to_dict():
            diff = sorted(k for k in set(saved) | set(config.to_dict()) if saved.get(k) != config.to_dict().get(k))
            raise ValueError(f"{cfg_path}: --resume with a different config (keys {diff}); run without --resume "
                             "to start over, or pass the saved config with --config")
    elif not resume:
        if any(ckpt.folder.glob("*.npz")):
            log(f"{ckpt.folder}: discarding the checkpoints of an earlier run (pass --resume to continue it)")
        ckpt.clear()
    save_config(cfg_path, config)
    if _ensure_cues(seq, config, log):
        seq = open_sequence(sequence)  # the sequence lists its files when opened: see the new cues
    device = _device(config.device)
    frames = _select(seq, config)
    cams = config.cameras or seq.camera_ids
    hand, betas, estimate_shape = _hand_and_betas(seq, config, device)
    obj = _object_mesh(seq)
    log(f"{seq.root}: {len(frames)} frames x {len(cams)} cameras, object {obj.name}, {hand.data.source} "
        f"{seq.meta.hand_side} hand, device {device}")
    stage_list = stage_names(len(cams), config.mode)
    multi = stage_list == MULTI_STAGES
    scale = config.multi.tracking.scale if multi else config.single.tracking.scale
    t_load = time.perf_counter()
    obs = load_observations(seq, frames, cams, scale=scale, cloud_points=config.cloud_points,
                            max_depth=config.terms.max_depth, conf_threshold=config.hand_init.conf_threshold,
                            progress=(lambda d, n: progress("load", d, n)) if progress else None)
    log(f"loaded cues and depth in {time.perf_counter() - t_load:.1f} s")
    if multi and config.hand_init.consensus_px > 0:
        obs.keypoints, dropped = _consensus(obs, config.hand_init)
        log(f"multi-view keypoint consensus ({config.hand_init.consensus_px:g} px): dropped {int(dropped.sum())} of "
            f"{int((obs.keypoints[..., 2] > 0).sum()) + int(dropped.sum())} keypoints that disagree with the other views")
    problem = AnnotationProblem(hand, obj.vertices, obj.faces, obs, config.terms)
    state = SequenceState.zeros(len(frames), hand.num_betas)
    state.betas[:] = betas
    from honnotate.annotate.init_object import object_pose_from_meta

    ctx = _Ctx(problem, config, ckpt, log, progress, stop, estimate_shape, object_pose_from_meta(seq.meta),
               {"load": time.perf_counter() - t_load}, {}, {})
    state = _multi(ctx, state) if multi else _single(ctx, state)
    summary = write_outputs(out, seq, problem, state, ctx.stage_states, ctx.infos, config, obj, stage_list,
                            log=log)
    summary["timings_s"] = {**ctx.timings, "total": time.perf_counter() - t_start}
    summary["seconds_per_frame"] = summary["timings_s"]["total"] / len(frames)
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=float) + "\n")
    log(f"wrote {out} ({summary['seconds_per_frame']:.2f} s/frame; {summary['flagged_frames']} of {len(frames)} "
        f"frames flagged for review)")
    return summary

