"""Outputs of :func:`honnotate.pipeline.annotate.annotate_sequence`: quality figures and flags,
HO-3D pickles, the consolidated ``annotation.npz``, accuracy against synthetic ground truth
when present, and the report (PNG + HTML)."""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path

import numpy as np
import roma
import torch

from honnotate.annotate.observations import FLAG_NAMES, flag_bit
from honnotate.annotate.problem import AnnotationProblem, SequenceState
from honnotate.render.renderer import HAND_LABEL, OBJECT_LABEL, SceneMesh

__all__ = ["frame_quality", "keypoint_error_px", "write_outputs", "accuracy_against_gt"]


@torch.no_grad()
def _posed(problem: AnnotationProblem, state: SequenceState, frames: np.ndarray):
    dd = {"device": problem.device, "dtype": problem.dtype}
    R = roma.rotvec_to_rotmat(torch.as_tensor(state.obj_rotvec[frames], **dd))
    t = torch.as_tensor(state.obj_transl[frames], **dd)
    out = problem.pose_hand(torch.as_tensor(state.hand_go[frames], **dd), torch.as_tensor(state.hand_anat[frames], **dd),
                            torch.as_tensor(state.hand_transl[frames], **dd), torch.as_tensor(state.betas, **dd)[None])
    return R, t, problem.pose_object(R, t), out


def keypoint_error_px(residuals: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """(B,) per-frame median reprojection error, pixels, of the keypoints with weight > 0.

    ``residuals`` (B, C, J, 2) pixels, ``weights`` (B, C, J); NaN for a frame without keypoints.
    The median, not the mean: a detector's outliers (a few keypoints 40-160 px off) must not flag
    a frame whose hand fits every other keypoint.
    """
    err = torch.where(weights > 0, residuals.norm(dim=-1), torch.full_like(residuals[..., 0], float("nan")))
    return torch.nanmedian(err.flatten(1), dim=1).values


@torch.no_grad()
def frame_quality(problem: AnnotationProblem, state: SequenceState, weights, scale: float, chunk: int = 8) -> dict:
    """Per-frame quality figures of the final state.

    Returns:
        dict of (T,) arrays: ``iou_hand``, ``iou_object`` (mean over cameras with a cue and the label
        present in the cue or the rendering; NaN if none), ``keypoint_px`` (median reprojection error
        of the confident keypoints over joints and cameras, capture pixels), ``depth_residual`` (median |rendered - observed|
        depth on hand/object pixels, metres), ``in_view`` (object centre inside some image), and
        ``residuals`` (T, n) weighted per-term energies with ``residual_names``.
    """
    obs = problem.obs
    T = obs.num_frames
    seg_all, dep_all = problem.maps(scale)
    w, h = obs.size_at(scale)
    res = {k: np.full(T, np.nan) for k in ("iou_hand", "iou_object", "keypoint_px", "depth_residual")}
    in_view = np.zeros(T, bool)
    term_rows: list[dict[str, np.ndarray]] = []
    from honnotate.annotate.terms import keypoints2d_residuals, project_to_cameras

    for s in range(0, T, chunk):
        f = np.arange(s, min(T, s + chunk))
        R, t, ov, ho = _posed(problem, state, f)
        out = problem.renderer.render([SceneMesh(ov, problem.object_faces, OBJECT_LABEL),
                                       SceneMesh(ho.vertices, problem.hand_faces, HAND_LABEL)], problem.cameras,
                                      width=w, height=h, silhouettes=False)
        idx = torch.as_tensor(f, device=problem.device)
        seg, dep = seg_all[idx], dep_all[idx]
        valid = problem.obs.seg_valid.to(problem.device)[idx]
        for key, lab in (("iou_hand", HAND_LABEL), ("iou_object", OBJECT_LABEL)):
            a, b = out.labels == lab, seg == lab
            inter = (a & b).sum((-1, -2)).double()
            union = (a | b).sum((-1, -2)).double()
            ok = valid & (union > 0)
            iou = torch.where(ok, inter / union.clamp(min=1), torch.zeros_like(inter)).sum(1) / ok.sum(1).clamp(min=1)
            res[key][f] = torch.where(ok.any(1), iou, torch.full_like(iou, float("nan"))).cpu().numpy()
        r, wk = keypoints2d_residuals(ho.joints, problem.keypoints[idx], problem.K, problem.world_to_cam,
                                      problem.settings.keypoint_conf_threshold)
        res["keypoint_px"][f] = keypoint_error_px(r, wk).cpu().numpy()
        fg = (out.labels > 0) & (seg > 0) & (dep > 0)
        for i in range(len(f)):
            d = (out.depth[i] - dep[i])[fg[i]].abs()
            res["depth_residual"][f[i]] = float(d.median()) if d.numel() else np.nan
        centre = t[:, None]
        uv, z = project_to_cameras(centre, problem.K, problem.world_to_cam)
        W, H = obs.width, obs.height
        inside = (uv[..., 0] >= 0) & (uv[..., 0] < W) & (uv[..., 1] >= 0) & (uv[..., 1] < H) & (z > 0)
        in_view[f] = inside.any(-1).any(-1).cpu().numpy()
        _, per_frame = problem.energy(f, R, t, torch.as_tensor(state.hand_go[f], device=problem.device,
                                                                dtype=problem.dtype),
                                      torch.as_tensor(state.hand_anat[f], device=problem.device, dtype=problem.dtype),
                                      torch.as_tensor(state.hand_transl[f], device=problem.device, dtype=problem.dtype),
                                      torch.as_tensor(state.betas, device=problem.device, dtype=problem.dtype)[None],
                                      weights, scale)
        term_rows.append({k: v.double().cpu().numpy() for k, v in per_frame.items()})
    names = sorted({k for row in term_rows for k in row})
    residuals = np.concatenate([np.stack([row.get(k, np.zeros(len(next(iter(row.values())))))
                                          for k in names], 1) for row in term_rows])
    return {**res, "in_view": in_view, "residuals": residuals, "residual_names": names}


def quality_flags(base_flags: np.ndarray, q: dict, qc) -> np.ndarray:
    """Combine the availability flags with the quality thresholds of ``qc`` (:class:`QualityConfig`)."""
    flags = base_flags.astype(np.int64).copy()
    low = (np.nan_to_num(q["iou_hand"], nan=1.0) < qc.min_iou) | (np.nan_to_num(q["iou_object"], nan=1.0) < qc.min_iou)
    flags[low] |= flag_bit("low_iou")
    flags[np.nan_to_num(q["keypoint_px"], nan=0.0) > qc.max_keypoint_px] |= flag_bit("high_keypoint_error")
    flags[np.nan_to_num(q["depth_residual"], nan=0.0) > qc.max_depth_residual] |= flag_bit("high_depth_residual")
    flags[~q["in_view"]] |= flag_bit("object_out_of_view")
    return flags


def _gt(seq, frame_ids: list[str]) -> dict | None:
    p = Path(seq.root) / "ground_truth" / "sequence_gt.npz"
    if not p.is_file():
        return None
    with np.load(p, allow_pickle=False) as z:
        ids = [str(x) for x in z["frame_ids"]]
        pos = {f: i for i, f in enumerate(ids)}
        if any(f not in pos for f in frame_ids):
            return None
        sel = np.array([pos[f] for f in frame_ids])
        return {k: np.asarray(z[k])[sel] for k in ("hand_joints", "obj_rot", "obj_trans")}


def accuracy_against_gt(problem: AnnotationProblem, state: SequenceState, gt: dict) -> dict:
    """Hand MPJPE (world, mm), object mean vertex error (ADD, mm) and ADD-S (mm) per frame."""
    from honnotate.annotate.stages import object_vertex_error

    T = state.hand_go.shape[0]
    _, _, _, ho = _posed(problem, state, np.arange(T))
    mpjpe = np.linalg.norm(ho.joints.double().cpu().numpy() - gt["hand_joints"], axis=-1).mean(-1) * 1e3
    V = problem.object_vertices.double().cpu().numpy()
    add = object_vertex_error(V, state.obj_rotvec, state.obj_transl, gt["obj_rot"], gt["obj_trans"]) * 1e3
    from scipy.spatial import cKDTree

    Ra = roma.rotvec_to_rotmat(torch.as_tensor(state.obj_rotvec)).numpy()
    Rb = roma.rotvec_to_rotmat(torch.as_tensor(gt["obj_rot"])).numpy()
    sub = V[:: max(1, len(V) // 1000)]
    adds = np.zeros(T)
    for t in range(T):
        a = sub @ Ra[t].T + state.obj_transl[t]
        b = sub @ Rb[t].T + gt["obj_trans"][t]
        adds[t] = cKDTree(a).query(b)[0].mean() * 1e3
    return {"hand_mpjpe_mm": mpjpe, "object_add_mm": add, "object_adds_mm": adds}


def _summ(x: np.ndarray) -> dict:
    """mean / median / max over the frames where the figure is defined (NaN elsewhere)."""
    if not np.isfinite(x).any():
        return {"mean": None, "median": None, "max": None}
    return {"mean": float(np.nanmean(x)), "median": float(np.nanmedian(x)), "max": float(np.nanmax(x))}


def write_outputs(out: Path, seq, problem: AnnotationProblem, state: SequenceState, stage_states: dict,
                  infos: dict, config, obj, stage_list, log=print) -> dict:
    """Write every output file; returns the summary dict (without timings)."""
    from honnotate.evaluate.io import write_consolidated_npz
    from honnotate.io.ho3d import write_ho3d_annotation
    from honnotate.models.joints import ho3d_camera_annotation

    obs = problem.obs
    T = obs.num_frames
    multi = "object_tracking" not in stage_list
    ref = config.multi.refinement if multi else config.single.refinement
    track_scale = (config.multi.tracking if multi else config.single.tracking).scale
    q = frame_quality(problem, state, ref.term_weights(), track_scale)
    flags = quality_flags(obs.flags, q, config.quality)
    R, t, ov, ho = _posed(problem, state, np.arange(T))
    joints_w = ho.joints.double().cpu().numpy()
    verts_w = ho.vertices.double().cpu().numpy()
    betas = state.betas
    # HO-3D pickles per camera
    corners = obj.bbox_corners()
    hand_pose = problem.hand.anatomical_to_pose(torch.as_tensor(state.hand_anat, dtype=problem.dtype,
                                                                device=problem.device).reshape(T, 15, 3))
    hand_pose = hand_pose.double().cpu().numpy()
    rest_wrist = problem.rest_wrist(torch.as_tensor(betas, dtype=problem.dtype, device=problem.device)[None])
    rest_wrist = rest_wrist.double().cpu().numpy()
    hands_mean = np.asarray(problem.hand.data.hands_mean)
    for c, cam in enumerate(obs.cameras):
        w2c = cam.world_to_cam().double().numpy()
        K = cam.K.double().numpy()
        for i, fid in enumerate(obs.frame_ids):
            ann = ho3d_camera_annotation(w2c, K, state.hand_go[i], state.hand_transl[i], hand_pose[i], betas,
                                         rest_wrist, joints_w[i], state.obj_rotvec[i], state.obj_transl[i], corners,
                                         obj.name, hands_mean)
            write_ho3d_annotation(out / "meta" / obs.camera_ids[c] / f"{fid}.pkl", ann, durable=False)
    # consolidated file, camera 0's OpenCV frame
    w2c0 = obs.cameras[0].world_to_cam().double().numpy()
    Rc, tc = w2c0[:3, :3], w2c0[:3, 3]
    Ro = roma.rotvec_to_rotmat(torch.as_tensor(state.obj_rotvec)).numpy()
    obj_rot_c = roma.rotmat_to_rotvec(torch.as_tensor(Rc[None] @ Ro)).numpy()
    obj_tr_c = state.obj_transl @ Rc.T + tc
    gt = _gt(seq, obs.frame_ids)
    accuracy: dict = {}
    if gt is not None:
        for name in stage_list:
            if name in stage_states:
                a = accuracy_against_gt(problem, stage_states[name], gt)
                accuracy[name] = {k: _summ(v) for k, v in a.items()}
        final = accuracy_against_gt(problem, state, gt)
        accuracy["final"] = {k: _summ(v) for k, v in final.items()}
    write_consolidated_npz(
        out / "annotation.npz", obs.frame_ids, joints_w @ Rc.T + tc, hand_verts=verts_w @ Rc.T + tc,
        obj_rot=obj_rot_c, obj_trans=obj_tr_c, object_vertices=obj.vertices,
        extra={
            "camera_ids": np.asarray(obs.camera_ids), "world_to_cam0": w2c0,
            "hand_global_orient_world": state.hand_go, "hand_transl_world": state.hand_transl,
            "hand_pose": hand_pose, "hand_anatomical": state.hand_anat, "hand_betas": betas,
            "hand_joints_world": joints_w, "obj_rot_world": state.obj_rotvec, "obj_trans_world": state.obj_transl,
            "residual_names": np.asarray(q["residual_names"]), "residuals": q["residuals"],
            "iou_hand": q["iou_hand"], "iou_object": q["iou_object"], "keypoint_px": q["keypoint_px"],
            "depth_residual_m": q["depth_residual"], "flags": flags, "flag_names": np.asarray(FLAG_NAMES),
        })
    flagged_idx = np.flatnonzero(flags)
    summary = {
        "sequence": str(seq.root), "frames": T, "cameras": obs.camera_ids, "pipeline": "multi" if multi else "single",
        "stages": list(stage_list), "object": obj.name, "hand_model": problem.hand.data.source,
        "betas": betas.tolist(), "flagged_frames": len(flagged_idx),
        "flag_counts": {n: int(((flags >> i) & 1).sum()) for i, n in enumerate(FLAG_NAMES)},
        "flagged": {obs.frame_ids[t]: [n for i, n in enumerate(FLAG_NAMES) if flags[t] >> i & 1]
                    for t in flagged_idx[:200]},
        "quality": {k: _summ(q[k]) for k in ("iou_hand", "iou_object", "keypoint_px", "depth_residual")},
        "stage_info": {k: {kk: vv for kk, vv in v.items() if kk != "candidates"} for k, v in infos.items()},
    }
    if accuracy:
        summary["accuracy"] = accuracy
    try:
        _report(out, seq, problem, state, q, flags, summary, final if gt is not None else None, ov, ho)
    except Exception as exc:  # a report failure must not lose the annotation
        log(f"warning: report not written ({type(exc).__name__}: {exc})")
    return summary


def _report(out: Path, seq, problem: AnnotationProblem, state: SequenceState, q: dict, flags: np.ndarray,
            summary: dict, acc: dict | None, ov, ho) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    obs = problem.obs
    T = obs.num_frames
    show = np.unique(np.linspace(0, T - 1, min(T, 4)).round().astype(int))
    rows = 2 if acc is None else 3
    fig = plt.figure(figsize=(4 * len(show), 3.2 * (rows + 1)))
    gs = fig.add_gridspec(rows + 1, len(show))
    with torch.no_grad():
        outr = problem.renderer.render([SceneMesh(ov[show], problem.object_faces, OBJECT_LABEL),
                                        SceneMesh(ho.vertices[show], problem.hand_faces, HAND_LABEL)],
                                       problem.cameras[:1], silhouettes=False)
    from honnotate.annotate.terms import project_to_cameras

    uv, _ = project_to_cameras(ho.joints[show], problem.K[:1], problem.world_to_cam[:1])
    for j, t in enumerate(show):
        ax = fig.add_subplot(gs[0, j])
        rgb = seq.rgb(obs.camera_ids[0], obs.frame_ids[t]).astype(np.float32) / 255.0
        lab = outr.labels[j, 0].cpu().numpy()
        over = rgb.copy()
        over[lab == HAND_LABEL] = 0.5 * over[lab == HAND_LABEL] + 0.5 * np.array([0.1, 0.9, 0.2])
        over[lab == OBJECT_LABEL] = 0.5 * over[lab == OBJECT_LABEL] + 0.5 * np.array([0.2, 0.3, 1.0])
        ax.imshow(over)
        p = uv[j, 0].cpu().numpy()
        kp = obs.keypoints[t, 0].numpy()
        ok = kp[:, 2] > 0
        ax.scatter(kp[ok, 0], kp[ok, 1], s=8, c="yellow", marker="x", label="cue")
        ax.scatter(p[:, 0], p[:, 1], s=6, c="red", label="annotation")
        ax.set_title(f"frame {obs.frame_ids[t]} cam {obs.camera_ids[0]}" + (" [flagged]" if flags[t] else ""),
                     fontsize=9)
        ax.axis("off")
    x = np.arange(T)
    ax = fig.add_subplot(gs[1, :])
    ax.plot(x, q["iou_hand"], label="IoU hand")
    ax.plot(x, q["iou_object"], label="IoU object")
    ax2 = ax.twinx()
    ax2.plot(x, q["keypoint_px"], "k--", lw=0.8, label="keypoint error (px)")
    ax.set_ylim(0, 1)
    for f in np.flatnonzero(flags):
        ax.axvspan(f - 0.5, f + 0.5, color="red", alpha=0.15, lw=0)
    ax.set_xlabel("frame")
    ax.legend(loc="lower left", fontsize=8)
    ax2.legend(loc="lower right", fontsize=8)
    ax.set_title("per-frame agreement with the cues (red: flagged for review)", fontsize=10)
    if acc is not None:
        ax = fig.add_subplot(gs[2, :])
        ax.plot(x, acc["hand_mpjpe_mm"], label="hand MPJPE (mm)")
        ax.plot(x, acc["object_add_mm"], label="object vertex error (mm)")
        ax.plot(x, acc["object_adds_mm"], ":", label="object ADD-S (mm)")
        ax.set_xlabel("frame")
        ax.legend(fontsize=8)
        ax.set_title("error against the synthetic ground truth", fontsize=10)
    fig.tight_layout()
    fig.savefig(out / "report.png", dpi=90)
    plt.close(fig)
    png = base64.b64encode((out / "report.png").read_bytes()).decode()
    body = [f"<h1>honnotate annotation: {html.escape(str(summary['sequence']))}</h1>",
            f"<p>{summary['frames']} frames, cameras {html.escape(str(summary['cameras']))}, "
            f"{summary['pipeline']}-camera pipeline, {summary['flagged_frames']} frames flagged for review.</p>",
            f'<img src="data:image/png;base64,{png}" style="max-width:100%">']
    if "accuracy" in summary:
        body.append("<h2>Accuracy per stage (synthetic ground truth)</h2><table border=1 cellpadding=4>"
                    "<tr><th>stage</th><th>hand MPJPE mm</th><th>object vertex error mm</th><th>ADD-S mm</th></tr>")
        for k, v in summary["accuracy"].items():
            body.append(f"<tr><td>{k}</td><td>{v['hand_mpjpe_mm']['mean']:.2f}</td>"
                        f"<td>{v['object_add_mm']['mean']:.2f}</td><td>{v['object_adds_mm']['mean']:.2f}</td></tr>")
        body.append("</table>")
    body.append("<h2>Flags</h2><pre>" + html.escape(json.dumps(summary["flag_counts"], indent=1)) + "</pre>")
    (out / "report.html").write_text("<!doctype html><meta charset=utf-8><title>honnotate report</title>"
                                     + "\n".join(body) + "\n")
