"""Training of the perception networks: a resumable loop with checkpoints, logs and plots.

:func:`train` writes into ``config.out`` (``<task>`` is "segmentation" or "keypoints", so both
networks can be trained into one folder, which is then a weights folder for ``honnotate detect``):

* ``<task>_config.json``: the resolved configuration (written first; a resume must match it
  except for ``steps``);
* ``<task>_checkpoint.pt``: model, optimiser, step (atomic, every ``checkpoint_every`` steps
  and at the end), read with ``torch.load(weights_only=True)``;
* ``segmentation.pt`` / ``keypoints.pt``: the weights file (:mod:`honnotate.perception.weights`);
* ``<task>_losses.csv`` (step, loss, learning rate, seconds) and ``<task>_loss.png``.

Batches are a pure function of ``(seed, step)``: sample ``step * batch + j`` of the synthetic
dataset (or of the mixture with ``data`` sequences, or of the sample banks), so a resumed run
sees exactly the batches an uninterrupted run would have seen.

:func:`write_training_bank` stores the first samples of a run's data as a sample bank
(:mod:`honnotate.perception.bank`); a run with ``bank`` trains on those crops again and again
with fresh colour jitter, several times faster per step on a CPU, where making the samples
costs more than the network's step.
"""

from __future__ import annotations

import copy
import csv
import io
import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from honnotate.io.files import atomic_write_bytes, atomic_write_text
from honnotate.perception.bank import SampleBank, write_bank
from honnotate.perception.crops import bone_targets, pixels_to_cells
from honnotate.perception.data import CompositeConfig, SequenceFrames, SyntheticComposites
from honnotate.perception.networks import (
    BONES,
    NUM_CLASSES,
    NUM_JOINTS,
    KeypointNet,
    build_network,
    count_parameters,
    full_arch,
    grow_state_dict,
)
from honnotate.perception.weights import WEIGHTS_FILES, save_weights

#: Training precisions (:class:`TrainConfig`; "auto": :func:`resolve_precision`).
PRECISIONS = ("fp32", "bf16", "auto")

__all__ = ["PRECISIONS", "resolve_precision", "cpu_has_amx", "TrainConfig", "TrainResult", "train", "write_training_bank", "load_init", "ema_update", "segmentation_loss", "keypoint_loss", "resolve_device"]


@dataclass(frozen=True)
class TrainConfig:
    """One training run.

    task: "segmentation" or "keypoints"; out: output folder; steps: total optimiser steps;
    batch: images per step; lr: peak Adam learning rate (linear warm-up over ``warmup`` steps,
    cosine decay to 5% at ``steps``); weight_decay: AdamW decay; seed: data and init seed;
    checkpoint_every / log_every: steps; device: "auto" (CUDA when present), "cpu", "cuda:0"...;
    workers: DataLoader worker processes; data: capture folders mixed in for bootstrapping
    (``data_fraction`` of the samples); arch: network architecture (defaults per task);
    synthetic: the composite settings; init: a weights file (or weights folder) of this task whose
    network starts the run instead of a random initialisation (fine-tuning, or continuing the
    shipped weights: checkpoints are per run folder, weights files travel); its architecture
    must equal ``arch``, or have fewer keypoint backbone ``blocks`` (the network is grown,
    :func:`~honnotate.perception.networks.grow_state_dict`); foreground, integral: keypoint
    loss options (:func:`keypoint_loss`); bone_weight: with a ``bones=1`` keypoint network, the
    weight of its bone heatmaps' loss (:func:`keypoint_loss` against
    :func:`~honnotate.perception.crops.bone_targets` of the crop's joints) added to the joints';
    hard_joints: keypoints only: K of :func:`keypoint_loss`'s hard keypoint term (the K worst
    joints of each crop weigh in twice; 0: off, the runs before 2026-12-06 evening);
    precision: "fp32", or "bf16" (mixed precision: the network's forward pass under
    ``torch.autocast`` in bfloat16, weights, optimiser and loss in float32; on CPUs with AMX a
    step of the keypoint network is ~2.4x faster, see ``benchmarks/perception_train.py``, but
    on one with AVX-512 BF16 and no AMX it was ~1.3x slower than fp32 (one-off): measure first; on CUDA
    it needs a GPU with bfloat16), or "auto" (:func:`resolve_precision`: bf16 where it is fast,
    else fp32; the weights file records which one ran); ema: decay of an exponential moving average of the weights
    (0: off; e.g. 0.999 averages over about the last 1000 steps), updated after every step
    with the decay ``min(ema, (1 + step) / (10 + step))`` and exported instead of the raw
    weights (the averaged network is smoother than the last step's; the checkpoint keeps both);
    bank: keypoints only: sample bank folders (:mod:`honnotate.perception.bank`, written by
    :func:`write_training_bank`) to train on instead of drawing composites and ``data`` frames
    (each crop's colour jitter drawn anew; ``synthetic.crop`` size and margin must be the banks');
    flip: segmentation only: the chance of each training image being mirrored left-right with
    its labels (a right hand then looks like a left one: the detector's mirrored segmentation
    pass, ``Detector(seg_flip=True)``, and captures of left hands); drawn per step from ``seed``,
    so a resumed run mirrors the same images; 0: none (the runs before 2026-12-05).
    """

    task: str = "segmentation"
    out: str = "runs/perception"
    steps: int = 2000
    batch: int = 8
    lr: float = 2e-3
    weight_decay: float = 1e-4
    warmup: int = 50
    seed: int = 0
    checkpoint_every: int = 200
    log_every: int = 10
    device: str = "auto"
    workers: int = 0
    data: tuple[str, ...] = ()
    data_fraction: float = 0.5
    arch: dict[str, Any] = field(default_factory=dict)
    synthetic: CompositeConfig = field(default_factory=CompositeConfig)
    init: str | None = None
    foreground: float = 0.0
    integral: float = 0.0
    bone_weight: float = 1.0
    hard_joints: int = 0
    precision: str = "fp32"
    ema: float = 0.0
    bank: tuple[str, ...] = ()
    flip: float = 0.0

    def __post_init__(self) -> None:
        if self.task not in ("segmentation", "keypoints"):
            raise ValueError(f"task must be 'segmentation' or 'keypoints', got {self.task!r}")
        for name in ("steps", "batch", "checkpoint_every", "log_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if not 0.0 <= self.ema < 1.0:
            raise ValueError(f"ema must be in [0, 1) (0: off), got {self.ema}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        if not 0 <= self.hard_joints <= NUM_JOINTS:
            raise ValueError(f"hard_joints must be in [0, {NUM_JOINTS}] (0: no hard keypoint term), got {self.hard_joints}")
        if not self.bone_weight >= 0:
            raise ValueError(f"bone_weight must be >= 0, got {self.bone_weight}")
        if not 0.0 <= self.flip <= 1.0:
            raise ValueError(f"flip must be a probability in [0, 1], got {self.flip}")
        if self.flip and self.task != "segmentation":
            raise ValueError("flip (mirrored training images) is for the segmentation task only: a mirrored hand "
                             "is a left hand, and the keypoints are those of a right (MANO) hand")
        if self.bank and self.task != "keypoints":
            raise ValueError("sample banks hold keypoint crops: bank is for the keypoints task only")
        if self.bank and self.data:
            raise ValueError("a bank replaces the generated data: write the --data captures into the bank "
                             "(--write-bank with --data) instead of passing both")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["data"] = list(self.data)
        d["bank"] = list(self.bank)
        d["arch"] = full_arch(self.task, self.arch)
        return json.loads(json.dumps(d))  # tuples -> lists, as written to JSON


@dataclass(frozen=True)
class TrainResult:
    """out: run folder; weights: the weights file; steps: steps done; losses: (steps,) float
    loss per step of this process (resumed runs: from the resume point)."""

    out: Path
    weights: Path
    steps: int
    losses: np.ndarray


def cpu_has_amx(cpuinfo: str | Path = "/proc/cpuinfo") -> bool:
    """Whether the CPU has AMX bfloat16 units (the ``amx_bf16`` flag of ``cpuinfo``; False where
    the file is unreadable, e.g. not Linux)."""
    try:
        with open(cpuinfo) as f:
            for line in f:
                if line.startswith("flags"):
                    return "amx_bf16" in line.split(":", 1)[1].split()
    except OSError:
        pass
    return False


def resolve_precision(precision: str, device: torch.device) -> str:
    """The precision a run uses: "auto" -> "bf16" on a CUDA GPU with bfloat16 or a CPU with AMX
    (where bfloat16 autocast steps are ~2.4x faster, BENCHMARKS perception_train), else "fp32";
    "fp32" and "bf16" as given."""
    if precision != "auto":
        return precision
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    return "bf16" if device.type == "cpu" and cpu_has_amx() else "fp32"


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """"auto" -> CUDA when available else CPU; anything else as given."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def segmentation_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy plus soft Dice on the object and hand classes (small classes count).

    Args:
        logits: (B, C, H, W) float. labels: (B, H, W) int64 in {0, ..., C - 1} (0 background;
            the Dice term on every other class).

    Returns:
        () float loss.
    """
    if logits.ndim != 4 or labels.shape != (logits.shape[0], *logits.shape[2:]):
        raise ValueError(f"expected logits (B, C, H, W) and labels (B, H, W), got {tuple(logits.shape)}, {tuple(labels.shape)}")
    ce = torch.nn.functional.cross_entropy(logits, labels)
    prob = logits.softmax(1)[:, 1:]
    onehot = torch.nn.functional.one_hot(labels, logits.shape[1]).permute(0, 3, 1, 2)[:, 1:].to(prob.dtype)
    inter = (prob * onehot).sum((0, 2, 3))
    dice = 1 - (2 * inter + 1) / (prob.sum((0, 2, 3)) + onehot.sum((0, 2, 3)) + 1)
    return ce + dice.mean()


def keypoint_loss(stages: list[torch.Tensor], target: torch.Tensor, weights: torch.Tensor, *,
                  foreground: float = 0.0, integral: float = 0.0, points: torch.Tensor | None = None,
                  beta: float = 20.0, hard: int = 0) -> torch.Tensor:
    """Heatmap loss over all stages (intermediate supervision), per joint weighted.

    The base term is the mean squared heatmap error, each cell weighted by ``1 + foreground *
    target`` (``foreground`` > 0 makes the few cells of the peak count more than the many of
    the background, whose near-zero error otherwise dominates: peaks rise sooner). With
    ``integral`` > 0 an integral-regression term is added: the expected cell of
    ``softmax(beta * heatmap)`` against the target point, L1 in cells (a coordinate loss that
    pulls the mass of a spread or doubled heatmap to the right place). With ``hard`` = K > 0 an
    online hard keypoint mining term is added (Chen et al. 2018, CPN): per crop and stage the
    mean of the K largest weighted per-joint squared errors (a fingertip put on the neighbouring
    finger's errs twice, where it is and where it is not, and weighs in again).

    Args:
        stages: list of (B, J, h, w) predicted heatmaps. target: (B, J, h, w). weights: (B, J).
        foreground: weight of the target's peak cells. integral: weight of the coordinate term.
        points: (B, J, 2) target points in heatmap cells (x = column, y = row; needed when
            ``integral`` > 0). beta: softmax sharpness (heatmaps peak at 1). hard: K joints
            per crop for the hard keypoint term (0: none; at most J).

    Returns:
        () float loss (the squared error scaled by 100: heatmaps are mostly ~0).
    """
    if weights.shape != target.shape[:2]:
        raise ValueError(f"weights must be (B, J) = {tuple(target.shape[:2])}, got {tuple(weights.shape)}")
    if integral > 0 and (points is None or points.shape != (*target.shape[:2], 2)):
        raise ValueError(f"the integral term needs points (B, J, 2) = {(*target.shape[:2], 2)}, got "
                         f"{None if points is None else tuple(points.shape)}")
    if not 0 <= hard <= target.shape[1]:
        raise ValueError(f"hard must be in [0, {target.shape[1]}] (joints per crop), got {hard}")
    norm = weights.sum().clamp(min=1)
    cell_w = 1.0 + foreground * target if foreground > 0 else None
    h, w = target.shape[-2:]
    total = target.new_zeros(())
    for hm in stages:
        if hm.shape != target.shape:
            raise ValueError(f"heatmaps {tuple(hm.shape)} do not match the target {tuple(target.shape)}")
        sq = (hm - target) ** 2
        if cell_w is not None:
            sq = sq * cell_w
        per_joint = 100.0 * sq.mean((2, 3)) * weights
        total = total + per_joint.sum() / norm
        if hard > 0:
            total = total + per_joint.topk(hard, dim=1).values.mean()
        if integral > 0:
            prob = torch.softmax(beta * hm.flatten(2), -1).view_as(hm)
            ex = (prob.sum(2) * torch.arange(w, dtype=hm.dtype, device=hm.device)).sum(-1)
            ey = (prob.sum(3) * torch.arange(h, dtype=hm.dtype, device=hm.device)).sum(-1)
            l1 = (ex - points[..., 0]).abs() + (ey - points[..., 1]).abs()
            total = total + integral * (l1 * weights).sum() / norm
    return total / len(stages)


class _Mixture(Dataset):
    """Synthetic samples mixed with sequence frames: index -> source drawn from (seed, index)."""

    def __init__(self, synthetic: Dataset, real: Dataset | None, fraction: float, seed: int) -> None:
        self.synthetic, self.real, self.fraction, self.seed = synthetic, real, fraction, seed

    def __len__(self) -> int:
        return 1 << 40

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        if self.real is not None and len(self.real):
            rng = np.random.default_rng([self.seed, int(index), 3])
            if rng.random() < self.fraction:  # a random frame, augmented as sample `index` (see SequenceFrames)
                return self.real[int(rng.integers(len(self.real))) + len(self.real) * int(index)]
        return self.synthetic[index]


class _StepSampler(Sampler):
    """Batches of consecutive indices from ``start`` to ``stop`` steps (``step * batch + j``)."""

    def __init__(self, start: int, stop: int, batch: int) -> None:
        self.start, self.stop, self.batch = start, stop, batch

    def __len__(self) -> int:
        return max(0, self.stop - self.start)

    def __iter__(self):
        for step in range(self.start, self.stop):
            yield list(range(step * self.batch, (step + 1) * self.batch))


def mirror_some(labels: torch.Tensor, image: torch.Tensor, p: float,
                key: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """labels (B, H, W), image (B, C, H, W) -> the same with each sample mirrored left-right
    with probability ``p``, drawn from ``key`` (seed, step): the same draw on a rerun."""
    g = torch.Generator().manual_seed(int(key[0]) * 1_000_003 + int(key[1]))
    m = torch.rand(labels.shape[0], generator=g) < p
    if not m.any():
        return labels, image
    labels, image = labels.clone(), image.clone()
    labels[m] = labels[m].flip(-1)
    image[m] = image[m].flip(-1)
    return labels, image


def _lr_at(step: int, cfg: TrainConfig) -> float:
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    t = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return cfg.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(t, 1.0))))


def _input_spec(cfg: TrainConfig) -> dict[str, Any]:
    syn = cfg.synthetic
    if cfg.task == "segmentation":
        return {"width": syn.width, "height": syn.height}
    spec = {"crop_size": syn.crop.size, "margin": syn.crop.margin, "stride": 4}
    if syn.crop.upright:  # detection turns such a network's crops upright (files of before lack the key)
        spec["upright"] = True
    return spec


def _save_checkpoint(path: Path, model, optim, step: int, ema_model=None) -> None:
    buf = io.BytesIO()
    state = {"step": step, "model": model.state_dict(), "optimizer": optim.state_dict()}
    if ema_model is not None:
        state["ema"] = ema_model.state_dict()
    torch.save(state, buf)
    atomic_write_bytes(path, buf.getvalue())


@torch.no_grad()
def ema_update(ema_model: torch.nn.Module, model: torch.nn.Module, decay: float) -> None:
    """``ema <- decay * ema + (1 - decay) * model`` for every floating parameter and buffer
    (in place; the two modules have the same architecture)."""
    for e, v in zip(ema_model.state_dict().values(), model.state_dict().values(), strict=True):
        if e.is_floating_point():
            e.lerp_(v.to(e.dtype), 1.0 - decay)


def _plot_losses(csv_path: Path, png_path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = list(csv.DictReader(csv_path.open()))
    if not rows:
        return
    steps = np.array([int(r["step"]) for r in rows])
    loss = np.array([float(r["loss"]) for r in rows])
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(steps, loss, lw=0.6, alpha=0.5, label="loss")
    if len(loss) >= 10:
        k = max(5, len(loss) // 50)
        ax.plot(steps[k - 1:], np.convolve(loss, np.ones(k) / k, mode="valid"), lw=1.5, label=f"mean of {k}")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_yscale("log")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    atomic_write_bytes(png_path, buf.getvalue(), durable=False)


#: Settings a resumed run may change: they do not change which batches are drawn or how the
#: model is updated (the number of steps moves the end of the learning-rate schedule).
_RESUME_FREE = ("steps", "out", "workers", "device", "checkpoint_every", "log_every")


def train(config: TrainConfig, *, resume: bool = False,
          progress: Callable[[int, int, float], None] | None = None) -> TrainResult:
    """Train ``config.task``'s network (see the module docstring for the outputs).

    Args:
        config: the run. resume: continue from ``out/<task>_checkpoint.pt`` (its ``<task>_config.json``
            must match ``config`` except for steps, workers, device and the checkpoint / log
            intervals).
        progress: called as ``progress(step_done, total_steps, loss)`` after every step.

    Returns:
        :class:`TrainResult`.

    Raises:
        FileExistsError: ``out`` already holds a run and ``resume`` is False.
        ValueError: the resumed run's configuration differs.
    """
    cfg = config
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    cfg_path, ckpt_path, csv_path = (out / f"{cfg.task}_{name}" for name in ("config.json", "checkpoint.pt", "losses.csv"))
    resolved = cfg.to_dict()
    start = 0
    ema_state = None
    if resume and ckpt_path.is_file():
        old = json.loads(cfg_path.read_text()) if cfg_path.is_file() else {}
        defaults = TrainConfig(task=cfg.task).to_dict()  # settings added since the run was saved
        if "arch" in old:  # architecture keys added since the run was saved had their default value
            old["arch"] = full_arch(cfg.task, old["arch"])
        diff = sorted(k for k in resolved if k not in _RESUME_FREE and old.get(k, defaults[k]) != resolved[k])
        if diff:
            raise ValueError(f"{cfg_path}: cannot resume, settings differ from the saved run: {diff}")
    elif ckpt_path.is_file():
        raise FileExistsError(f"{ckpt_path}: a run exists in {out}; pass --resume to continue it or choose another --out")
    atomic_write_text(cfg_path, json.dumps(resolved, indent=2) + "\n")

    device = resolve_device(cfg.device)
    precision = resolve_precision(cfg.precision, device)
    torch.manual_seed(cfg.seed)
    model = build_network(cfg.task, cfg.arch).to(device)
    optim = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.init and not (resume and ckpt_path.is_file()):
        _load_init(model, cfg)
    if resume and ckpt_path.is_file():
        ck = torch.load(ckpt_path, map_location=device, weights_only=True)
        model.load_state_dict(ck["model"])
        optim.load_state_dict(ck["optimizer"])
        ema_state = ck.get("ema")
        start = int(ck["step"])
        if csv_path.is_file():  # drop log rows past the checkpoint (a run killed after it)
            rows = [r for r in csv.DictReader(csv_path.open()) if int(r["step"]) <= start]
            text = "step,loss,lr,seconds\n" + "".join(f"{r['step']},{r['loss']},{r['lr']},{r['seconds']}\n" for r in rows)
            atomic_write_text(csv_path, text)
    if start == 0 or not csv_path.is_file():
        atomic_write_text(csv_path, "step,loss,lr,seconds\n")
    ema_model = None
    if cfg.ema > 0:  # the average starts from the initial (or --init, or checkpointed) weights
        ema_model = copy.deepcopy(model).requires_grad_(False)
        if start and ema_state is not None:
            ema_model.load_state_dict(ema_state)

    if cfg.bank:
        dataset = SampleBank(list(cfg.bank), cfg.synthetic.crop, cfg.synthetic.augment, cfg.seed, depth=_rgbd(cfg))
    else:
        dataset = _training_data(cfg)
    loader = DataLoader(dataset, batch_sampler=_StepSampler(start, cfg.steps, cfg.batch), num_workers=cfg.workers,
                        pin_memory=device.type == "cuda", persistent_workers=False)
    losses = []
    bones = cfg.task == "keypoints" and bool(full_arch(cfg.task, cfg.arch)["bones"])
    model.train()
    t0 = time.perf_counter()
    step = start
    log = csv_path.open("a")
    try:
        for batch in loader:
            lr = _lr_at(step, cfg)
            for g in optim.param_groups:
                g["lr"] = lr
            image = batch["image"].to(device, non_blocking=True)
            if cfg.flip > 0:  # mirror some images and their labels (per-step draw: resume-safe)
                batch["labels"], image = mirror_some(batch["labels"], image, cfg.flip, (cfg.seed, step))
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
                pred = model(image, with_bones=True) if bones else model(image)
            if bones:
                pred, bone_pred = pred
            if cfg.task == "segmentation":
                loss = segmentation_loss(pred.float(), batch["labels"].to(device))
            else:
                loss = keypoint_loss([hm.float() for hm in pred], batch["heatmaps"].to(device), batch["weights"].to(device),
                                     foreground=cfg.foreground, integral=cfg.integral, hard=cfg.hard_joints,
                                     points=pixels_to_cells(batch["keypoints"].to(device), KeypointNet.stride) if cfg.integral > 0 else None)
                if bones and cfg.bone_weight > 0:
                    kp = batch["keypoints"].to(device)
                    target, weight = bone_targets(kp[..., :2], kp[..., 2], batch["weights"].to(device), BONES,
                                                  batch["heatmaps"].shape[-1], KeypointNet.stride, cfg.synthetic.crop.sigma,
                                                  cfg.synthetic.crop.occluded_amplitude)
                    loss = loss + cfg.bone_weight * keypoint_loss([hm.float() for hm in bone_pred], target, weight,
                                                                  foreground=cfg.foreground)
            optim.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            optim.step()
            if ema_model is not None:
                ema_update(ema_model, model, min(cfg.ema, (1 + step) / (10 + step)))
            step += 1
            value = float(loss.detach())
            if not math.isfinite(value):
                raise FloatingPointError(f"{out}: loss became {value} at step {step}; lower --lr")
            losses.append(value)
            log.write(f"{step},{value:.6g},{lr:.6g},{time.perf_counter() - t0:.3f}\n")
            if step % cfg.log_every == 0:
                log.flush()
            if step % cfg.checkpoint_every == 0 or step == cfg.steps:
                _save_checkpoint(ckpt_path, model, optim, step, ema_model)
                _export(out, cfg, ema_model or model, step, losses, precision)
            if progress:
                progress(step, cfg.steps, value)
    finally:
        log.close()
    if step == start:  # nothing to do (resumed a finished run): still export the weights
        _export(out, cfg, ema_model or model, step, losses, precision)
    _plot_losses(csv_path, out / f"{cfg.task}_loss.png", f"{cfg.task} ({count_parameters(model) / 1e6:.2f} M parameters)")
    return TrainResult(out=out, weights=out / WEIGHTS_FILES[cfg.task], steps=step, losses=np.asarray(losses))


def _rgbd(cfg: TrainConfig) -> bool:
    """The run trains an RGB-D network (architecture ``depth=1``)."""
    return bool(full_arch(cfg.task, cfg.arch)["depth"])


def _training_data(cfg: TrainConfig, crop_colour: bool = True) -> Dataset:
    """The composites of ``cfg.synthetic``, mixed with the frames of ``cfg.data`` when given."""
    rgbd = _rgbd(cfg)
    forearm = cfg.task == "segmentation" and full_arch(cfg.task, cfg.arch)["num_classes"] > NUM_CLASSES
    synthetic = SyntheticComposites(cfg.synthetic, cfg.task, depth=rgbd, crop_colour=crop_colour, forearm_class=forearm)
    if cfg.synthetic.objects and cfg.data_fraction < 1.0:
        _ = synthetic.grasp_bank  # made before any worker forks
    real = None
    if cfg.data:
        syn = cfg.synthetic
        real = SequenceFrames(list(cfg.data), cfg.task, width=syn.width, height=syn.height, augment=syn.augment,
                              crop=syn.crop, seed=cfg.seed, depth=rgbd, crop_colour=crop_colour, forearm_class=forearm)
    return _Mixture(synthetic, real, cfg.data_fraction if real is not None else 0.0, cfg.seed)


def write_training_bank(cfg: TrainConfig, count: int, *, shard_size: int = 512,
                        progress: Callable[[int, int], None] | None = None) -> Path:
    """Write the first ``count`` keypoint samples a run of ``cfg`` would draw (composites and
    ``cfg.data`` frames, crop geometry augmented, before colour jitter) as a sample bank in
    ``cfg.out`` (:func:`honnotate.perception.bank.write_bank`; an interrupted bank is finished
    by the same call). Train on it with ``TrainConfig(bank=(cfg.out,))``.

    Raises:
        ValueError: not the keypoints task, or augmentation disabled (the bank stores crops
            whose colour jitter training draws); BankError: ``cfg.out`` holds another bank.
    """
    if cfg.task != "keypoints":
        raise ValueError("sample banks hold keypoint crops: --write-bank is for the keypoints task only")
    if cfg.bank:
        raise ValueError("--write-bank draws new samples: it cannot read from --bank")
    if not cfg.synthetic.augment.enabled:
        raise ValueError("sample banks need the augmentation enabled (training draws each crop's colour jitter)")
    source = {k: v for k, v in cfg.to_dict().items() if k in ("seed", "data", "data_fraction", "synthetic", "arch")}
    return write_bank(_training_data(cfg, crop_colour=False), cfg.out, count, crop=cfg.synthetic.crop,
                      depth=_rgbd(cfg), shard_size=shard_size, workers=cfg.workers, source=source, progress=progress)


def load_init(task: str, init: str | Path) -> tuple[torch.nn.Module, dict[str, Any]]:
    """``(network, info)`` of an ``--init`` weights path: a file of ``task`` under any name (e.g.
    the shipped ``keypoints_fine.pt``) or a folder holding the task's file
    (:func:`~honnotate.perception.weights.load_weights`); WeightsError naming the path when it
    is missing or holds another task."""
    from honnotate.perception.weights import WeightsError, load_weights

    path = Path(init)
    if not path.exists():
        raise WeightsError(f"{path}: no such weights file or folder (--init)")
    folder, file = (path, None) if path.is_dir() else (path.parent, path.name)
    return load_weights(task, folder, file=file)


def _load_init(model: torch.nn.Module, cfg: TrainConfig) -> None:
    """Copy the network of ``cfg.init`` (:func:`load_init`) into ``model``; WeightsError naming
    the file when it is another task or architecture."""
    from honnotate.perception.weights import WeightsError

    path = Path(cfg.init)
    net, info = load_init(cfg.task, path)
    try:
        state = grow_state_dict(cfg.task, net.state_dict(), info.get("arch") or {}, cfg.arch)
    except ValueError as exc:
        raise WeightsError(f"{path}: its {cfg.task} architecture {full_arch(cfg.task, info.get('arch'))} differs "
                           f"from this run's {full_arch(cfg.task, cfg.arch)} ({exc})") from None
    model.load_state_dict(state)


def _export(out: Path, cfg: TrainConfig, model, step: int, losses: list[float], precision: str) -> Path:
    """Write the weights file; ``precision``: the one the run used (``cfg.precision`` resolved)."""
    tail = losses[-20:]
    info = {"steps": step, "seed": cfg.seed, "batch": cfg.batch, "lr": cfg.lr, "init": cfg.init,
            "ema": cfg.ema, "precision": precision,
            "final_loss": float(np.mean(tail)) if tail else None, "config": f"{cfg.task}_config.json"}
    return save_weights(out / WEIGHTS_FILES[cfg.task], cfg.task, model, full_arch(cfg.task, cfg.arch),
                        _input_spec(cfg), info)
