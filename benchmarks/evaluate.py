"""Benchmark: the 14 HO-3D metrics on 20,000 frames x 778 vertices (CPU).

Random realistic data: per frame a hand-sized point cloud (778 vertices, 21 joints, ~3-4 cm
spread around a random position 0.5 m in front of the camera); the prediction adds 5 mm noise
to the vertices and 1 cm to the joints. Times one full ``evaluate_ho3d`` call (the issue's bar:
<= 60 s on 2 CPU cores) and a 2,000-frame call for reference, and writes section "evaluate" of
BENCHMARKS.md.

    python benchmarks/evaluate.py
"""

from __future__ import annotations

import os
import time

import numpy as np

from _common import write_section
from honnotate.evaluate.ho3d_metrics import evaluate_ho3d


def _data(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    centre = rng.normal(size=(n, 1, 3)).astype(np.float32) * 0.05 + np.array([0.0, 0.0, 0.5], np.float32)
    verts = centre + rng.normal(size=(n, 778, 3)).astype(np.float32) * 0.03
    xyz = centre + rng.normal(size=(n, 21, 3)).astype(np.float32) * 0.04
    verts_p = verts + rng.normal(size=verts.shape).astype(np.float32) * 0.005
    xyz_p = xyz + rng.normal(size=xyz.shape).astype(np.float32) * 0.01
    return xyz, xyz_p, verts, verts_p


def _time(n: int) -> tuple[float, dict]:
    xyz, xyz_p, verts, verts_p = _data(n)
    t0 = time.perf_counter()
    res = evaluate_ho3d(xyz, xyz_p, verts, verts_p)
    return time.perf_counter() - t0, res.scores


def main() -> None:
    rows = []
    for n in (2_000, 20_000):
        seconds, scores = _time(n)
        rows.append((n, seconds, scores))
        print(f"{n} frames: {seconds:.1f} s")
    body = [
        "Full 14 HO-3D metrics (`evaluate_ho3d`, float64, KD-trees per chunk of 256 frames queried on all cores), "
        f"random hand-sized point clouds, 778 vertices, prediction noise 5 mm (vertices) / 1 cm (joints); "
        f"{os.cpu_count()} CPU cores visible. Target: 20,000 frames <= 60 s on 2 cores.",
        "",
        "| frames | wall time (s) | ms / frame | mesh_al_mean3d (cm) | f_score_5 | f_score_15 |",
        "|---|---|---|---|---|---|",
    ]
    for n, seconds, scores in rows:
        body.append(
            f"| {n} | {seconds:.1f} | {seconds / n * 1e3:.2f} | {scores['mesh_al_mean3d']:.3f} | "
            f"{scores['f_score_5']:.3f} | {scores['f_score_15']:.3f} |"
        )
    body.append("")
    body.append("Command: `python benchmarks/evaluate.py` (one run each, no warm-up).")
    write_section("evaluate", "\n".join(body))


if __name__ == "__main__":
    main()
