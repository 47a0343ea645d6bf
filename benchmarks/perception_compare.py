"""Paired PCK@10px of perception weights folders against the shipped weights, on the same frames.

Where the weights README says "tried, not shipped" with a decision set, this is the command: each
weights folder (``--variants DIR,...``, each holding the detector's files) and the shipped
detector run on every frame of generated held-out scenes made as ``benchmarks/perception.py``
makes its sets (``--sets SEED:SEQUENCES,...``, 2 frames x 1 camera, random grasps, a forearm)
and of existing capture folders (``--captures DIR``: every view of every capture in it). Prints,
per set and variant, PCK@10px of the visible joints and the joints gained and lost against the
shipped detector. Nothing is written to BENCHMARKS.md (a comparison for a weights decision).

    python benchmarks/perception_compare.py --variants runs/w_new --sets 60000:200 --captures runs/unseen
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from perception import OBJECTS, parse_sets  # noqa: E402


def frames_of_set(seed_base: int, sequences: int, work: Path):
    """(rgb, depth, fx, gt (21, 3)) of each frame of the generated set, made as perception.py's."""
    from honnotate.io.sequence import open_sequence
    from honnotate.synth.generator import SynthConfig, generate_sequence

    for k in range(sequences):
        out = work / f"set{seed_base}_{k}"
        generate_sequence(out, SynthConfig(frames=2, cameras=1, object=OBJECTS[k % len(OBJECTS)], seed=seed_base + k,
                                           grasp="random", forearm=True), contact_sheet=False)
        seq = open_sequence(out)
        gt = np.load(out / "ground_truth" / "sequence_gt.npz")["keypoints2d"]
        cam = seq.camera_ids[0]
        fx = float(seq.calibration(cam).K[0, 0])
        for t, fr in enumerate(seq.frame_ids):
            yield seq.rgb(cam, fr), seq.depth(cam, fr), fx, gt[t, 0]
        shutil.rmtree(out, ignore_errors=True)


def frames_of_captures(folder: Path):
    """(rgb, depth, fx, gt (21, 3)) of every view of every capture in ``folder``."""
    from honnotate.io.sequence import open_sequence

    for d in sorted(p for p in folder.iterdir() if p.is_dir()):
        seq = open_sequence(d)
        gt = np.load(d / "ground_truth" / "sequence_gt.npz")["keypoints2d"]
        for c, cam in enumerate(seq.camera_ids):
            fx = float(seq.calibration(cam).K[0, 0])
            for t, fr in enumerate(seq.frame_ids):
                yield seq.rgb(cam, fr), seq.depth(cam, fr), fx, gt[t, c]


def compare(detectors: dict, frames) -> dict[str, np.ndarray]:
    """Hits (bool per visible joint) of each detector over the same frames."""
    from honnotate.evaluate.cues import keypoint_hits

    hits: dict[str, list] = {name: [] for name in detectors}
    for rgb, depth, fx, gt in frames:
        vis = gt[:, 2] > 0
        for name, det in detectors.items():
            hits[name] += keypoint_hits(det(rgb, depth, fx).keypoints, gt, 10.0)[1][vis].tolist()
    return {name: np.asarray(h, dtype=bool) for name, h in hits.items()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--variants", required=True, help="comma-separated weights folders to compare with the shipped ones")
    ap.add_argument("--sets", default="", help="generated sets, SEED:SEQUENCES pairs (e.g. 60000:200)")
    ap.add_argument("--captures", type=Path, action="append", default=[], help="folder of capture folders (repeatable)")
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    from honnotate.perception.detect import Detector
    from honnotate.perception.weights import WeightsError

    try:
        sets = parse_sets(a.sets)
    except ValueError as exc:
        ap.error(str(exc))
    for folder in a.captures:
        if not folder.is_dir():
            ap.error(f"--captures {folder}: no such folder")
    torch.set_num_threads(a.threads)
    try:
        dets = {"shipped": Detector(None, "cpu")}
        dets.update({v: Detector(Path(v), "cpu") for v in a.variants.split(",") if v})
    except WeightsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        jobs = [(f"{b}:{n}", frames_of_set(b, n, Path(tmp))) for b, n in sets]
        jobs += [(str(f), frames_of_captures(f)) for f in a.captures]
        for label, frames in jobs:
            hits = compare(dets, frames)
            ref = hits["shipped"]
            print(f"{label}: {ref.size} visible joints; shipped PCK@10px {ref.mean():.4f}")
            for name, h in hits.items():
                if name != "shipped":
                    print(f"  {name}: {h.mean():.4f} (gained {int((~ref & h).sum())}, lost {int((ref & ~h).sum())})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
