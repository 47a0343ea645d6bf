"""Paired PCK@10px of perception weights folders against the shipped weights, on the same frames.

Where the weights README says "tried, not shipped" with a decision set, this is the command: each
weights folder (``--variants DIR,...``, each holding the detector's files) and the shipped
detector run on every frame of generated held-out scenes made as ``benchmarks/perception.py``
makes its sets (``--sets SEED:SEQUENCES,...``, 2 frames x 1 camera, random grasps, a forearm)
and of existing capture folders (``--captures DIR``: every view of every capture in it). Prints,
per set and variant, PCK@10px of the visible joints and the joints gained and lost against the
shipped detector; the shipped detector's misses by kind (:func:`miss_kinds`) and its PCK@10px split by whether the hand lies wholly in
the image or partly outside it (a ground-truth joint off the image: the crop then holds part of a
hand). Nothing is written to BENCHMARKS.md (a comparison for a weights decision). ``--variants``
may be left out: the shipped detector alone, with its split. With ``--cache DIR`` each detector's
results on each set are kept there, keyed by its weights files, the detection code and the set,
and reused (comparing a new variant then runs only the new variant). A variant may carry
:class:`~honnotate.perception.detect.Detector` options after its folder, ``DIR@KEY=VALUE@...``
(numbers, true / false; e.g. ``runs/w@upright_weight=0.5``), part of its cache key.

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


def partly_outside(gt: np.ndarray, shape: tuple[int, ...]) -> bool:
    """Whether a hand's (21, 3) ground-truth keypoints (u, v pixels, visibility) leave an image
    of ``shape`` (H, W, ...): some joint's pixel centre lies off it."""
    H, W = shape[:2]
    u, v = gt[:, 0], gt[:, 1]
    return bool(np.any((u < -0.5) | (u > W - 0.5) | (v < -0.5) | (v > H - 0.5)))


MISS_KINDS = ("near", "another finger's joint", "same finger's joint", "elsewhere")


def miss_kinds(kp: np.ndarray, gt: np.ndarray, threshold: float = 10.0) -> list[str]:
    """Where each visible joint's miss (> ``threshold`` px) lies, from (21, >=2) detected and (21, 3)
    true keypoints: "near" (within 1.5 x the threshold, no other joint's true place nearer),
    else "another finger's joint" / "same finger's joint" (within the threshold of another joint's
    true place, of another finger or of its own finger or the wrist), else "elsewhere"."""
    from honnotate.models.joints import finger_of

    out = []
    for j in np.nonzero(gt[:, 2] > 0)[0]:
        err = float(np.linalg.norm(kp[j, :2] - gt[j, :2]))
        if err <= threshold:
            continue
        d = np.linalg.norm(gt[:, :2] - kp[j, :2], axis=1)
        d[j] = np.inf
        k = int(d.argmin())
        if err <= 1.5 * threshold and d[k] > err:
            out.append(MISS_KINDS[0])
        elif d[k] <= threshold:
            other = finger_of(k)
            out.append(MISS_KINDS[1] if other is not None and other != finger_of(j) else MISS_KINDS[2])
        else:
            out.append(MISS_KINDS[3])
    return out


def parse_variant(spec: str) -> tuple[Path, dict]:
    """``DIR@KEY=VALUE@...`` -> (folder, Detector keyword options); values are numbers or
    true / false. ValueError naming the spec on a malformed option."""
    folder, *opts = spec.split("@")
    kw: dict = {}
    for o in opts:
        key, eq, value = o.partition("=")
        if not eq or not key.isidentifier() or not value:
            raise ValueError(f"variant {spec!r}: options must look like @KEY=VALUE, got {o!r}")
        low = value.lower()
        if low in ("true", "false"):
            kw[key] = low == "true"
        else:
            try:
                kw[key] = float(value)
            except ValueError:
                raise ValueError(f"variant {spec!r}: {key} must be a number or true / false, got {value!r}") from None
    return Path(folder), kw


def fingerprint(weights: Path, label: str) -> str:
    """A key for one detector's results on one set: the sha1 of its weights files (every ``*.pt``
    of the folder), of the detection code (``perception/detect.py``, ``crops.py``) and of the set's
    label (``SEED:N`` or a captures folder)."""
    import hashlib

    import honnotate.perception.crops as crops_mod
    import honnotate.perception.detect as detect_mod

    h = hashlib.sha1(label.encode())
    for f in sorted(weights.glob("*.pt")) + [Path(detect_mod.__file__), Path(crops_mod.__file__)]:
        h.update(f.name.encode())
        h.update(f.read_bytes())
    return h.hexdigest()[:16]


def save_cached(path: Path, **arrays: np.ndarray) -> None:
    """One detector's results on one set (``hits``, ``outside``, ``kinds``), written atomically."""
    import io

    from honnotate.io.files import atomic_write_bytes

    buf = io.BytesIO()
    np.savez(buf, **arrays)
    atomic_write_bytes(path, buf.getvalue())


def load_cached(path: Path) -> dict[str, np.ndarray] | None:
    """The arrays of :func:`save_cached`, or None (with a warning naming the file, which is then
    computed and written anew) when the file is unreadable or lacks one."""
    try:
        with np.load(path) as f:
            return {k: f[k] for k in ("hits", "outside", "kinds")}
    except Exception as exc:  # truncated, not an npz, missing key
        print(f"warning: {path}: unreadable cached results ({type(exc).__name__}), computing them again", file=sys.stderr)
        return None


def compare(detectors: dict, frames) -> tuple[dict[str, np.ndarray], np.ndarray, list[str]]:
    """Hits (bool per visible joint) of each detector over the same frames; per visible joint
    whether its hand lies partly outside the image (:func:`partly_outside`); the kinds of the first
    detector's misses (:func:`miss_kinds`)."""
    from honnotate.evaluate.cues import keypoint_hits

    hits: dict[str, list] = {name: [] for name in detectors}
    outside: list[bool] = []
    kinds: list[str] = []
    for rgb, depth, fx, gt in frames:
        vis = gt[:, 2] > 0
        outside += [partly_outside(gt, rgb.shape)] * int(vis.sum())
        for i, (name, det) in enumerate(detectors.items()):
            kp = det(rgb, depth, fx).keypoints
            hits[name] += keypoint_hits(kp, gt, 10.0)[1][vis].tolist()
            if i == 0:
                kinds += miss_kinds(kp, gt)
    return {name: np.asarray(h, dtype=bool) for name, h in hits.items()}, np.asarray(outside, dtype=bool), kinds


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--variants", default="", help="comma-separated weights folders to compare with the shipped ones")
    ap.add_argument("--sets", default="", help="generated sets, SEED:SEQUENCES pairs (e.g. 60000:200)")
    ap.add_argument("--captures", type=Path, action="append", default=[], help="folder of capture folders (repeatable)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--cache", type=Path, default=None, help="folder keeping each detector's results per set for reuse")
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
    from honnotate.perception.weights import default_weights_dir

    folders = {"shipped": default_weights_dir()}
    try:
        specs = {v: parse_variant(v) for v in a.variants.split(",") if v}
    except ValueError as exc:
        ap.error(str(exc))
    folders.update({v: folder for v, (folder, _) in specs.items()})
    try:
        dets = {"shipped": Detector(None, "cpu")}
        dets.update({v: Detector(folder, "cpu", **kw) for v, (folder, kw) in specs.items()})
    except (WeightsError, TypeError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if a.cache is not None:
        a.cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        jobs = [(f"{b}:{n}", lambda b=b, n=n: frames_of_set(b, n, Path(tmp))) for b, n in sets]
        jobs += [(str(f), lambda f=f: frames_of_captures(f)) for f in a.captures]
        for label, frames in jobs:
            # a variant's "@KEY=VALUE" options join its set label in the key (none: the key of before)
            paths = {name: a.cache / f"{fingerprint(folders[name], label + ''.join(name.partition('@')[1:]))}.npz"
                     for name in dets} if a.cache else {}
            cached = {name: c for name, p in paths.items() if p.exists() and (c := load_cached(p)) is not None}
            todo = {name: d for name, d in dets.items() if name not in cached}
            if "shipped" in todo:  # the miss kinds are the first detector's
                todo = {"shipped": todo.pop("shipped"), **todo}
            hits, outside, kinds = compare(todo, frames()) if todo else ({}, None, [])
            for name, c in cached.items():
                hits[name] = c["hits"]
                outside = c["outside"] if outside is None else outside
                if name == "shipped":
                    kinds = [str(k) for k in c["kinds"]]
            for name in todo:
                if name in paths:
                    save_cached(paths[name], hits=hits[name], outside=outside,
                                kinds=np.asarray(kinds if name == "shipped" else [], dtype=str))
            ref = hits["shipped"]
            print(f"{label}: {ref.size} visible joints; shipped PCK@10px {ref.mean():.4f}")
            for what, m in (("hand wholly in the image", ~outside), ("hand partly outside it", outside)):
                print(f"  shipped, {what}: {ref[m].mean() if m.any() else float('nan'):.4f} of {int(m.sum())}")
            print("  shipped misses: " + ", ".join(f"{k} {kinds.count(k)}" for k in MISS_KINDS))
            for name in dets:
                if name != "shipped":
                    h = hits[name]
                    print(f"  {name}: {h.mean():.4f} (gained {int((~ref & h).sum())}, lost {int((ref & ~h).sum())}; "
                          f"hand wholly in the image {h[~outside].mean():.4f}, partly outside "
                          f"{h[outside].mean() if outside.any() else float('nan'):.4f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
