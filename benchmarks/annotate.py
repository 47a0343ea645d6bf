"""Annotation accuracy and speed (issue 6): generated captures with degraded cues and noisy depth,
automatic initialisation, the default schedule; accuracy per stage (paper Table 3) and, with
``--ablation``, with terms switched off one at a time (paper Table 2).

Run: ``python benchmarks/annotate.py [--frames N] [--ablation] [--cases single,multi] [--ablation-cases single,multi]``
(writes the BENCHMARKS.md section annotate, and annotate_ablation with ``--ablation``; ``--ablation-only``
writes only the latter). ``--reuse`` keeps an output in ``--work`` that was annotated with the same
configuration (e.g. run the ablation at 1 thread beside another job after a quiet timing run). ``--compare-cues [--weights DIR]`` instead annotates the cases with
degraded, exact and detected (honnotate's networks) cues and writes section annotate_cues. Captures and outputs go to ``--work`` (default a temp dir).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from _common import machine_description, write_section
from honnotate.annotate.config import AnnotateConfig, _merge
from honnotate.evaluate.cues import cue_accuracy, cue_accuracy_markdown
from honnotate.pipeline.annotate import annotate_sequence
from honnotate.synth.generator import SynthConfig, generate_sequence

CASES = {
    # name: (cameras, object, seed, frames default)
    "single": (1, "mustard_bottle", 1, 100),
    "single_mug": (1, "mug", 4, 100),
    "multi": (5, "mug", 2, 20),
    "multi_mustard": (5, "mustard_bottle", 2, 20),
}
ABLATION_TERMS = ("mask", "depth", "keypoints2d", "points3d_hand", "points3d_object", "interpenetration")


def _without(term: str) -> dict:
    """Config override switching ``term`` off in every stage."""
    base = AnnotateConfig().to_dict()
    out: dict = {}
    for sched in ("single", "multi"):
        for stage, v in base[sched].items():
            if isinstance(v, dict) and "weights" in v:
                w = dict(v["weights"])
                if term in w:
                    w[term] = 0.0
                out.setdefault(sched, {})[stage] = {"weights": w}
    return out


CUE_SOURCES = ("degraded", "exact", "detected")
#: Mixed cue sources of --compare-cues: which network's cues cost the accuracy (cue folder -> source).
MIXED_SOURCES = {
    "detected_masks": {"segmentation": "detected", "keypoints2d": "exact"},
    "detected_keypoints": {"segmentation": "exact", "keypoints2d": "detected"},
}


def _capture(work: Path, name: str, frames: int, cues: str = "degraded", weights: Path | None = None,
             forearm: bool = False) -> Path:
    """The case's generated capture with cues from ``cues``: "degraded" (simulated detector errors,
    the default), "exact" (the generator's ground truth), "detected" (honnotate's networks,
    ``weights`` folder or the shipped weights), or one of :data:`MIXED_SOURCES` (each cue folder
    copied from the exact or the detected capture)."""
    cams, obj, seed, _ = CASES[name]
    seq = work / (f"{name}_{frames}{'_arm' if forearm else ''}" + ("" if cues == "degraded" else f"_{cues}"))
    if (seq / "ground_truth" / "sequence_gt.npz").is_file():
        return seq
    if cues in MIXED_SOURCES:
        import shutil

        sources = {src: _capture(work, name, frames, src, weights, forearm) for src in ("exact", "detected")}
        tmp = seq.with_name(seq.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(sources["exact"], tmp)
        for folder, src in MIXED_SOURCES[cues].items():
            shutil.rmtree(tmp / folder)
            shutil.copytree(sources[src] / folder, tmp / folder)
        tmp.rename(seq)
        return seq
    # section annotate's figures are of captures without the forearm that `honnotate synth` draws
    # since 2026-12-04 (forearm=False); --forearm draws it (same grasp, motion and cameras)
    generate_sequence(seq, SynthConfig(frames=frames, cameras=cams, object=obj, seed=seed,
                                       degraded_cues=cues != "exact", forearm=forearm))
    if cues == "detected":
        from honnotate.perception.detect import detect_sequence

        detect_sequence(seq, weights, overwrite=True, device="cpu", fuse_views=False)  # each view alone
    return seq


def _fused_capture(work: Path, name: str, frames: int, weights: Path | None = None, forearm: bool = False) -> Path:
    """A copy of the case's detected capture with its keypoints fused across views
    (``honnotate detect --fuse-views``)."""
    import shutil

    from honnotate.perception.multiview import fuse_sequence_keypoints

    seq = work / f"{name}_{frames}{'_arm' if forearm else ''}_detected_fused"
    if (seq / "ground_truth" / "sequence_gt.npz").is_file():
        return seq
    tmp = seq.with_name(seq.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(_capture(work, name, frames, "detected", weights, forearm), tmp)
    fuse_sequence_keypoints(tmp)
    tmp.rename(seq)
    return seq


def run_case(work: Path, name: str, frames: int, override: dict | None = None, tag: str = "",
             cues: str = "degraded", weights: Path | None = None, reuse: bool = False, forearm: bool = False) -> dict:
    seq = _fused_capture(work, name, frames, weights, forearm) if cues == "detected_fused" else _capture(
        work, name, frames, cues, weights, forearm)
    cfg = AnnotateConfig.model_validate(_merge(AnnotateConfig().to_dict(), override or {}))
    out = Path(f"{seq}_out{tag}")
    if reuse and (out / "summary.json").is_file() and (out / "annotate_config.json").is_file():
        if json.loads((out / "annotate_config.json").read_text()) == json.loads(json.dumps(cfg.to_dict())):
            print(f"reusing {out}", flush=True)
            return json.loads((out / "summary.json").read_text())
    t0 = time.perf_counter()
    s = annotate_sequence(seq, Path(f"{seq}_out{tag}"), cfg, log=lambda _m: None)
    s["wall_s"] = time.perf_counter() - t0
    return s


def _row(label: str, acc: dict, hand: bool = True, obj: bool = True) -> str:
    """A table row; ``hand`` / ``obj`` False print a dash (not yet estimated at that stage)."""
    h = f"{acc['hand_mpjpe_mm']['mean']:.2f}" if hand else "–"
    o = f"{acc['object_add_mm']['mean']:.2f} | {acc['object_adds_mm']['mean']:.2f}" if obj else "– | –"
    return f"| {label} | {h} | {o} |"


def _estimated(stages: list[str], stage: str) -> tuple[bool, bool]:
    """(hand, object) estimated once ``stage`` has run: the hand from hand_init on, the object
    after its first tracking stage."""
    done = stages[: stages.index(stage) + 1] if stage in stages else stages
    return "hand_init" in done, bool({"object_tracking", "tracking"} & set(done))


#: issue 6 targets: (hand MPJPE mm, object ADD mm) by number of cameras; seconds per frame, 1 camera
TARGETS = {1: (8.0, 5.0), 5: (5.0, 3.0)}
MAX_SECONDS_PER_FRAME_SINGLE = 1.5


def _targets_table(results: dict) -> str:
    """Markdown: each case's final errors, refinement gain and speed against the issue's targets."""
    rows = ["| case | hand MPJPE mm (target) | object ADD mm (target) | refinement vs tracking, hand / object | "
            "s/frame | met |", "|---|---|---|---|---|---|"]
    for name, s in results.items():
        cams = CASES[name][0]
        th, to = TARGETS[cams]
        f, tr, rf = s["accuracy"]["final"], s["accuracy"]["tracking"], s["accuracy"]["refinement"]
        h, o = f["hand_mpjpe_mm"]["mean"], f["object_add_mm"]["mean"]
        gain = [100 * (1 - rf[k]["mean"] / tr[k]["mean"]) for k in ("hand_mpjpe_mm", "object_add_mm")]
        spf = s["seconds_per_frame"]
        ok = h <= th and o <= to and (cams > 1 or spf <= MAX_SECONDS_PER_FRAME_SINGLE)
        speed = f"{spf:.2f} (<= {MAX_SECONDS_PER_FRAME_SINGLE})" if cams == 1 else f"{spf:.2f}"
        rows.append(f"| {name} | {h:.2f} (<= {th:g}) | {o:.2f} (<= {to:g}) | {gain[0]:.0f}% / {gain[1]:.0f}% better | "
                    f"{speed} | {'yes' if ok else 'no'} |")
    return "\n".join(rows)


def compare_cues(work: Path, cases: list[str], frames: int | None, weights: Path | None, reuse: bool = False,
                 forearm: bool = False, only: tuple[str, ...] | None = None, note: str = "") -> None:
    """Final accuracy of each case annotated with each cue source (section annotate_cues); with
    ``reuse``, outputs in ``work`` annotated with the same configuration are kept (delete a cue
    source's capture folder, e.g. ``<case>_<frames>_detected``, to detect and annotate it again).
    ``forearm``: captures drawn with a forearm (folders ``<case>_<frames>_arm...``); ``only``: run
    just these cue sources and write nothing (e.g. the rows without the networks, before the
    weights are ready)."""
    rows = ["| capture | cues | hand MPJPE mm (after hand_init) | object ADD mm | object ADD-S mm | frames flagged | "
            "s/frame |", "|---|---|---|---|---|---|---|"]
    views: list[str] = []  # per-camera accuracy of the detected cue files
    for name in cases:
        n = frames or CASES[name][3]
        variants = [(cues, None, "", cues) for cues in CUE_SOURCES]
        variants += [("detected_masks", None, "", "detected masks, exact keypoints"),
                     ("detected_keypoints", None, "", "exact masks, detected keypoints")]
        if CASES[name][0] > 1:  # what the multi-view keypoint consensus does with the networks' cues
            variants.append(("degraded", {"hand_init": {"consensus_px": 0.0}}, "_no_consensus",
                             "degraded, no keypoint consensus"))
            variants.append(("detected", {"hand_init": {"consensus_px": 0.0}}, "_no_consensus",
                             "detected, no keypoint consensus"))
            variants.append(("detected_fused", None, "", "detected, fused across views (detect's default)"))
        for cues, override, tag, label in variants:
            if only is not None and cues not in only:
                continue
            s = run_case(work, name, n, override, tag, cues=cues, weights=weights, reuse=reuse, forearm=forearm)
            if cues in ("detected", "detected_fused") and not tag:  # what the networks gave, view by view
                seq = (_fused_capture(work, name, n, weights, forearm) if cues == "detected_fused"
                       else _capture(work, name, n, cues, weights, forearm))
                views.append(f"**{name}, {label}** ({n} frames):\n\n" + cue_accuracy_markdown(cue_accuracy(seq)))
            acc = s["accuracy"]["final"]
            rows.append(f"| {name} ({CASES[name][0]} cam, {CASES[name][1]}, {n} frames) | {label} | "
                        f"{acc['hand_mpjpe_mm']['mean']:.2f} ({s['accuracy']['hand_init']['hand_mpjpe_mm']['mean']:.1f}) | "
                        f"{acc['object_add_mm']['mean']:.2f} | "
                        f"{acc['object_adds_mm']['mean']:.2f} | {s['flagged_frames']} | {s['seconds_per_frame']:.2f} |")
            print(rows[-1], flush=True)
    if only is not None:
        print("\n\n".join(views))
        return
    body = ((f"{note}\n\n" if note else "")
            + f"Machine: {machine_description()}. The cases of section annotate"
            + (", drawn with a forearm behind the wrist (`SynthConfig.forearm`, `honnotate synth`'s default; same "
               "grasps, motion and cameras)" if forearm else "")
            + ", annotated end to end (automatic initialisation, default schedule) with three cue sources: `degraded` (the generator's simulated "
            "detector errors, as in section annotate), `exact` (the generator's ground-truth masks, and keypoints "
            "of all 21 joints with confidence 1, hidden ones included: more than a detector can see) "
            "and `detected` (honnotate's segmentation and keypoint networks, weights "
            f"`{weights or 'shipped'}`, run by `honnotate detect` on the capture's colour and depth images), and the two mixes of "
            "exact and detected cues (which network's errors cost the accuracy); multi-camera cases also "
            "with the degraded and the detected cues and the multi-view keypoint consensus off "
            "(`hand_init.consensus_px` 0; 15 px by default), and with the detected keypoints fused across views "
            "at detection (what `honnotate detect` writes by default with 3 or more calibrated cameras; the other "
            "detected rows: each view alone, `--no-fuse-views`). Errors against the "
            "generator's ground truth, means over frames. Command: `python benchmarks/annotate.py --compare-cues "
            f"--cases {','.join(cases)}{f' --frames {frames}' if frames else ''}{' --forearm' if forearm else ''}"
            f"{' --reuse' if reuse else ''}`.\n\n"
            + "\n".join(rows) + "\n"
            + ("\nThe detected cue files against the generator's ground truth, camera by camera "
               "(`honnotate.evaluate.cues.cue_accuracy`): PCK@10px and median error of the keypoints of visible "
               "joints, PCK@10px of those the detector gives for hidden joints (the annotation fits them too), "
               "hand and object IoU of the masks over the frames.\n\n" + "\n\n".join(views) + "\n" if views else ""))
    print(body)
    write_section("annotate_cues", body)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=None, help="frames per capture (default per case)")
    ap.add_argument("--cases", default="single,multi")
    ap.add_argument("--ablation", action="store_true", help="also switch terms off one at a time (section annotate_ablation)")
    ap.add_argument("--ablation-only", action="store_true", help="run the ablation and write only its section "
                    "(the cases' own runs are still needed: with --reuse they come from --work)")
    ap.add_argument("--reuse", action="store_true", help="keep outputs in --work annotated with the same configuration")
    ap.add_argument("--ablation-cases", default="single,multi", help="cases of the ablation (of those in --cases)")
    ap.add_argument("--work", type=Path, default=None)
    ap.add_argument("--compare-cues", action="store_true",
                    help="only annotate the cases with degraded, exact and detected cues (section annotate_cues)")
    ap.add_argument("--weights", type=Path, default=None, help="perception weights folder for detected cues "
                    "(default: the shipped weights)")
    ap.add_argument("--forearm", action="store_true", help="--compare-cues on captures drawn with a forearm "
                    "(honnotate synth's default; section annotate's captures have none)")
    ap.add_argument("--only", default=None, help="--compare-cues: only these cue sources (comma-separated, e.g. "
                    "degraded,exact), printed, nothing written (with --reuse the full run keeps them)")
    ap.add_argument("--note", default="", help="--compare-cues: text put at the top of the section")
    a = ap.parse_args()
    work = a.work or Path(tempfile.mkdtemp(prefix="honnotate_bench_"))
    work.mkdir(parents=True, exist_ok=True)
    if a.compare_cues:
        compare_cues(work, a.cases.split(","), a.frames, a.weights, a.reuse, a.forearm,
                     tuple(a.only.split(",")) if a.only else None, a.note)
        return
    parts = [f"Machine: {machine_description()}. Generated captures (640x480, degraded cues: 2.5 px keypoint noise, "
             "5% outliers, eroded/dilated masks, under-segmented fingertips; structured-light depth noise), automatic "
             "initialisation, default schedule. Errors are means over frames, world frame, against the generator's "
             "ground truth: hand MPJPE, object mean vertex error (ADD) and ADD-S (closest-point; the symmetric "
             "error: for shapes with symmetries, the can, the box, the sphere, ADD counts poses that are equivalent "
             "up to that symmetry as errors). Cases: `single` and `single_mug` (seed 4: the mug stays mostly hidden "
             "behind the hand in its one view, the hard case), `multi` and `multi_mustard` (5 cameras).\n"]
    results = {}
    for name in a.cases.split(","):
        frames = a.frames or CASES[name][3]
        s = run_case(work, name, frames, reuse=a.reuse)
        results[name] = s
        cams, obj, _, _ = CASES[name]
        t = s["timings_s"]
        parts.append(f"\n**{name}**: {cams} camera(s), {obj}, {frames} frames, {s['pipeline']}-camera pipeline; "
                     f"{s['seconds_per_frame']:.2f} s/frame in total ({s['flagged_frames']} frames flagged).\n")
        parts.append("| stage | hand MPJPE mm | object ADD mm | object ADD-S mm |\n|---|---|---|---|")
        for st in s["stages"] + ["final"]:
            if st in s["accuracy"] and st not in ("object_init",):
                parts.append(_row(st, s["accuracy"][st], *_estimated(s["stages"], st)))
        parts.append("\n| stage | seconds | s/frame |\n|---|---|---|")
        for st, sec in t.items():
            parts.append(f"| {st} | {sec:.1f} | {sec / frames:.3f} |")
        print("\n".join(parts[-2:]), flush=True)
    parts.insert(1, "\nAgainst the issue's targets (final stage; speed: the single-camera pipeline at the default "
                    "schedule on 2 cores):\n\n" + _targets_table(results) + "\n")
    parts.insert(1, f"Command: `python benchmarks/annotate.py --cases {a.cases}"
                    f"{' --frames ' + str(a.frames) if a.frames else ''}`.\n")
    body = "\n".join(parts) + "\n"
    (work / "bench_annotate.json").write_text(json.dumps(results, indent=1, default=float))
    print(body)
    if not a.ablation_only:
        write_section("annotate", body)
    if a.ablation or a.ablation_only:
        abl = [f"Machine: {machine_description()}. The cases of section annotate (same captures, degraded cues, "
               "automatic initialisation) annotated again with one energy term switched off in every stage "
               "(paper Table 2); final errors, means over frames. Timings are not compared here. Command: "
               f"`python benchmarks/annotate.py --cases {a.cases} {'--ablation-only' if a.ablation_only else '--ablation'} "
               f"--ablation-cases {a.ablation_cases}{' --reuse' if a.reuse else ''}`.\n"]
        for name in [c for c in a.ablation_cases.split(",") if c in results]:
            frames = a.frames or CASES[name][3]
            abl.append(f"\nAblation on **{name}** ({frames} frames): each term switched off in every stage.\n")
            abl.append("| configuration | hand MPJPE mm | object ADD mm | object ADD-S mm |\n|---|---|---|---|")
            abl.append(_row("all terms" + (" (the run of section annotate)" if a.reuse else ""),
                            results[name]["accuracy"]["final"]))
            for term in ABLATION_TERMS:
                s = run_case(work, name, frames, _without(term), tag=f"_no_{term}", reuse=a.reuse)
                abl.append(_row(f"without {term}", s["accuracy"]["final"]))
                print(abl[-1], flush=True)
        body = "\n".join(abl) + "\n"
        print(body)
        write_section("annotate_ablation", body)


if __name__ == "__main__":
    main()
