"""Benchmark of the hand layer: HandModel forward+backward vs smplx's MANO, batch 1/16/64.

Run: ``python benchmarks/hand.py`` (writes the "hand" section of BENCHMARKS.md). Models: a
random model in the MANO layout with MANO's sizes (778 vertices, 1538 faces, 10 betas, pose
correctives), the same file loaded by smplx, and the open hand when it can be loaded. float32,
CPU and CUDA when available. Timed: forward + backward of a loss on vertices and joints
w.r.t. global_orient, hand_pose, betas and transl (median of 20 runs).
"""

from __future__ import annotations

import pickle
import tempfile
from pathlib import Path

import torch

from _common import timeit, write_section
from honnotate.models.hand import HandModel
from honnotate.models.mano import load_mano, random_mano_dict

BATCHES = (1, 16, 64)


def _inputs(B: int, num_betas: int, device: str) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(B)
    shapes = ((B, 3), (B, 45), (B, num_betas), (B, 3))
    return [(torch.randn(*s, generator=g) * 0.5).to(device).requires_grad_(True) for s in shapes]


def _step_honnotate(model: HandModel, args: list[torch.Tensor]):
    def run():
        out = model(*args)
        (out.vertices.square().sum() + out.joints.square().sum()).backward()
    return run


def _step_smplx(model, args: list[torch.Tensor]):
    def run():
        out = model(global_orient=args[0], hand_pose=args[1], betas=args[2], transl=args[3])
        (out.vertices.square().sum() + out.joints.square().sum()).backward()
    return run


def main() -> None:
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        mano_dir = Path(tmp) / "mano"
        mano_dir.mkdir()
        with open(mano_dir / "MANO_RIGHT.pkl", "wb") as f:
            pickle.dump(random_mano_dict(seed=0), f, protocol=2)
        models = {"MANO layout (random, V=778)": load_mano(mano_dir, "right")}
        try:
            from honnotate.models.open_hand import load_open_hand

            models["open hand"] = load_open_hand("right")
        except Exception as exc:  # the open hand is optional here; say why it is missing
            print(f"open hand skipped: {type(exc).__name__}: {exc}")
        try:
            import smplx

            ref_cpu = smplx.create(tmp, model_type="mano", is_rhand=True, use_pca=False, flat_hand_mean=True)
        except Exception as exc:
            print(f"smplx skipped: {type(exc).__name__}: {exc}")
            ref_cpu = None
        for device in devices:
            sync = device == "cuda"
            for name, data in models.items():
                model = HandModel(data).to(device)
                ref = ref_cpu.to(device) if ref_cpu is not None and name.startswith("MANO") else None
                for B in BATCHES:
                    args = _inputs(B, model.num_betas, device)
                    t_ours = timeit(_step_honnotate(model, args), warmup=10, repeat=20, sync_cuda=sync)
                    t_ref = None
                    if ref is not None:
                        t_ref = timeit(_step_smplx(ref, args), warmup=10, repeat=20, sync_cuda=sync)
                    rows.append((device, name, data.num_vertices, B, t_ours, t_ref))
                    ref_txt = f"{t_ref:.2f}" if t_ref is not None else "-"
                    print(f"{device:4s} {name:28s} B={B:3d}  honnotate {t_ours:7.2f} ms  smplx {ref_txt} ms")
    lines = [
        "HandModel forward + backward (loss on vertices and 21 joints; grads w.r.t. global_orient, "
        "hand_pose, betas, transl), float32, median of 20 runs. smplx: `smplx.create(model_type='mano', "
        "use_pca=False, flat_hand_mean=True)` on the same file and inputs.",
        "",
        "| device | model | V | batch | honnotate (ms) | smplx (ms) |",
        "|---|---|---|---|---|---|",
    ]
    for device, name, V, B, t_ours, t_ref in rows:
        ref_txt = f"{t_ref:.2f}" if t_ref is not None else "-"
        lines.append(f"| {device} | {name} | {V} | {B} | {t_ours:.2f} | {ref_txt} |")
    lines += ["", "Command: `python benchmarks/hand.py`."]
    write_section("hand", "\n".join(lines), device=devices[-1])


if __name__ == "__main__":
    main()
