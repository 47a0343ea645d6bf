"""Which keypoint loss trains faster: the same batches, the same start, one loss per run.

    python benchmarks/keypoint_losses.py [--steps 250] [--batch 16] [--init shipped|none]
                                         [--variants mse,fg10,int0.1,fg10+int0.1] [--work DIR]

Draws ``steps`` training batches of synthetic hand crops once (seed 0, the training data of
``honnotate train keypoints``, composites rendered at 640x480) and a held-out set (seed 77,
``--eval`` crops), then for each loss variant trains the keypoint network from the same start
(the shipped weights, or a seeded random network with ``--init none``) on exactly those
batches (AdamW, ``--lr``, constant after a 20-step warm-up) and reports on the held-out crops: the
median and mean 2D error of visible joints in crop pixels, the fraction within 4 and 6.7 crop
pixels (6.7 crop px = 10 image px for a hand box of 140 px at 640x480, the median of the
perception benchmark), and the mean heatmap peak (the confidence) of visible joints.

Variants: ``mse`` (plain squared heatmap error), ``fg<k>`` (cells weighted by 1 + k * target),
``int<w>`` (integral-regression coordinate term of weight w), joined by ``+``. Writes the
section "keypoint_losses" of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_section  # noqa: E402


def parse_variant(name: str) -> dict[str, float]:
    out = {"foreground": 0.0, "integral": 0.0}
    for part in name.split("+"):
        if part == "mse":
            continue
        if part.startswith("fg"):
            out["foreground"] = float(part[2:])
        elif part.startswith("int"):
            out["integral"] = float(part[3:])
        else:
            raise ValueError(f"unknown loss variant {part!r} (mse, fg<k>, int<w>)")
    return out


def make_set(path: Path, seed: int, n: int, workers: int) -> dict[str, torch.Tensor]:
    """n keypoint samples (images stored as uint8) cached in ``path``."""
    if path.is_file():
        return torch.load(path, weights_only=True)
    from torch.utils.data import DataLoader

    from honnotate.perception.data import CompositeConfig, SyntheticComposites

    ds = SyntheticComposites(CompositeConfig(width=640, height=480, seed=seed), "keypoints")
    _ = ds.grasp_bank
    keys = ("image", "heatmaps", "weights", "keypoints")
    parts: dict[str, list[torch.Tensor]] = {k: [] for k in keys}
    loader = DataLoader(torch.utils.data.Subset(ds, range(n)), batch_size=32, num_workers=workers)
    for b in loader:
        for k in keys:
            parts[k].append((b[k] * 255).round().to(torch.uint8) if k == "image" else b[k])
    data = {k: torch.cat(v) for k, v in parts.items()}
    torch.save(data, path)
    return data


def evaluate(model, data: dict[str, torch.Tensor]) -> dict[str, float]:
    from honnotate.perception.crops import decode_heatmaps

    errs, conf = [], []
    model.eval()
    with torch.no_grad():
        for i in range(0, len(data["image"]), 32):
            x = data["image"][i:i + 32].float() / 255
            kp = data["keypoints"][i:i + 32]
            d = decode_heatmaps(model(x)[-1], 4)
            vis = kp[..., 2] > 0
            errs.append((d[..., :2] - kp[..., :2]).norm(dim=-1)[vis])
            conf.append(d[..., 2][vis])
    model.train()
    e = torch.cat(errs).numpy()
    return {"median": float(np.median(e)), "mean": float(e.mean()), "pck4": float((e <= 4).mean()),
            "pck6.7": float((e <= 6.7).mean()), "conf": float(torch.cat(conf).mean()), "joints": int(e.size)}


def run_variant(name: str, train: dict, held: dict, steps: int, batch: int, lr: float, init: str) -> dict:
    from honnotate.perception.crops import pixels_to_cells
    from honnotate.perception.networks import KeypointNet, build_network
    from honnotate.perception.train import keypoint_loss
    from honnotate.perception.weights import load_weights

    opts = parse_variant(name)
    torch.manual_seed(0)
    model = load_weights("keypoints")[0] if init == "shipped" else build_network("keypoints")
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    t0 = time.perf_counter()
    for step in range(steps):
        for g in opt.param_groups:
            g["lr"] = lr * min(1.0, (step + 1) / 20)
        sl = slice(step * batch, (step + 1) * batch)
        kp = train["keypoints"][sl]
        loss = keypoint_loss(model(train["image"][sl].float() / 255), train["heatmaps"][sl], train["weights"][sl],
                             points=pixels_to_cells(kp, KeypointNet.stride), **opts)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()
    r = evaluate(model, held)
    r["seconds"] = time.perf_counter() - t0
    print(name, r, flush=True)
    return r


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=250)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--eval", type=int, default=256, help="held-out crops")
    ap.add_argument("--init", choices=("shipped", "none"), default="shipped")
    ap.add_argument("--variants", default="mse,fg10,int0.1,fg10+int0.1")
    ap.add_argument("--work", type=Path, default=Path("runs/keypoint_losses"))
    ap.add_argument("--workers", type=int, default=2, help="processes drawing the samples (once)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--only", default="", help="run these variants and print, without writing BENCHMARKS.md")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    a.work.mkdir(parents=True, exist_ok=True)
    n = a.steps * a.batch
    train = make_set(a.work / f"train_seed0_{n}.pt", 0, n, a.workers)
    held = make_set(a.work / f"heldout_seed77_{a.eval}.pt", 77, a.eval, a.workers)
    names = [v for v in (a.only or a.variants).split(",") if v]
    for v in names:
        parse_variant(v)
    from honnotate.perception.weights import load_weights

    rows = ["| loss | median px | mean px | within 4 px | within 6.7 px | mean peak | s |", "|---|---|---|---|---|---|---|"]
    if a.init == "shipped":
        r = evaluate(load_weights("keypoints")[0], held)
        rows.append(f"| (start: shipped weights) | {r['median']:.2f} | {r['mean']:.2f} | {r['pck4']:.3f} | "
                    f"{r['pck6.7']:.3f} | {r['conf']:.2f} | |")
        print(rows[-1], flush=True)
    for v in names:
        r = run_variant(v, train, held, a.steps, a.batch, a.lr, a.init)
        rows.append(f"| {v} | {r['median']:.2f} | {r['mean']:.2f} | {r['pck4']:.3f} | {r['pck6.7']:.3f} | "
                    f"{r['conf']:.2f} | {r['seconds']:.0f} |")
    body = (f"Command: `python benchmarks/keypoint_losses.py --steps {a.steps} --batch {a.batch} --lr {a.lr} "
            f"--init {a.init} --variants {','.join(names)}`. Every loss trains the keypoint network from the same "
            f"start ({'the shipped weights' if a.init == 'shipped' else 'a seeded random network'}) on the same "
            f"{a.steps} batches of {a.batch} synthetic crops (seed 0); errors on {a.eval} held-out crops (seed 77) "
            "in crop pixels (128 px crops; 6.7 crop px = 10 image px for a 140 px hand box at 640x480), visible "
            "joints; mean peak = mean confidence of visible joints. `fg<k>`: cells weighted by 1 + k * target; "
            "`int<w>`: integral-regression term of weight w.\n\n" + "\n".join(rows) + "\n")
    print(body)
    if not a.only:
        write_section("keypoint_losses", body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
