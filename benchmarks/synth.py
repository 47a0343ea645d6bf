"""Synthetic capture generation: speed of a 100-frame sequence, of a batch of one-frame
5-camera training captures (``honnotate synth --count``), and grasp quality figures.

    python benchmarks/synth.py [--frames 100] [--batch 30]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_section  # noqa: E402
from honnotate.models.hand import HandModel  # noqa: E402
from honnotate.models.object import list_builtin_objects, make_object  # noqa: E402
from honnotate.models.open_hand import load_open_hand  # noqa: E402
from honnotate.synth.batch import generate_batch  # noqa: E402
from honnotate.synth.generator import SynthConfig, generate_sequence  # noqa: E402
from honnotate.synth.grasp import GraspConfig, synthesize_grasp  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--frames", type=int, default=100)
    ap.add_argument("--seeds", type=int, default=4)
    ap.add_argument("--batch", type=int, default=30, help="captures in the batch row")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:  # as `honnotate synth OUT --count N --frames 1 --cameras 5
        t0 = time.perf_counter()                # --grasp random --object <all> --no-contact-sheet --workers 2`
        res = generate_batch(Path(tmp), SynthConfig(frames=1, cameras=5, seed=8000, grasp="random"), args.batch,
                             objects=list_builtin_objects(), workers=2, contact_sheet=False)
        batch_s = time.perf_counter() - t0
    batch_row = (f"| {args.batch} | {len(res.failed)} | {batch_s:.1f} | {60 * len(res.written) / batch_s:.0f} | "
                 f"{300 * len(res.written) / batch_s:.0f} |")
    print(batch_row, flush=True)

    rows = []
    for cams, degraded in ((1, True), (5, True)):
        frames = args.frames if cams == 1 else max(10, args.frames // 5)
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            s = generate_sequence(Path(tmp) / "seq", SynthConfig(frames=frames, cameras=cams, degraded_cues=degraded))
            total = time.perf_counter() - t0
        t = s["timings_s"]
        rows.append(f"| {frames} | {cams} | 640x480 | {total:.1f} | {1e3 * total / (frames * cams):.0f} | "
                    f"{t['grasp_s']:.1f} | {t['render_s']:.1f} | {t['noise_and_cues_s']:.1f} | {t['write_s']:.1f} |")
        print(rows[-1], flush=True)

    hand = HandModel(load_open_hand("right"), dtype=torch.float64)
    grasp_rows = []
    for name in list_builtin_objects():
        tm = make_object(name).to_trimesh()
        for kind in ("power", "precision", "lateral"):
            pens, contacts, ok, times = [], [], 0, []
            for seed in range(args.seeds):
                t0 = time.perf_counter()
                g = synthesize_grasp(hand, tm, config=GraspConfig(kind=kind), seed=seed)
                times.append(time.perf_counter() - t0)
                pens.append(g.penetration * 1e3)
                contacts.append(len(g.contacts))
                held = len(g.contacts) >= {"power": 3, "precision": 2, "lateral": 2}[kind]
                if kind == "lateral":  # a key grip holds the object between the thumb and the index
                    held = held and {"thumb", "index"} <= set(g.contacts)
                ok += int(g.penetration <= 0.002 and held)
            grasp_rows.append(f"| {name} | {kind} | {args.seeds} | {np.mean(pens):.2f} | {np.max(pens):.2f} | "
                              f"{np.mean(contacts):.1f} | {ok}/{args.seeds} | {np.mean(times):.2f} |")
            print(grasp_rows[-1], flush=True)

    body = "\n".join([
        "Command: `python benchmarks/synth.py` (CPU, default structured-light depth noise, degraded cues).",
        "",
        "| frames | cameras | size | total s | ms per camera-frame | grasp s | render s | noise+cues s | write s |",
        "|---|---|---|---|---|---|---|---|---|",
        *rows,
        "",
        "Target: a 100-frame single-camera 640x480 sequence in <= 60 s on 2 CPU cores.",
        "",
        "Batch of one-frame 5-camera 640x480 captures, random grasps, objects in turn, no contact sheets, 2 worker",
        "processes (`honnotate synth OUT --count N --frames 1 --cameras 5 --no-contact-sheet --workers 2`; the",
        "start of the workers included):",
        "",
        "| captures | failed | total s | captures per minute | views per minute |",
        "|---|---|---|---|---|",
        batch_row,
        "",
        "Grasp quality (open right hand, mean shape; penetration = deepest hand vertex inside the object;",
        "contacts = fingers within 3 mm of the surface; ok = penetration <= 2 mm and >= 3 fingers (power) / thumb and",
        "index (lateral) / >= 2 fingers (precision) in contact):",
        "",
        "| object | grasp | grasps | mean penetration mm | max penetration mm | contacts per grasp | ok | s per grasp |",
        "|---|---|---|---|---|---|---|---|",
        *grasp_rows,
    ])
    write_section("synth", body)


if __name__ == "__main__":
    main()
