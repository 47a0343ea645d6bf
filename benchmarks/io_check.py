"""Capture I/O throughput: writing, lazy reading and ``check_sequence`` on a VGA sequence.

Run: ``python benchmarks/io_check.py`` (writes the ``io`` section of BENCHMARKS.md).
Builds a 2-camera, 20-frame, 640x480 sequence (PNG colour, uint16 depth, cues) in a temporary
folder, then times one frame write, one frame read (all modalities, both cameras) and the full
check with and without decoding.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from _common import timeit, write_section
from honnotate.geometry import Camera
from honnotate.io.check import check_sequence
from honnotate.io.sequence import SequenceWriter, open_sequence

W, H, N_CAMS, N_FRAMES = 640, 480, 2, 20


def _frame(rng: np.random.Generator) -> dict:
    yy, xx = np.mgrid[0:H, 0:W]
    rgb = np.stack([(xx + rng.integers(0, 50)) % 256, yy % 256, (xx ^ yy) % 256], -1).astype(np.uint8)
    depth = 0.5 + 0.1 * np.sin(xx / 40.0) * np.cos(yy / 30.0)
    depth[rng.uniform(size=(H, W)) < 0.05] = 0.0
    seg = np.zeros((H, W), np.uint8)
    seg[150:330, 200:400] = 1
    seg[250:400, 300:450] = 2
    kp = np.stack([rng.uniform(0, W - 1, 21), rng.uniform(0, H - 1, 21), rng.uniform(0, 1, 21)], 1)
    return {"rgb": rgb, "depth": depth, "segmentation": seg, "keypoints2d": kp}


def main() -> None:
    rng = np.random.default_rng(0)
    cams = [Camera.from_intrinsics(615.0, 615.0, 319.5, 239.5, W, H, cam_to_world=torch.eye(4), name=str(i))
            for i in range(N_CAMS)]
    frames = [_frame(rng) for _ in range(4)]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "seq"
        writer = SequenceWriter(root, cams, 0.001, {"object": "006_mustard_bottle"})
        t0 = time.perf_counter()
        for f in range(N_FRAMES):
            for c in range(N_CAMS):
                writer.write_frame(f, str(c), **frames[(f + c) % len(frames)])
        write_ms = (time.perf_counter() - t0) * 1e3 / (N_FRAMES * N_CAMS)
        seq = open_sequence(root)

        def read_frame():
            for c in seq.camera_ids:
                seq.rgb(c, 5), seq.depth(c, 5), seq.segmentation(c, 5), seq.keypoints2d(c, 5)

        read_ms = timeit(read_frame, warmup=1, repeat=5) / N_CAMS
        open_ms = timeit(lambda: open_sequence(root).cameras, warmup=1, repeat=5)
        check_ms = timeit(lambda: check_sequence(root), warmup=0, repeat=3)
        headers_ms = timeit(lambda: check_sequence(root, decode=False), warmup=1, repeat=5)
        assert check_sequence(root).ok
    n = N_FRAMES * N_CAMS
    body = f"""
{N_CAMS} cameras x {N_FRAMES} frames, {W}x{H}, PNG colour + uint16 depth + segmentation + keypoints
(durable atomic writes, fsync per file).

| operation | time |
|---|---|
| write one camera-frame (4 files) | {write_ms:.1f} ms |
| read one camera-frame (rgb, depth m, seg, keypoints) | {read_ms:.1f} ms |
| open sequence + build cameras (headers only) | {open_ms:.1f} ms |
| `check_sequence` (decode + verify all) | {check_ms:.0f} ms ({check_ms / n:.1f} ms per camera-frame) |
| `check_sequence(decode=False)` (headers only) | {headers_ms:.0f} ms ({headers_ms / n:.2f} ms per camera-frame) |
"""
    print(body)
    write_section("io", body)


if __name__ == "__main__":
    main()
