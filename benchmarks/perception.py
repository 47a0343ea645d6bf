"""Perception accuracy and speed on held-out generated sequences; trains nothing.

    python benchmarks/perception.py [--weights DIR] [--sequences 20] [--frames 2] [--note TEXT]

Generates captures at 640x480 with seeds, objects and hand shapes other than the training
defaults (seeds 1000+), runs :class:`honnotate.perception.detect.Detector` on every frame and
camera, and compares with the exact ground truth (``ground_truth/segmentation`` and the
projected joints with visibility in ``ground_truth/sequence_gt.npz``): hand IoU, object IoU
(pixels summed over all frames, and the per-frame mean), PCK at 10 px on visible joints, mean
2D error on visible joints (also, in the first keypoint pass, around the network's own hand
mask: with one keypoint crop instead of the test-time augmentation, with crops around the true
hand mask, with the box of the largest hand region instead of the one the detector chooses among
candidate boxes, without the hand box floor from depth; without the second keypoint pass in the
box of the hand mask the wrist cut changed, and with hand pixels far from the held object taken
for forearm, both also hand IoU); hand and object IoU
also with one segmentation pass, not averaged with the mirror image's; hand IoU with the wrist
cut at the true wrist and knuckle, and where the hand IoU is lost: hand predicted on the true
forearm, object or background, the true hand predicted as object or background), a 95% interval of that PCK when the scenes are redrawn (bootstrap over scenes: joints of
one scene are not independent), PCK split by the side of the detector's hand box (a fixed
10-pixel threshold asks a large hand for finer crops), the share of the misses (> 10 px) that land within 10 px of
another joint of the hand (a finger taken for its neighbour: identity, not precision), and the
median wall time per frame (both networks). Then the other held-out sets (``--other-sets``,
``--tuning-sets``) with the detector as shipped and a few variants, a large one
(``--large-sets``, 200 scenes) with the shipped detector alone, all reported sets pooled (the
tuning sets left out), and the detector on captures its networks trained on against unseen ones
made alike (``--seen-captures``: what they memorised of their training scenes). Writes the
section "perception" of BENCHMARKS.md (the shipped weights on the default set; other weights
or sets are only printed). Targets (issue 7, fully trained shipped weights): hand
IoU >= 0.85, object IoU >= 0.90, PCK@10px >= 0.90. The defaults favour scenes over frames per
scene (hand IoU varies much from scene to scene, little between frames of one).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_section  # noqa: E402

OBJECTS = ["mug", "cracker_box", "soup_can", "mustard_bottle", "sphere"]
#: Held-out sets besides the default one (seed base:sequences), each run with the detector as
#: shipped: the targets must hold beyond the 20 scenes of the main table. 9000+ and 9500+ are
#: the tuning sets of the detector's options and of the weights' choice (docs/design.md): listed
#: apart (TUNING_SETS), since figures on them flatter.
OTHER_SETS = "2000:20,7000:40,11000:40"
TUNING_SETS = "9000:40,9500:40"
#: A large held-out set run with the shipped detector alone (no variants: a fifth of the time per
#: frame), so that the pooled rate rests on hundreds of scenes: the sets of 20-40 scenes differ by
#: several hundredths (2026-12-06: 0.888 to 0.920), and 200 scenes pin it within about +-0.016.
LARGE_SETS = "30000:200"
#: Seeds of the training captures (1 frame x 3 cameras, random grasps, the objects in turn by
#: seed) that the shipped segmentation and first two keypoint networks trained on (`runs/armdata` /
#: `runs/armF` of the weights README; the upright keypoint network was fine-tuned from the first on
#: other captures), and of unseen captures made alike: the gap between them is what the networks
#: memorised of their training scenes (a generalisation gap, not a capacity limit).
SEEN_SEED, UNSEEN_SEED = 12000, 41000


def evaluate(weights: Path | None, sequences: int, frames: int, cameras: int, workdir: Path,
             seg_only: bool = False, seed_base: int = 1000, tta: tuple | None = None,
             hand_appearance: str = "uniform", forearm: bool = True, seg_zoom: tuple | None = None) -> dict:
    from honnotate.io.cues import read_segmentation
    from honnotate.io.sequence import open_sequence
    from honnotate.perception.data import with_forearm_labels
    from honnotate.perception.detect import DECODE_SMOOTH_PX, Detector
    from honnotate.perception.networks import FOREARM_CLASS
    from honnotate.synth.generator import SynthConfig, generate_sequence

    opts = {**({"tta": tta} if tta else {}), **({"seg_zoom": seg_zoom} if seg_zoom else {})}
    det = Detector(weights, "cpu", keypoints=not seg_only, **opts)
    plain = None if seg_only else Detector(weights, "cpu", **{**opts, "tta": ((1.0, 0.0),)})  # one keypoint crop
    largest = None if seg_only else Detector(weights, "cpu", choose_box=False, **opts)
    nofloor = None if seg_only else Detector(weights, "cpu", min_box_m=0.0, **opts)
    firstpass = None if seg_only else Detector(weights, "cpu", redetect=False, **opts)  # one keypoint pass, one cut
    gated = None if seg_only else Detector(weights, "cpu", object_gate_m=0.15, **opts)
    dark = None if seg_only else Detector(weights, "cpu", decode_smooth_px=DECODE_SMOOTH_PX, **opts)  # DARK decoding
    first_net = None if seg_only or (det.kp_fine is None and det.kp_upright is None) else \
        Detector(weights, "cpu", fine_keypoints=False, upright_keypoints=False, **opts)
    # without the upright keypoint network (keypoints_upright.pt), the others as shipped
    no_upright = None if seg_only or det.kp_upright is None else Detector(weights, "cpu", upright_keypoints=False, **opts)
    onepass = Detector(weights, "cpu", keypoints=not seg_only, **{**opts, "seg_flip": False, "seg_zoom": (1.0,)})
    halfsize = Detector(weights, "cpu", keypoints=not seg_only, **{**opts, "seg_zoom": (0.5, 1.0)})
    flip_off = np.zeros((2, 2))  # hand, object: intersection, union with one segmentation pass
    size_off = np.zeros((2, 2))  # ... with a half-size input added, mirror averaged
    inter = np.zeros(3)
    union = np.zeros(3)
    hand_uncut = np.zeros(2)  # hand intersection, union without the wrist cut
    hand_cut_true = np.zeros(2)  # ... with the cut at the true wrist and knuckle
    # where the hand IoU is lost: predicted hand on true forearm / object / other background;
    # true hand predicted as object / as background or forearm
    hand_lost = dict.fromkeys(("fp_forearm", "fp_object", "fp_background", "fn_object", "fn_background"), 0)
    per_frame_iou: dict[int, list[float]] = {1: [], 2: []}
    errors, errors_gt_box, errors_plain, errors_largest, errors_nofloor, errors_firstpass, times = [], [], [], [], [], [], []
    errors_gated, hand_gated = [], np.zeros(2)  # with the object gate: keypoint errors, hand intersection and union
    errors_dark = []  # the distribution-aware decoding instead of the per-axis parabola
    errors_first_net = []  # the first keypoint network alone (no second, finer network, no upright one)
    errors_no_upright = []  # without the upright keypoint network
    errors_hidden = []  # joints hidden in the frame (behind the object, the hand itself or out of view)
    hand_firstpass = np.zeros(2)  # hand intersection, union with one keypoint pass and one cut
    frame_visible_nofloor: list[int] = []
    misses = on_other_joint = 0
    scene_of: list[int] = []  # the scene of each entry of `errors`
    box_side: list[float] = []  # the detector's hand box side (pixels; nan: none) of each entry's frame
    frame_visible: list[int] = []  # the number of visible joints of its frame
    for k in range(sequences):
        out = workdir / f"heldout_{k}"
        generate_sequence(out, SynthConfig(frames=frames, cameras=cameras, object=OBJECTS[k % len(OBJECTS)],
                                           seed=seed_base + k, grasp="random", hand_appearance=hand_appearance,
                                           forearm=forearm))
        seq = open_sequence(out)
        gt = np.load(out / "ground_truth" / "sequence_gt.npz")
        for c, cam in enumerate(seq.camera_ids):
            for t, frame in enumerate(seq.frame_ids):
                rgb = seq.rgb(cam, frame)
                depth, fx = seq.depth(cam, frame), float(seq.calibration(cam).K[0, 0])
                t0 = time.perf_counter()
                d = det(rgb, depth, fx)
                times.append(time.perf_counter() - t0)
                labels = read_segmentation(out / "ground_truth" / "segmentation" / cam / f"{frame}.png")
                true_labels = with_forearm_labels(labels, out / "ground_truth" / "forearm" / cam / f"{frame}.png", forearm)
                pred_hand, true_hand = d.labels == 2, labels == 2
                hand_lost["fp_forearm"] += int(np.sum(pred_hand & (true_labels == FOREARM_CLASS)))
                hand_lost["fp_object"] += int(np.sum(pred_hand & (labels == 1)))
                hand_lost["fp_background"] += int(np.sum(pred_hand & (true_labels == 0)))
                hand_lost["fn_object"] += int(np.sum(true_hand & (d.labels == 1)))
                hand_lost["fn_background"] += int(np.sum(true_hand & (d.labels == 0)))
                for cls in (1, 2):
                    i = np.sum((d.labels == cls) & (labels == cls))
                    u = np.sum((d.labels == cls) | (labels == cls))
                    inter[cls] += i
                    union[cls] += u
                    if u:
                        per_frame_iou[cls].append(i / u)
                classes = det.segment_classes(rgb, depth)
                # the network's own hand mask, before the wrist cut: what the detector's first
                # keypoint pass crops around, so the rows below change one thing each (before
                # 2026-12-05 they cropped around the cut mask, d.labels: a second pass in effect)
                uncut = det.cue_labels(classes)
                raw = classes == 2 if det.cut_wrist else d.labels == 2
                kp_true = gt["keypoints2d"][t, c].astype(np.float64)
                kp_true[:, 2] = 1.0  # every joint, hidden ones too, fully confident
                cut_true = det.cut_at_wrist(classes, kp_true) == 2
                hand_cut_true += [np.sum(cut_true & (labels == 2)), np.sum(cut_true | (labels == 2))]
                d1 = onepass(rgb, depth, fx)
                d2 = halfsize(rgb, depth, fx)
                for row, cls in enumerate((2, 1)):
                    flip_off[row] += [np.sum((d1.labels == cls) & (labels == cls)), np.sum((d1.labels == cls) | (labels == cls))]
                    size_off[row] += [np.sum((d2.labels == cls) & (labels == cls)), np.sum((d2.labels == cls) | (labels == cls))]
                hand_uncut += [np.sum(raw & (labels == 2)), np.sum(raw | (labels == 2))]
                kp_gt = gt["keypoints2d"][t, c]
                vis = kp_gt[:, 2] > 0
                err = np.linalg.norm(d.keypoints[:, :2] - kp_gt[:, :2], axis=1)
                errors.extend(err[vis].tolist())
                errors_hidden.extend(err[~vis].tolist())
                scene_of.extend([k] * int(vis.sum()))
                box_side.extend([float(d.box[2]) if d.box is not None else float("nan")] * int(vis.sum()))
                frame_visible.extend([int(vis.sum())] * int(vis.sum()))
                for j in np.flatnonzero(vis & (err > 10)):
                    misses += 1
                    others = np.delete(kp_gt[:, :2], j, axis=0)  # every other joint, hidden ones too
                    on_other_joint += int(np.min(np.linalg.norm(others - d.keypoints[j, :2], axis=1)) <= 10)
                if not seg_only:  # the keypoint network alone: crops around the true hand mask
                    kp_box, _ = largest.keypoints(rgb, labels, depth, fx)  # the true mask's box, no choice
                    errors_gt_box.extend(np.linalg.norm(kp_box[vis, :2] - kp_gt[vis, :2], axis=1).tolist())
                    kp_plain, _ = plain.keypoints(rgb, uncut, depth, fx)
                    errors_plain.extend(np.linalg.norm(kp_plain[vis, :2] - kp_gt[vis, :2], axis=1).tolist())
                    kp_largest, _ = largest.keypoints(rgb, uncut, depth, fx)
                    errors_largest.extend(np.linalg.norm(kp_largest[vis, :2] - kp_gt[vis, :2], axis=1).tolist())
                    kp_nofloor, _ = nofloor.keypoints(rgb, uncut, depth, fx)
                    errors_nofloor.extend(np.linalg.norm(kp_nofloor[vis, :2] - kp_gt[vis, :2], axis=1).tolist())
                    frame_visible_nofloor.extend([int(vis.sum())] * int(vis.sum()))
                    d_first = firstpass(rgb, depth, fx)
                    errors_firstpass.extend(np.linalg.norm(d_first.keypoints[vis, :2] - kp_gt[vis, :2], axis=1).tolist())
                    hand_firstpass += [np.sum((d_first.labels == 2) & (labels == 2)),
                                       np.sum((d_first.labels == 2) | (labels == 2))]
                    dg = gated(rgb, depth, fx)
                    errors_gated.extend(np.linalg.norm(dg.keypoints[vis, :2] - kp_gt[vis, :2], axis=1).tolist())
                    hand_gated += [np.sum((dg.labels == 2) & (labels == 2)), np.sum((dg.labels == 2) | (labels == 2))]
                    dp = dark(rgb, depth, fx)
                    errors_dark.extend(np.linalg.norm(dp.keypoints[vis, :2] - kp_gt[vis, :2], axis=1).tolist())
                    if first_net is not None:
                        d1n = first_net(rgb, depth, fx)
                        errors_first_net.extend(np.linalg.norm(d1n.keypoints[vis, :2] - kp_gt[vis, :2], axis=1).tolist())
                    if no_upright is not None:
                        dnu = no_upright(rgb, depth, fx)
                        errors_no_upright.extend(np.linalg.norm(dnu.keypoints[vis, :2] - kp_gt[vis, :2], axis=1).tolist())
    errors = np.asarray(errors)
    lo, hi = scene_bootstrap(errors <= 10, np.asarray(scene_of, dtype=int))
    by_vis = pck_by_frame_visibility(errors, np.asarray(frame_visible, dtype=int))
    return {
        "images": len(times), "hand_iou": inter[2] / max(union[2], 1), "object_iou": inter[1] / max(union[1], 1),
        "hand_iou_uncut": hand_uncut[0] / max(hand_uncut[1], 1),
        "hand_iou_cut_true": hand_cut_true[0] / max(hand_cut_true[1], 1),
        "hand_lost": {k: v / max(union[2], 1) for k, v in hand_lost.items()},
        "hand_iou_noflip": flip_off[0, 0] / max(flip_off[0, 1], 1), "object_iou_noflip": flip_off[1, 0] / max(flip_off[1, 1], 1),
        "hand_iou_halfsize": size_off[0, 0] / max(size_off[0, 1], 1), "object_iou_halfsize": size_off[1, 0] / max(size_off[1, 1], 1),
        "hand_iou_frame": float(np.mean(per_frame_iou[2])) if per_frame_iou[2] else float("nan"),
        "object_iou_frame": float(np.mean(per_frame_iou[1])) if per_frame_iou[1] else float("nan"),
        "pck10": float(np.mean(errors <= 10)) if errors.size else float("nan"),
        "mean_err": float(np.mean(errors)) if errors.size else float("nan"), "joints": int(errors.size),
        "pck10_ci": (lo, hi), "hits": errors <= 10, "scene": np.asarray(scene_of, dtype=int), "pck10_by_vis": by_vis, "pck10_by_box": pck_by_box_side(errors <= 10, np.asarray(box_side)),
        "misses": misses, "misses_on_other_joint": on_other_joint,
        "pck10_gt_box": float(np.mean(np.asarray(errors_gt_box) <= 10)) if errors_gt_box else float("nan"),
        "pck10_plain": float(np.mean(np.asarray(errors_plain) <= 10)) if errors_plain else float("nan"),
        "pck10_largest": float(np.mean(np.asarray(errors_largest) <= 10)) if errors_largest else float("nan"),
        "pck10_nofloor": float(np.mean(np.asarray(errors_nofloor) <= 10)) if errors_nofloor else float("nan"),
        "pck10_firstpass": float(np.mean(np.asarray(errors_firstpass) <= 10)) if errors_firstpass else float("nan"),
        "hand_iou_firstpass": hand_firstpass[0] / max(hand_firstpass[1], 1),
        "pck10_gated": float(np.mean(np.asarray(errors_gated) <= 10)) if errors_gated else float("nan"),
        "hand_iou_gated": hand_gated[0] / max(hand_gated[1], 1),
        "pck10_dark": float(np.mean(np.asarray(errors_dark) <= 10)) if errors_dark else float("nan"),
        "pck10_hidden": float(np.mean(np.asarray(errors_hidden) <= 10)) if errors_hidden else float("nan"),
        "median_err_hidden": float(np.median(errors_hidden)) if errors_hidden else float("nan"),
        "joints_hidden": len(errors_hidden),
        "pck10_first_net": float(np.mean(np.asarray(errors_first_net) <= 10)) if errors_first_net else None,
        "pck10_no_upright": float(np.mean(np.asarray(errors_no_upright) <= 10)) if errors_no_upright else None,
        "pck10_nofloor_by_vis": pck_by_frame_visibility(np.asarray(errors_nofloor), np.asarray(frame_visible_nofloor, dtype=int)),
        "tta": det.tta,
        "ms_per_frame": 1e3 * float(np.median(times)), "seg_input": det.seg_sizes, "seg_input_halfsize": halfsize.seg_sizes, "seg_flip": det.seg_flip, "crop": det.crop_size,
        "fine_crop": det.fine_crop_size, "upright_crop": det.upright_crop_size, "upright_weight": det.upright_weight,
        "train_seg": det.seg_info.get("train", {}), "train_kp": det.kp_info.get("train", {}),
    }


def evaluate_fusion(weights: Path | None, sequences: int, cameras: int, workdir: Path, seed_base: int,
                    tta: tuple | None = None, forearm: bool = True) -> dict:
    """Single-view and multi-view-fused keypoints (:func:`honnotate.perception.multiview.fuse_views`,
    what ``honnotate detect`` writes by default with 3 or more calibrated cameras) on ``sequences`` captures of 1 frame x
    ``cameras`` calibrated cameras: PCK@10px on visible joints and on all joints (hidden ones
    too: what the annotation fits), the share of keypoints replaced, a scene-bootstrap interval."""
    from honnotate.io.sequence import open_sequence
    from honnotate.perception.detect import Detector
    from honnotate.perception.multiview import fuse_views
    from honnotate.synth.generator import SynthConfig, generate_sequence

    det = Detector(weights, "cpu", **({"tta": tta} if tta else {}))
    err_single, err_fused, visible, scene, replaced = [], [], [], [], 0
    for k in range(sequences):
        out = workdir / f"fusion_{k}"
        generate_sequence(out, SynthConfig(frames=1, cameras=cameras, object=OBJECTS[k % len(OBJECTS)],
                                           seed=seed_base + k, grasp="random", forearm=forearm), contact_sheet=False)
        seq = open_sequence(out)
        gt = np.load(out / "ground_truth" / "sequence_gt.npz")["keypoints2d"][0]  # (C, 21, 3)
        frame = seq.frame_ids[0]
        calib = [seq.calibration(cam) for cam in seq.camera_ids]
        kp = np.stack([det(seq.rgb(cam, frame), seq.depth(cam, frame), float(cb.K[0, 0])).keypoints
                       for cam, cb in zip(seq.camera_ids, calib, strict=True)])  # (C, 21, 3)
        fused, rep = fuse_views(torch.from_numpy(kp)[None], torch.from_numpy(np.stack([c.K for c in calib])),
                                torch.from_numpy(np.stack([np.linalg.inv(c.cam_to_world) for c in calib])))
        err_single.append(np.linalg.norm(kp[..., :2] - gt[..., :2], axis=-1))
        err_fused.append(np.linalg.norm(fused[0, ..., :2].numpy() - gt[..., :2], axis=-1))
        visible.append(gt[..., 2] > 0)
        scene.append(np.full(gt.shape[:2], k))
        replaced += int(rep.sum())
    e1, e2, vis, sc = (np.stack(x) for x in (err_single, err_fused, visible, scene))
    return {"joints": int(vis.sum()), "keypoints": int(vis.size), "replaced": replaced,
            "pck_single": float(np.mean(e1[vis] <= 10)), "pck_fused": float(np.mean(e2[vis] <= 10)),
            "pck_single_all": float(np.mean(e1 <= 10)), "pck_fused_all": float(np.mean(e2 <= 10)),
            "ci_fused": scene_bootstrap(e2[vis] <= 10, sc[vis])}


def evaluate_sets(weights: Path | None, sets: list[tuple[int, int]], frames: int, workdir: Path,
                  tta: tuple | None = None, seg_zoom: tuple | None = None, forearm: bool = True,
                  rgb_fallback: bool = True, variants: bool = True) -> list[dict]:
    """The detector as shipped (its defaults, no variants) on other held-out sets: for each
    ``(seed_base, sequences)`` set of ``sequences`` generated captures of ``frames`` frames x 1
    camera (made as :func:`evaluate` makes its own), hand IoU, object IoU (pixels summed), PCK@10px
    on visible joints with its scene-bootstrap interval; the same figures with a far wall drawn
    into every frame's unmeasured background (:func:`honnotate.perception.data.far_wall`: a real
    sensor sees a wall where the generated captures measure nothing, so RGB-D segmentation must
    not learn "unmeasured = background") and with no depth map at all (an RGB-only user: no depth
    input, no hand box floor; ``rgb_fallback``: see :class:`~honnotate.perception.detect.Detector`).
    Whether a target holds on one set of 20-40 scenes says little:
    which scenes are drawn moves these figures by several hundredths. ``variants=False``: the
    shipped detector alone (no far wall, no RGB-only run, no other decoding or network; those
    entries of the rows are None), for large sets."""
    from honnotate.evaluate.cues import keypoint_hits, label_iou
    from honnotate.io.cues import read_segmentation
    from honnotate.io.sequence import open_sequence
    from honnotate.perception.data import far_wall
    from honnotate.perception.detect import DECODE_SMOOTH_PX, Detector
    from honnotate.synth.generator import SynthConfig, generate_sequence

    opts = {"rgb_fallback": rgb_fallback, **({"tta": tta} if tta else {}), **({"seg_zoom": seg_zoom} if seg_zoom else {})}
    det = Detector(weights, "cpu", **opts)
    dark = Detector(weights, "cpu", decode_smooth_px=DECODE_SMOOTH_PX, **opts) if variants else None  # DARK decoding
    first_net = None if (det.kp_fine is None and det.kp_upright is None) or not variants else \
        Detector(weights, "cpu", fine_keypoints=False, upright_keypoints=False, **opts)
    no_upright = None if det.kp_upright is None or not variants else Detector(weights, "cpu", upright_keypoints=False, **opts)
    out_rows = []
    for seed_base, sequences in sets:
        pred, true, hits, scene = [], [], [], []  # label maps of every frame; hits of visible joints
        side = []  # the detector's hand box side of each hit's frame (pixels; nan: none)
        alt = {"wall": ([], []), "rgb": ([], [])}  # label maps, hits: far wall drawn; no depth map
        hits_dark = []  # the distribution-aware decoding (decode_smooth_px=DECODE_SMOOTH_PX)
        hits_first = []  # the first keypoint network alone (fine_keypoints=False, upright_keypoints=False)
        hits_no_upright = []  # without the upright keypoint network (upright_keypoints=False)
        for k in range(sequences):
            out = workdir / f"set{seed_base}_{k}"
            generate_sequence(out, SynthConfig(frames=frames, cameras=1, object=OBJECTS[k % len(OBJECTS)],
                                               seed=seed_base + k, grasp="random", forearm=forearm), contact_sheet=False)
            seq = open_sequence(out)
            gt = np.load(out / "ground_truth" / "sequence_gt.npz")["keypoints2d"]
            cam = seq.camera_ids[0]
            K = seq.calibration(cam).K
            for t, frame in enumerate(seq.frame_ids):
                rgb, depth, fx = seq.rgb(cam, frame), seq.depth(cam, frame), float(K[0, 0])
                labels = read_segmentation(out / "ground_truth" / "segmentation" / cam / f"{frame}.png")
                true.append(labels)
                vis = gt[t, 0, :, 2] > 0
                scene.extend([k] * int(vis.sum()))
                runs = [((pred, hits), (depth, fx))]
                if variants:  # the far wall drawn; no depth map
                    walled = far_wall(depth, (labels == 0) & ~(depth > 0), float(K[0, 2]), float(K[1, 2]),
                                      np.random.default_rng([seed_base, k, t]), prob=1.0)
                    runs += [(alt["wall"], (walled, fx)), (alt["rgb"], (None, None))]
                for (maps, hit), (dep, f) in runs:
                    d = det(rgb, dep, f)
                    maps.append(d.labels)
                    hit.extend(keypoint_hits(d.keypoints, gt[t, 0], 10.0)[1][vis].tolist())
                    if maps is pred:
                        side.extend([float(d.box[2]) if d.box is not None else float("nan")] * int(vis.sum()))
                if dark is not None:
                    d = dark(rgb, depth, fx)
                    hits_dark.extend(keypoint_hits(d.keypoints, gt[t, 0], 10.0)[1][vis].tolist())
                if first_net is not None:
                    d = first_net(rgb, depth, fx)
                    hits_first.extend(keypoint_hits(d.keypoints, gt[t, 0], 10.0)[1][vis].tolist())
                if no_upright is not None:
                    d = no_upright(rgb, depth, fx)
                    hits_no_upright.extend(keypoint_hits(d.keypoints, gt[t, 0], 10.0)[1][vis].tolist())
            shutil.rmtree(out, ignore_errors=True)
        true_a, scene_a = np.stack(true), np.asarray(scene, dtype=int)
        row = {"seed_base": seed_base, "sequences": sequences, "rgb_fallback": det.seg_rgb is not None}
        for key, (maps, hit) in (("", (pred, hits)), ("wall_", alt["wall"]), ("rgb_", alt["rgb"])):
            if not maps:  # a variant not run
                row.update({f"{key}hand_iou": None, f"{key}object_iou": None, f"{key}pck10": None})
                continue
            hits_a, pred_a = np.asarray(hit, dtype=bool), np.stack(maps)
            row.update({f"{key}hand_iou": label_iou(pred_a, true_a, 2), f"{key}object_iou": label_iou(pred_a, true_a, 1),
                        f"{key}pck10": float(hits_a.mean()) if hits_a.size else float("nan")})
            if not key:
                row.update({"joints": int(hits_a.size), "ci": scene_bootstrap(hits_a, scene_a), "hits": hits_a,
                            "scene": scene_a,
                            "by_box": pck_by_box_side(hits_a, np.asarray(side)),
                            "dark_pck10": float(np.mean(hits_dark)) if hits_dark else None,
                            "first_net_pck10": float(np.mean(hits_first)) if hits_first else None,
                            "no_upright_pck10": float(np.mean(hits_no_upright)) if hits_no_upright else None})
        out_rows.append(row)
    return out_rows


def evaluate_seen(weights: Path | None, count: int, workdir: Path) -> dict:
    """PCK@10px of the shipped detector on ``count`` captures the networks trained on (seeds
    :data:`SEEN_SEED` on, remade by the training data's command: ``honnotate synth --count
    --seed 12000 --frames 1 --cameras 3 --grasp random --object`` the five objects) and on as
    many unseen captures made alike (seeds :data:`UNSEEN_SEED` on), every view. Returns
    {"seen", "unseen": {"pck", "joints", "ci"}} (interval over captures) and "diff_ci", the
    interval of seen minus unseen (:func:`difference_bootstrap`)."""
    from honnotate.evaluate.cues import keypoint_hits
    from honnotate.io.sequence import open_sequence
    from honnotate.perception.detect import Detector
    from honnotate.synth.batch import generate_batch
    from honnotate.synth.generator import SynthConfig

    det = Detector(weights, "cpu")
    out: dict = {}
    samples = []
    for key, seed in (("seen", SEEN_SEED), ("unseen", UNSEEN_SEED)):
        folder = workdir / f"{key}_captures"
        cfg = SynthConfig(frames=1, cameras=3, object=OBJECTS[seed % len(OBJECTS)], seed=seed, grasp="random")
        result = generate_batch(folder, cfg, count, objects=OBJECTS)
        if result.failed:
            raise RuntimeError(f"captures {result.failed} of {folder} failed")
        hits, scene = [], []
        for k in range(count):
            seq = open_sequence(folder / f"s{seed + k}")
            gt = np.load(folder / f"s{seed + k}" / "ground_truth" / "sequence_gt.npz")["keypoints2d"]
            for c, cam in enumerate(seq.camera_ids):
                K = seq.calibration(cam).K
                for t, frame in enumerate(seq.frame_ids):
                    d = det(seq.rgb(cam, frame), seq.depth(cam, frame), float(K[0, 0]))
                    vis = gt[t, c, :, 2] > 0
                    hits.extend(keypoint_hits(d.keypoints, gt[t, c], 10.0)[1][vis].tolist())
                    scene.extend([k] * int(vis.sum()))
        shutil.rmtree(folder, ignore_errors=True)
        h, sc = np.asarray(hits, dtype=bool), np.asarray(scene, dtype=int)
        out[key] = {"pck": float(h.mean()) if h.size else float("nan"), "joints": int(h.size),
                    "ci": scene_bootstrap(h, sc)}
        samples += [h, sc]
    out["diff_ci"] = difference_bootstrap(*samples)
    return out


def parse_sets(text: str) -> list[tuple[int, int]]:
    """"2000:20,7000:40" -> [(2000, 20), (7000, 40)] (seed base, sequences); "" -> []."""
    sets = []
    for item in filter(None, (x.strip() for x in text.split(","))):
        base, _, n = item.partition(":")
        try:
            sets.append((int(base), int(n) if n else 20))
        except ValueError:
            raise ValueError(f"--other-sets lists SEED:SEQUENCES pairs such as 2000:20,7000:40, got {item!r}") from None
        if sets[-1][1] < 1:
            raise ValueError(f"--other-sets: a set needs at least 1 sequence, got {item!r}")
    return sets


def pck_by_frame_visibility(errors: np.ndarray, frame_visible: np.ndarray, split: int = 10,
                            threshold: float = 10.0) -> dict[str, tuple[float, int]]:
    """PCK of the joints of well-seen frames and of the others: errors (N,) pixels of visible
    joints, frame_visible (N,) the number of visible joints of each joint's frame (and camera).
    Returns {"more": (PCK, joints) of frames with more than ``split`` visible joints, "at_most":
    those with at most ``split``} (PCK nan where no joint)."""
    out = {}
    for key, m in (("more", frame_visible > split), ("at_most", frame_visible <= split)):
        out[key] = (float(np.mean(errors[m] <= threshold)) if m.any() else float("nan"), int(m.sum()))
    return out


#: Hand box sides (pixels, the detector's crop box before its margin) splitting the joints of
#: :func:`pck_by_box_side`: a 10-pixel threshold asks a large hand for more crop resolution.
BOX_SIDE_EDGES = (150.0, 200.0)


def pck_by_box_side(hits: np.ndarray, side: np.ndarray, edges: tuple[float, ...] = BOX_SIDE_EDGES) -> list[tuple[float, int]]:
    """PCK of the joints by the side of their frame's hand box: hits (N,) bool per visible joint,
    side (N,) the detector's hand box side in pixels for each joint's frame (nan: no box).
    Returns (PCK, joints) for sides below ``edges[0]``, between consecutive edges, and from the last
    edge on (PCK nan where no joint; joints of frames without a box are in no bin)."""
    hits, side = np.asarray(hits, dtype=bool), np.asarray(side, dtype=float)
    bounds = (-np.inf, *edges, np.inf)
    out = []
    for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
        m = (side >= lo) & (side < hi)
        out.append((float(hits[m].mean()) if m.any() else float("nan"), int(m.sum())))
    return out


def box_side_text(bins: list[tuple[float, int]]) -> str:
    """"0.912 (120); 0.874 (300); 0.801 (90)": each bin's PCK and joints, as :func:`pck_by_box_side`."""
    return "; ".join(f"{p:.3f} ({n})" for p, n in bins)


def pool_sets(parts: list[tuple[np.ndarray, np.ndarray]]) -> dict:
    """Several held-out sets as one sample: ``parts`` lists each set's (hits (N,) bool per
    visible joint, scene (N,) int scene of each joint, numbered within its set). Returns
    {"pck": rate of all joints, "joints", "scenes": distinct scenes, "ci": :func:`scene_bootstrap`
    over the scenes of all sets (each set's scenes kept apart)}. The sets are draws of one
    generator with other seeds, so together they pin the detector's rate closer than any one."""
    hits, scene, offset = [], [], 0
    for h, sc in parts:
        h, sc = np.asarray(h, dtype=bool), np.asarray(sc, dtype=int)
        if h.shape != sc.shape:
            raise ValueError(f"hits {h.shape} and scenes {sc.shape} differ")
        if h.size:
            hits.append(h)
            scene.append(sc - sc.min() + offset)
            offset += int(sc.max() - sc.min()) + 1
    if not hits:
        return {"pck": float("nan"), "joints": 0, "scenes": 0, "ci": (float("nan"), float("nan"))}
    h, sc = np.concatenate(hits), np.concatenate(scene)
    return {"pck": float(h.mean()), "joints": int(h.size), "scenes": int(np.unique(sc).size), "ci": scene_bootstrap(h, sc)}


def scene_bootstrap(hits: np.ndarray, scene: np.ndarray, draws: int = 2000, seed: int = 0) -> tuple[float, float]:
    """95% interval of a joint-level rate (e.g. PCK) under a redraw of the scenes: ``draws``
    resamples of the scenes with replacement, each scene with all its joints (joints of one
    scene are not independent: the scene draw moves the rate more than the joint count
    suggests). hits: (N,) bool per joint; scene: (N,) int scene of each joint."""
    if hits.size == 0:
        return float("nan"), float("nan")
    rates = _redrawn_rates(hits, scene, draws, np.random.default_rng(seed))
    return float(np.percentile(rates, 2.5)), float(np.percentile(rates, 97.5))


def _redrawn_rates(hits: np.ndarray, scene: np.ndarray, draws: int, rng: np.random.Generator) -> np.ndarray:
    """(draws,) rates of ``hits`` with its scenes redrawn with replacement, each with all its joints."""
    ids = np.unique(scene)
    n_hit = np.array([hits[scene == i].sum() for i in ids], dtype=np.float64)
    n_all = np.array([(scene == i).sum() for i in ids], dtype=np.float64)
    pick = rng.integers(0, len(ids), (draws, len(ids)))
    return n_hit[pick].sum(1) / np.maximum(n_all[pick].sum(1), 1)


def difference_bootstrap(hits_a: np.ndarray, scene_a: np.ndarray, hits_b: np.ndarray, scene_b: np.ndarray,
                         draws: int = 2000, seed: int = 0) -> tuple[float, float]:
    """95% interval of rate(a) - rate(b) of two independent samples of scenes: each redraw takes
    the scenes of a and, apart, those of b with replacement (each scene with all its joints; see
    :func:`scene_bootstrap`). hits_*: (N,) bool per joint; scene_*: (N,) int scene of each joint.
    Whether two rates differ beyond chance is whether this interval excludes 0 (two separate
    intervals that overlap do not say they do not)."""
    if hits_a.size == 0 or hits_b.size == 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    diff = _redrawn_rates(hits_a, scene_a, draws, rng) - _redrawn_rates(hits_b, scene_b, draws, rng)
    return float(np.percentile(diff, 2.5)), float(np.percentile(diff, 97.5))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", type=Path, default=None,
                    help="weights folder (default: the shipped weights; other weights: only printed)")
    ap.add_argument("--sequences", type=int, default=20)
    ap.add_argument("--frames", type=int, default=2)
    ap.add_argument("--cameras", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads (the issue asks for 2 cores)")
    ap.add_argument("--note", default="", help="text put at the top of the section (e.g. which weights)")
    ap.add_argument("--seed-base", type=int, default=1000,
                    help="seed of the first held-out sequence (another base: another held-out set; only printed)")
    ap.add_argument("--tta", default=None,
                    help="keypoint crops as scale/degrees pairs, e.g. 1/0,0.87/0,1.15/0 (default: the Detector's; "
                         "another: only printed)")
    ap.add_argument("--seg-zoom", default=None,
                    help="segmentation input sizes as multiples of the trained one, e.g. 0.5,1 (default: the "
                         "Detector's; another: only printed)")
    ap.add_argument("--hand-appearance", default="uniform", choices=("uniform", "anatomical"),
                    help="held-out hands of one skin tone or with palm and nails (anatomical: only printed)")
    ap.add_argument("--no-forearm", action="store_true",
                    help="held-out captures without the forearm (those of before 2026-12-04; only printed)")
    ap.add_argument("--fusion-sequences", type=int, default=20,
                    help="captures of 1 frame x --fusion-cameras cameras (seeds --seed-base + 500 on) for the "
                         "multi-view fusion rows (0: none)")
    ap.add_argument("--fusion-cameras", type=int, default=5)
    ap.add_argument("--other-sets", default=OTHER_SETS,
                    help="other held-out sets, SEED:SEQUENCES pairs, on which the detector runs as shipped (no "
                         f"variants) for a second table (default {OTHER_SETS}; '' for none)")
    ap.add_argument("--tuning-sets", default=TUNING_SETS,
                    help=f"the sets the detector's options and the shipped weights were chosen on, SEED:SEQUENCES "
                         f"pairs, reported apart in the same table (default {TUNING_SETS}; '' for none)")
    ap.add_argument("--large-sets", default=LARGE_SETS,
                    help="large held-out sets, SEED:SEQUENCES pairs, run with the shipped detector alone (no "
                         f"variants) in the same table and pooled with the others (default {LARGE_SETS}; '' for none)")
    ap.add_argument("--seen-captures", type=int, default=40,
                    help="training captures remade (seeds 12000 on) and as many unseen ones made alike (seeds 41000 "
                         "on), 1 frame x 3 cameras each, for the rows of seen against unseen scenes (0: none)")
    ap.add_argument("--no-rgb-fallback", action="store_true",
                    help="in the second table's column 'no depth map', run the RGB-D segmentation on an unmeasured "
                         "map instead of the RGB network beside it (segmentation_rgb.pt; only printed)")
    ap.add_argument("--seg-only", action="store_true",
                    help="evaluate the segmentation network alone and only print (a training run's progress)")
    args = ap.parse_args()
    tta = None
    if args.tta:
        try:
            tta = tuple((float(scale), float(deg)) for scale, deg in (pair.split("/") for pair in args.tta.split(",")))
        except ValueError:
            ap.error(f"--tta must list scale/degrees pairs such as 1/0,0.87/0, got {args.tta!r}")
    from honnotate.perception.detect import DECODE_SMOOTH_PX, parse_seg_zoom

    seg_zoom = None
    if args.seg_zoom:
        try:
            seg_zoom = parse_seg_zoom(args.seg_zoom)
        except ValueError as exc:
            ap.error(str(exc))
    try:
        other_sets = [] if args.seg_only else parse_sets(args.other_sets)
        tuning_sets = [] if args.seg_only else parse_sets(args.tuning_sets)
        large_sets = [] if args.seg_only else parse_sets(args.large_sets)
    except ValueError as exc:
        ap.error(str(exc))
    torch.set_num_threads(args.threads)
    from honnotate.perception.weights import KP_FINE_FILE, KP_UPRIGHT_FILE, WeightsError

    try:
        with tempfile.TemporaryDirectory(prefix="honnotate-perception-bench-") as tmp:
            r = evaluate(args.weights, args.sequences, args.frames, args.cameras, Path(tmp), args.seg_only,
                         args.seed_base, tta, args.hand_appearance, not args.no_forearm, seg_zoom)
            fu = None if args.seg_only or args.fusion_sequences <= 0 else evaluate_fusion(
                args.weights, args.fusion_sequences, args.fusion_cameras, Path(tmp), args.seed_base + 500, tta,
                not args.no_forearm)
            others = evaluate_sets(args.weights, other_sets, args.frames, Path(tmp), tta, seg_zoom, not args.no_forearm,
                                   not args.no_rgb_fallback)
            tuning = evaluate_sets(args.weights, tuning_sets, args.frames, Path(tmp), tta, seg_zoom, not args.no_forearm,
                                   not args.no_rgb_fallback)
            large = evaluate_sets(args.weights, large_sets, args.frames, Path(tmp), tta, seg_zoom, not args.no_forearm,
                                  variants=False)
            seen = None if args.seg_only or args.seen_captures <= 0 else evaluate_seen(
                args.weights, args.seen_captures, Path(tmp))
    except WeightsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    def ok(v: float, target: float) -> str:
        return "met" if v >= target else "not met"

    ts, tk, lost = r["train_seg"], r["train_kp"], r["hand_lost"]
    upright_text = (f", then the upright keypoint network's of those squares turned by the hand orientation so found, at "
                    f"{r['upright_crop']} px, weight {r['upright_weight']:.2f}" if r["upright_crop"] else "")
    body = (
        (f"{args.note}\n\n" if args.note else "")
        + f"Weights: `{args.weights or 'shipped'}` (segmentation: {ts.get('steps')} steps, batch {ts.get('batch')}; "
        f"keypoints: {tk.get('steps')} steps, batch {tk.get('batch')}). Held-out generated sequences: "
        f"{args.sequences} x {args.frames} frames x {args.cameras} camera(s) at 640x480 (seeds {args.seed_base}+, objects "
        f"{', '.join(OBJECTS[k % len(OBJECTS)] for k in range(args.sequences))}, random grasps and hand shapes, hands {args.hand_appearance}, {'no forearm' if args.no_forearm else 'with a forearm, bare or sleeved'}); "
        f"segmentation input {', '.join(f'{w}x{h}' for w, h in r['seg_input'])}"
        f"{' (each with the mirror image)' if r['seg_flip'] else ''}"
        f"{', logits averaged' if r['seg_flip'] or len(r['seg_input']) > 1 else ''}, keypoint crop {r['crop']} px"
        f"{f' and the second keypoint network the same squares at {fc} px' if (fc := r['fine_crop']) else ''}, heatmaps of "
        f"{len(r['tta'])} crops{' each' if r['fine_crop'] else ''} averaged"
        f"{upright_text} (scale, degrees: {', '.join(f'{a:g}/{b:g}' for a, b in r['tta'])}); "
        f"torch {args.threads} threads. Command: `python benchmarks/perception.py"
        f"{' --weights ' + str(args.weights) if args.weights else ''} --sequences {args.sequences} --frames {args.frames}`.\n\n"
        "| metric | value | target (issue 7) |\n|---|---|---|\n"
        f"| hand IoU (all pixels; per-frame mean) | {r['hand_iou']:.3f} ({r['hand_iou_frame']:.3f}) | >= 0.85 ({ok(r['hand_iou'], 0.85)}) |\n"
        f"| hand IoU without the wrist cut (`Detector(cut_wrist=False)`) | {r['hand_iou_uncut']:.3f} | |\n"
        f"| hand IoU with the wrist cut placed by the true wrist and middle knuckle instead of the detected ones | "
        f"{r['hand_iou_cut_true']:.3f} | |\n"
        f"| where the hand IoU is lost, shares of the hand union: predicted hand on the true forearm; on the object; "
        f"on other background; the true hand predicted as object; as background or forearm | "
        f"{lost['fp_forearm']:.3f}; {lost['fp_object']:.3f}; {lost['fp_background']:.3f}; {lost['fn_object']:.3f}; "
        f"{lost['fn_background']:.3f} | |\n"
        f"| hand IoU; object IoU with one segmentation pass (`Detector(seg_flip=False, seg_zoom=(1,))`: the trained "
        f"input size, no mirror image) | {r['hand_iou_noflip']:.3f}; {r['object_iou_noflip']:.3f} | |\n"
        f"| hand IoU; object IoU with a half-size input added (`Detector(seg_zoom=(0.5, 1))`: logits of "
        f"{', '.join(f'{w}x{h}' for w, h in r['seg_input_halfsize'])} averaged, each with the mirror image) | "
        f"{r['hand_iou_halfsize']:.3f}; {r['object_iou_halfsize']:.3f} | |\n"
        f"| object IoU (all pixels; per-frame mean) | {r['object_iou']:.3f} ({r['object_iou_frame']:.3f}) | >= 0.90 ({ok(r['object_iou'], 0.90)}) |\n"
        f"| PCK@10px, visible joints ({r['joints']}) | {r['pck10']:.3f} | >= 0.90 ({ok(r['pck10'], 0.90)}) |\n"
        f"| PCK@10px, 95% interval when the {args.sequences} scenes are redrawn (bootstrap over scenes) | "
        f"{r['pck10_ci'][0]:.3f} - {r['pck10_ci'][1]:.3f} | |\n"
        f"| PCK@10px in frames with more than 10 visible joints ({r['pck10_by_vis']['more'][1]} joints); with at most 10 "
        f"(the hand mostly behind the object or out of view; {r['pck10_by_vis']['at_most'][1]} joints) | "
        f"{r['pck10_by_vis']['more'][0]:.3f}; {r['pck10_by_vis']['at_most'][0]:.3f} | |\n"
        f"| PCK@10px by the detector's hand box side (crop box before its margin): under {BOX_SIDE_EDGES[0]:.0f} px; "
        f"{BOX_SIDE_EDGES[0]:.0f}-{BOX_SIDE_EDGES[1]:.0f}; {BOX_SIDE_EDGES[1]:.0f} and over (joints) | {box_side_text(r['pck10_by_box'])} | |\n"
        f"| mean 2D error, visible joints | {r['mean_err']:.1f} px | |\n"
        f"| PCK@10px; median 2D error, hidden joints ({r['joints_hidden']}; the annotation fits them too, "
        f"docs/design.md) | {r['pck10_hidden']:.3f}; {r['median_err_hidden']:.1f} px | |\n"
        f"| misses (> 10 px) within 10 px of another joint of the hand | {r['misses_on_other_joint']} of {r['misses']} | |\n"
        f"| PCK@10px with crops around the ground-truth hand mask (keypoint network alone) | {r['pck10_gt_box']:.3f} | |\n"
        f"| PCK@10px with one crop (no test-time augmentation) | {r['pck10_plain']:.3f} | |\n"
        f"| PCK@10px with the box of the largest hand region and those near it (no choice among boxes) | "
        f"{r['pck10_largest']:.3f} | |\n"
        f"| PCK@10px without the hand box floor from depth (`Detector(min_box_m=0)`); in frames with more than 10 "
        f"visible joints; with at most 10 | {r['pck10_nofloor']:.3f}; {r['pck10_nofloor_by_vis']['more'][0]:.3f}; "
        f"{r['pck10_nofloor_by_vis']['at_most'][0]:.3f} | |\n"
        f"| hand IoU; PCK@10px without the second keypoint pass in the box of the hand mask the wrist cut changed "
        f"and the second cut (`Detector(redetect=False)`) | {r['hand_iou_firstpass']:.3f}; {r['pck10_firstpass']:.3f} | |\n"
        f"| hand IoU; PCK@10px with hand pixels farther than 15 cm from the held object taken for forearm "
        f"(`Detector(object_gate_m=0.15)`) | {r['hand_iou_gated']:.3f}; {r['pck10_gated']:.3f} | |\n"
        f"| PCK@10px with distribution-aware decoding instead of the per-axis parabola "
        f"(`Detector(decode_smooth_px={DECODE_SMOOTH_PX})`) | {r['pck10_dark']:.3f} | |\n"
        + ("| PCK@10px with the first keypoint network alone (`Detector(fine_keypoints=False, upright_keypoints=False)`: no "
           + " and no ".join(t for t in (f"`{KP_FINE_FILE}` heatmaps of {r['fine_crop']}-pixel crops" if r["fine_crop"] else "",
                                        f"`{KP_UPRIGHT_FILE}` heatmaps" if r["upright_crop"] else "") if t)
           + f" averaged in) | {r['pck10_first_net']:.3f} | |\n"
           if r["pck10_first_net"] is not None else "")
        + (f"| PCK@10px without the upright keypoint network (`Detector(upright_keypoints=False)`: no `{KP_UPRIGHT_FILE}` "
           f"heatmaps of crops turned by the hand's orientation averaged in, weight {r['upright_weight']:.2f}) | "
           f"{r['pck10_no_upright']:.3f} | |\n" if r["pck10_no_upright"] is not None else "")
        + f"| inference per frame (all networks, median of {r['images']}) | {r['ms_per_frame']:.0f} ms | |\n"
    )
    if fu is not None:
        body += (
            f"\nMulti-view fusion (`honnotate detect`'s default with 3 or more calibrated cameras, {fu['keypoints'] // 21} views): "
            f"{args.fusion_sequences} other generated captures of 1 frame x {args.fusion_cameras} calibrated cameras "
            f"(seeds {args.seed_base + 500}+, same objects in turn, random grasps), each view's keypoints as "
            "detected and after fusion (per joint, the views that disagree with the point most views agree on "
            f"get its reprojection; {fu['replaced']} of {fu['keypoints']} keypoints replaced). Command: as above "
            f"with `--fusion-sequences {args.fusion_sequences} --fusion-cameras {args.fusion_cameras}` (the defaults).\n\n"
            "| metric | each view alone | fused |\n|---|---|---|\n"
            f"| PCK@10px, visible joints ({fu['joints']}) | {fu['pck_single']:.3f} | {fu['pck_fused']:.3f} "
            f"(95% interval over scenes {fu['ci_fused'][0]:.3f} - {fu['ci_fused'][1]:.3f}) |\n"
            f"| PCK@10px, all joints, hidden ones too ({fu['keypoints']}) | {fu['pck_single_all']:.3f} | "
            f"{fu['pck_fused_all']:.3f} |\n"
        )
    if others or tuning or large:
        from honnotate.perception.weights import SEG_RGB_FILE

        others_fallback = any(o["rgb_fallback"] for o in others + tuning)
        fine_col = any(o["first_net_pck10"] is not None for o in others + tuning)  # a second keypoint network
        up_col = any(o.get("no_upright_pck10") is not None for o in others + tuning)  # an upright keypoint network

        def figs(*values: float | None) -> str:
            return "; ".join("-" if v is None else f"{v:.3f}" for v in values)

        def set_row(o: dict, tuned: bool) -> str:
            return (f"| {o['seed_base']}+{' (tuning)' if tuned else ''} | {o['sequences']} | {o['hand_iou']:.3f} "
                    f"({ok(o['hand_iou'], 0.85)}) | {o['object_iou']:.3f} ({ok(o['object_iou'], 0.90)}) | {o['pck10']:.3f} "
                    f"of {o['joints']} ({ok(o['pck10'], 0.90)}) | {o['ci'][0]:.3f} - {o['ci'][1]:.3f} | "
                    f"{figs(o['wall_hand_iou'], o['wall_object_iou'], o['wall_pck10'])} | "
                    f"{figs(o['rgb_hand_iou'], o['rgb_object_iou'], o['rgb_pck10'])} | "
                    f"{figs(o['dark_pck10'])} | {box_side_text(o['by_box'])} |"
                    + (f" {figs(o['first_net_pck10'])} |" if fine_col else "")
                    + (f" {figs(o.get('no_upright_pck10'))} |" if up_col else "") + "\n")

        body += (
            f"\nOther held-out sets (the detector as shipped, no variants; {args.frames} frames x 1 camera per scene, made "
            f"as above with other seeds; command: as above with `--other-sets {args.other_sets} --tuning-sets "
            f"{args.tuning_sets} --large-sets {args.large_sets}`"
            f"{', the defaults' if (args.other_sets, args.tuning_sets, args.large_sets) == (OTHER_SETS, TUNING_SETS, LARGE_SETS) else ''}). "
            "Which scenes are drawn moves these figures by several hundredths (the intervals). The sets marked tuning are "
            "those the detector's options and the shipped weights were chosen on: their figures flatter. The columns "
            "\"far wall\" and \"no depth map\" repeat the run with a far tilted wall drawn into every frame's unmeasured background "
            "(`honnotate.perception.data.far_wall`; the generated captures measure nothing behind the table, a real "
            "sensor sees a wall) and with no depth map at all (RGB only, no hand box floor: "
            + (f"the RGB segmentation network beside the RGB-D one, `{SEG_RGB_FILE}`, segments the frames"
               if others_fallback else "the segmentation network gets an unmeasured map") + "); the next, PCK@10px "
            "with the keypoints decoded distribution-aware instead of by the per-axis parabola "
            f"(`Detector(decode_smooth_px={DECODE_SMOOTH_PX})`); then the shipped detector's PCK@10px split by the "
            f"side of its hand box (the crop box before its margin): under {BOX_SIDE_EDGES[0]:.0f} pixels, "
            f"{BOX_SIDE_EDGES[0]:.0f}-{BOX_SIDE_EDGES[1]:.0f}, {BOX_SIDE_EDGES[1]:.0f} and over (joints)"
            + ("; then PCK@10px with the first keypoint network alone (`Detector(fine_keypoints=False, "
               "upright_keypoints=False)`)" if fine_col else "")
            + ("; then PCK@10px without the upright keypoint network (`Detector(upright_keypoints=False)`)" if up_col else "")
            + ":\n\n"
            "| seeds | scenes | hand IoU (>= 0.85) | object IoU (>= 0.90) | PCK@10px, visible joints (>= 0.90) | "
            "its 95% interval over scenes | far wall: hand IoU; object IoU; PCK | no depth map: hand IoU; object IoU; "
            "PCK | PCK, distribution-aware decoding | PCK by hand box side |"
            + (" PCK, first keypoint network alone |" if fine_col else "")
            + (" PCK without the upright network |" if up_col else "")
            + "\n|---|---|---|---|---|---|---|---|---|---|" + ("---|" if fine_col else "") + ("---|" if up_col else "") + "\n"
            + "".join(set_row(o, False) for o in others + large) + "".join(set_row(o, True) for o in tuning)
        )
        if large:
            body += (f"\nThe large set{'s' if len(large) > 1 else ''} (`--large-sets {args.large_sets}`) ran the shipped "
                     "detector alone: no variants (\"-\" in their columns), so that the pooled rate below rests on "
                     "hundreds of scenes.\n")
        if others or large:
            pool = pool_sets([(r["hits"], r["scene"])] + [(o["hits"], o["scene"]) for o in others + large])
            body += (
                f"\nAll reported held-out sets together (this section's first scenes and the other sets above, "
                f"the tuning sets left out; one generator, other seeds, so together they say more than any one): "
                f"PCK@10px {pool['pck']:.3f} of {pool['joints']} visible joints in {pool['scenes']} scenes, 95% "
                f"interval over scenes {pool['ci'][0]:.3f} - {pool['ci'][1]:.3f} (target >= 0.90: "
                + ("met with the whole interval" if pool["ci"][0] >= 0.90 else
                   ("point estimate met, the interval reaching below" if pool["pck"] >= 0.90 else "not met"))
                + ").\n"
            )
    if seen is not None:
        a, b = seen["seen"], seen["unseen"]
        body += (
            f"\nScenes the networks trained on against unseen ones (`--seen-captures {args.seen_captures}`): "
            f"{args.seen_captures} captures of their training data remade by its command (seeds {SEEN_SEED}+, 1 frame x "
            f"3 cameras, random grasps; the segmentation and the first two keypoint networks trained on crops of these "
            f"views, the upright keypoint network was fine-tuned from the first on other captures) and "
            f"{args.seen_captures} made alike with unseen seeds ({UNSEEN_SEED}+), every view, the shipped detector: "
            f"PCK@10px {a['pck']:.3f} of {a['joints']} visible joints (95% interval over captures {a['ci'][0]:.3f} - "
            f"{a['ci'][1]:.3f}) on the seen scenes, {b['pck']:.3f} of {b['joints']} ({b['ci'][0]:.3f} - {b['ci'][1]:.3f}) "
            f"on the unseen; the difference {a['pck'] - b['pck']:.3f}, 95% interval {seen['diff_ci'][0]:.3f} - "
            f"{seen['diff_ci'][1]:.3f} (both sets of captures redrawn apart): "
            + ("the networks do better on scenes they trained on beyond chance: they learnt their training scenes "
               "more than hands (a generalisation gap), so more distinct training scenes, not only a larger network, "
               "are what the keypoint target asks for.\n" if seen["diff_ci"][0] > 0 else
               "no difference beyond chance.\n")
        )
    # BENCHMARKS.md holds the shipped weights on the default set; candidates and other sets are printed
    if args.weights is not None or args.seg_only or args.seed_base != 1000 or args.tta or args.seg_zoom \
            or args.hand_appearance != "uniform" or args.no_forearm or args.tuning_sets != TUNING_SETS \
            or args.other_sets != OTHER_SETS or args.large_sets != LARGE_SETS or args.no_rgb_fallback \
            or args.seen_captures != 40:
        print(body)
        return 0
    write_section("perception", body)
    print(body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
