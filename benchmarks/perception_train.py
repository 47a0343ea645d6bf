"""Cost of training the perception networks on CPU: seconds per optimiser step of each network
(the shipped default architecture and the full-resolution U-Net it replaced; float32 and bfloat16
mixed precision, ``--precision bf16`` of ``honnotate train``) and milliseconds per rendered
training sample (keypoints: one crop per composite, and two, ``--crops-per-scene 2``; and a
crop read from a sample bank, ``--bank``: colour jitter and heatmap targets only).

Run: ``python benchmarks/perception_train.py [--threads 1]`` (writes the BENCHMARKS.md section
"perception_train"). One thread is how two trainings share a 2-core machine.
"""

from __future__ import annotations

import argparse
import time

import torch

from _common import machine_description, write_section
from honnotate.perception.data import CompositeConfig, SyntheticComposites
from honnotate.perception.networks import build_network, count_parameters
from honnotate.perception.train import keypoint_loss, segmentation_loss

CASES = [
    # label, task, arch override, batch, input (C, H, W)
    ("segmentation, default (U-Net at half resolution + full-resolution branch)", "segmentation", {}, 8,
     (3, 240, 320)),
    ("segmentation, U-Net at full resolution (the earlier default)", "segmentation",
     {"stem_stride": 1, "levels": 4, "max_channels": 96}, 8, (3, 240, 320)),
    ("keypoints, default (3 stages)", "keypoints", {}, 16, (3, 128, 128)),
    ("keypoints, with a stride-16 context branch (the shipped kp11, context=2)", "keypoints", {"context": 2}, 16,
     (3, 128, 128)),
]


def step_seconds(task: str, arch: dict, batch: int, shape: tuple[int, int, int], steps: int,
                 precision: str = "fp32") -> tuple[float, int]:
    """Median seconds of an AdamW step (forward, loss, backward, update) on random inputs; the
    forward pass under bfloat16 autocast with ``precision="bf16"`` (as :func:`train` does)."""
    torch.manual_seed(0)
    model = build_network(task, arch)
    opt = torch.optim.AdamW(model.parameters(), 1e-3)
    x = torch.rand(batch, *shape)
    if task == "segmentation":
        target = torch.randint(0, 3, (batch, *shape[1:]))
    else:
        hm = torch.rand(batch, 21, shape[1] // 4, shape[2] // 4)
        w = torch.ones(batch, 21)
    times = []
    for i in range(steps + 1):
        t0 = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            out = model(x)
        loss = segmentation_loss(out.float(), target) if task == "segmentation" else \
            keypoint_loss([o.float() for o in out], hm, w)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if i:  # the first step allocates
            times.append(time.perf_counter() - t0)
    return sorted(times)[len(times) // 2], count_parameters(model)


def sample_ms(task: str, width: int, height: int, n: int, crops_per_scene: int = 1) -> float:
    """Mean milliseconds per training sample (render, composite, augment, crop)."""
    ds = SyntheticComposites(CompositeConfig(width=width, height=height, grasps_per_object=2,
                                             crops_per_scene=crops_per_scene), task)
    _ = ds.grasp_bank
    ds[0]
    t0 = time.perf_counter()
    for i in range(1, n + 1):
        ds[i]
    return 1e3 * (time.perf_counter() - t0) / n


def bank_sample_ms(n: int) -> float:
    """Mean milliseconds per keypoint sample read from a sample bank (colour jitter, targets)."""
    import tempfile

    from honnotate.perception.bank import SampleBank, write_bank

    cfg = CompositeConfig(width=640, height=480, grasps_per_object=2, crops_per_scene=2)
    with tempfile.TemporaryDirectory() as tmp:
        write_bank(SyntheticComposites(cfg, "keypoints", crop_colour=False), tmp, n, crop=cfg.crop)
        ds = SampleBank([tmp], cfg.crop, cfg.augment)
        ds[0]
        t0 = time.perf_counter()
        for i in range(1, n + 1):
            ds[i]
        return 1e3 * (time.perf_counter() - t0) / n


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--steps", type=int, default=5)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    rows = ["| network | parameters | batch | input | s per step, fp32 | s per step, bf16 |", "|---|---|---|---|---|---|"]
    for label, task, arch, batch, shape in CASES:
        sec, n = step_seconds(task, arch, batch, shape, a.steps)
        sec16, _ = step_seconds(task, arch, batch, shape, a.steps, "bf16")
        rows.append(f"| {label} | {n / 1e6:.2f} M | {batch} | {shape[2]}x{shape[1]} | {sec:.2f} | {sec16:.2f} |")
        print(rows[-1], flush=True)
    rows += ["", "| training sample | ms per sample |", "|---|---|"]
    for task, w, h, per_scene in (("segmentation", 320, 240, 1), ("keypoints", 640, 480, 1), ("keypoints", 640, 480, 2)):
        what = f", {per_scene} crops per composite" if task == "keypoints" else ""
        rows.append(f"| {task}, rendered at {w}x{h}{what} | {sample_ms(task, w, h, 10 * per_scene, per_scene):.0f} |")
        print(rows[-1], flush=True)
    rows.append(f"| keypoints, a crop read from a sample bank (`--bank`: colour jitter, heatmap targets) | "
                f"{bank_sample_ms(20):.1f} |")
    print(rows[-1], flush=True)
    body = (f"Machine: {machine_description()}, torch {a.threads} thread(s). Command: "
            f"`python benchmarks/perception_train.py --threads {a.threads}`. Median of {a.steps} AdamW steps "
            "on random inputs (bf16: bfloat16 autocast forward, as `honnotate train --precision bf16`; fast "
            "where the CPU has AMX, slower without: compare the rows on your machine); samples: mean of 10 composites (render, background, "
            "augmentation; keypoints: the 128 px hand crop; 2 crops per composite: 20 crops of 10); bank: mean of "
            "20 reads.\n\n" + "\n".join(rows) + "\n")
    print(body)
    write_section("perception_train", body)


if __name__ == "__main__":
    main()
