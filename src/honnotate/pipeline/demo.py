"""The main job on its embedded default (``honnotate demo``).

Build the open hand, synthesise a grasp of a built-in object, render it in three cameras and
write meshes, a report PNG, the grasp quality figures and the resolved config; then generate a
single-camera synthetic capture with degraded cues and noisy depth and annotate it end to end
(``capture/``, ``annotation/`` with its report and the accuracy against the ground truth).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import roma
import torch

__all__ = ["DemoConfig", "run_demo"]


@dataclass(frozen=True)
class DemoConfig:
    """Settings of :func:`run_demo` (saved as ``config.json`` beside the outputs).

    object_name: built-in object; side: hand side; grasp: grasp kind; seed: random seed;
    width, height: render size in pixels; distance: object distance to the first camera (m);
    annotate_frames: frames of the synthetic single-camera capture annotated end to end (0: skip).
    """

    object_name: str = "soup_can"
    side: Literal["right", "left"] = "right"
    grasp: Literal["power", "precision"] = "power"
    seed: int = 0
    width: int = 640
    height: int = 480
    distance: float = 0.55
    annotate_frames: int = 20


def _cameras(cfg: DemoConfig):
    """Three cameras (fx 615, 640x480 like the capture setups) looking at (0, 0, distance)."""
    from honnotate.geometry import Camera, look_at

    target = np.array([0.0, 0.0, cfg.distance])
    cams = []
    for i, yaw in enumerate((0.0, 0.6, -0.6)):
        # Camera i sits on a circle around the target, looking at it (OpenCV: z forward, y down).
        eye = target + cfg.distance * np.array([np.sin(yaw), -0.15 * (i > 0), -np.cos(yaw)])
        c2w = look_at(eye, target)
        sx = cfg.width / 640.0
        cams.append(Camera.from_intrinsics(615.0 * sx, 615.0 * sx, (319.5 + 0.5) * sx - 0.5, (239.5 + 0.5) * sx - 0.5,
                                           cfg.width, cfg.height, cam_to_world=torch.as_tensor(c2w, dtype=torch.float32),
                                           name=str(i)))
    return cams


def run_demo(out_dir: str | Path, config: DemoConfig = DemoConfig(), log=print) -> dict:
    """Run the demo and write its outputs to ``out_dir``; returns a summary dict."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import trimesh

    from honnotate.models.hand import HandModel
    from honnotate.models.object import make_object
    from honnotate.models.open_hand import load_open_hand
    from honnotate.render.renderer import HAND_LABEL, OBJECT_LABEL, Renderer, SceneMesh
    from honnotate.synth.grasp import GraspConfig, synthesize_grasp

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(asdict(config), indent=2))
    timings = {}

    t0 = time.perf_counter()
    log(f"[1/5] open {config.side} hand")
    hand = HandModel(load_open_hand(config.side), dtype=torch.float64)
    timings["hand_model_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    log(f"[2/5] {config.grasp} grasp of '{config.object_name}'")
    obj = make_object(config.object_name)
    grasp = synthesize_grasp(hand, obj.to_trimesh(), config=GraspConfig(kind=config.grasp), seed=config.seed)
    timings["grasp_s"] = time.perf_counter() - t0
    with torch.no_grad():
        hand_out = hand(torch.as_tensor(grasp.global_orient[None]), torch.as_tensor(grasp.hand_pose[None]),
                        torch.as_tensor(grasp.betas[None]), torch.as_tensor(grasp.transl[None]))
    hand_obj_frame = hand_out.vertices[0].numpy()

    # Object pose in the world (= first camera) frame: in front of the camera, turned a little.
    rng = np.random.default_rng(config.seed)
    R_o = roma.rotvec_to_rotmat(torch.as_tensor(rng.normal(0, 0.4, 3))).numpy()
    t_o = np.array([0.0, 0.0, config.distance])
    obj_world = obj.vertices @ R_o.T + t_o
    hand_world = hand_obj_frame @ R_o.T + t_o
    joints_world = hand_out.joints[0].numpy() @ R_o.T + t_o

    t0 = time.perf_counter()
    log("[3/5] render 3 cameras")
    cams = _cameras(config)
    f32 = torch.float32
    meshes = [
        SceneMesh(torch.as_tensor(hand_world, dtype=f32), torch.as_tensor(hand.faces), HAND_LABEL,
                  vertex_colors=torch.tensor([[0.93, 0.72, 0.60]]).expand(len(hand_world), 3)),
        SceneMesh(torch.as_tensor(obj_world, dtype=f32), torch.as_tensor(obj.faces), OBJECT_LABEL,
                  vertex_colors=(torch.as_tensor(obj.vertex_colors, dtype=f32) / 255.0) if obj.vertex_colors is not None else None),
    ]
    with torch.no_grad():
        r = Renderer().render(meshes, cams, rgb=True)
    timings["render_s"] = time.perf_counter() - t0

    log("[4/5] write meshes and report")
    trimesh.Trimesh(hand_world, hand.faces, process=False).export(out / "hand.ply")
    trimesh.Trimesh(obj_world, obj.faces, process=False).export(out / "object.ply")
    fig, axes = plt.subplots(len(cams), 3, figsize=(12, 3.2 * len(cams)))
    label_rgb = np.array([[0.1, 0.1, 0.1], [0.35, 0.45, 0.95], [0.95, 0.6, 0.45]])
    for c, cam in enumerate(cams):
        rgb = r.rgb[0, c].clamp(0, 1).numpy()
        axes[c, 0].imshow(rgb)
        uv, _ = cam.project(torch.as_tensor(joints_world, dtype=f32))
        uv = uv.numpy()
        from honnotate.models.joints import SKELETON_BONES

        for a, b in SKELETON_BONES:
            axes[c, 0].plot(uv[[a, b], 0], uv[[a, b], 1], "-", color="lime", lw=1)
        axes[c, 0].set_title(f"camera {cam.name}: RGB + projected joints")
        axes[c, 1].imshow(label_rgb[r.labels[0, c].numpy()])
        axes[c, 1].set_title("labels (object blue, hand orange)")
        fg = r.labels[0, c].numpy() > 0
        d = np.where(fg, r.depth[0, c].numpy(), np.nan)
        im = axes[c, 2].imshow(d, cmap="viridis", vmin=np.nanpercentile(d, 1), vmax=np.nanpercentile(d, 95))
        fig.colorbar(im, ax=axes[c, 2], fraction=0.035, label="depth (m)")
        axes[c, 2].set_title("depth")
        ys, xs = np.nonzero(fg)  # zoom every panel of this camera on the scene
        if len(xs):
            m = 40
            for ax in axes[c]:
                ax.set_xlim(max(xs.min() - m, 0), min(xs.max() + m, config.width - 1))
                ax.set_ylim(min(ys.max() + m, config.height - 1), max(ys.min() - m, 0))
        for ax in axes[c]:
            ax.set_axis_off()
    fig.suptitle(f"honnotate demo: open {config.side} hand, {config.grasp} grasp of {config.object_name}; "
                 f"penetration {grasp.penetration * 1e3:.1f} mm, contacts: {', '.join(grasp.contacts) or 'none'}")
    fig.tight_layout()
    fig.savefig(out / "report.png", dpi=80)
    plt.close(fig)

    summary = {
        "hand_vertices": int(hand.num_vertices),
        "object_faces": int(len(obj.faces)),
        "grasp": {"kind": grasp.kind, "penetration_mm": grasp.penetration * 1e3, "contacts": list(grasp.contacts),
                  "curls": grasp.curls},
        "visible_pixels": {f"camera_{cam.name}": {"hand": int((r.labels[0, c] == HAND_LABEL).sum()),
                                                  "object": int((r.labels[0, c] == OBJECT_LABEL).sum())}
                           for c, cam in enumerate(cams)},
        "timings_s": timings,
        "outputs": ["config.json", "hand.ply", "object.ply", "report.png", "summary.json"],
    }
    if config.annotate_frames > 0:
        summary["annotation"] = _annotate_capture(out, config, log)
        summary["outputs"] += ["capture/contact_sheet.png", "annotation/report.html", "annotation/annotation.npz"]
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    log(f"wrote {out / 'report.png'} and {out / 'summary.json'}")
    return summary


def _annotate_capture(out: Path, config: DemoConfig, log) -> dict:
    """Generate a single-camera capture with degraded cues and annotate it end to end."""
    from honnotate.pipeline.annotate import annotate_sequence
    from honnotate.synth.generator import SynthConfig, generate_sequence
    from honnotate.synth.motion import MotionConfig

    log(f"[5/5] synthetic capture ({config.annotate_frames} frames) annotated end to end")
    cap = out / "capture"
    generate_sequence(cap, SynthConfig(frames=config.annotate_frames, cameras=1, object="mustard_bottle",
                                       seed=config.seed + 1, width=config.width, height=config.height,
                                       degraded_cues=True,
                                       # the object is turned in the hand, as in a real capture: a
                                       # single view of an almost still grasp leaves the hand's depth
                                       # weakly determined (71 mm with 0.6 rad over 20 frames)
                                       motion=MotionConfig(workspace_size=0.15, max_rotation=1.2)))
    s = annotate_sequence(cap, out / "annotation", log=lambda m: log("    " + m))
    acc = s.get("accuracy", {}).get("final", {})
    if acc:
        log(f"    accuracy against the generator's ground truth: hand MPJPE {acc['hand_mpjpe_mm']['mean']:.1f} mm, "
            f"object ADD-S {acc['object_adds_mm']['mean']:.1f} mm; report: {out / 'annotation' / 'report.html'}")
    return {"frames": s["frames"], "seconds_per_frame": s["seconds_per_frame"], "flagged_frames": s["flagged_frames"],
            "accuracy": {k: v["mean"] for k, v in acc.items()}}
