"""``honnotate train seg|keypoints``: train a perception network on synthetic composites."""

from __future__ import annotations

from pathlib import Path

import typer

__all__ = ["register"]

_TASKS = {"seg": "segmentation", "segmentation": "segmentation", "keypoints": "keypoints"}


def register(app: typer.Typer) -> None:
    @app.command("train")
    def train_cmd(
        task: str = typer.Argument(..., help="Network to train: seg or keypoints."),
        out: Path = typer.Option(..., "--out", "-o", help="Run folder (checkpoint, weights, losses CSV and plot); one folder can hold both networks."),
        steps: int = typer.Option(2000, help="Optimiser steps."),
        batch: int = typer.Option(8, help="Images per step."),
        lr: float = typer.Option(2e-3, help="Peak learning rate (warm-up, cosine decay)."),
        seed: int = typer.Option(0, help="Seed of the data and the initialisation."),
        resume: bool = typer.Option(False, "--resume", help="Continue the run in --out from its checkpoint."),
        data: list[Path] = typer.Option([], "--data", help="Capture folders (or folders of them) mixed into the training data (repeatable)."),
        data_fraction: float = typer.Option(0.5, help="Fraction of samples from --data."),
        backgrounds: Path | None = typer.Option(None, help="Folder of background images (PNG/JPEG)."),
        objects: str = typer.Option("", help="Comma-separated built-in objects (default all)."),
        size: str = typer.Option("", help="Rendered image size WxH (default 320x240 seg, 640x480 keypoints)."),
        grasps_per_object: int = typer.Option(10, help="Grasps synthesised per object for the data."),
        table_prob: float | None = typer.Option(None, help="Fraction of composites with a textured table plane "
                                                "under the hand and object (default of CompositeConfig, 0.5)."),
        anatomical_prob: float | None = typer.Option(None, help="Fraction of composites whose hand has a lighter "
                                                     "palm side and pale nails (default of CompositeConfig, 0)."),
        arm_prob: float | None = typer.Option(None, help="Fraction of composites whose hand has a forearm, bare or "
                                              "sleeved (default of CompositeConfig, 0.6; 0: the composites of "
                                              "before 2026-12-04's forearm)."),
        crops_per_scene: int = typer.Option(1, help="Keypoints: hand crops cut from one rendered composite "
                                            "(2 nearly halves the data time per sample)."),
        min_box_m: float = typer.Option(0.0, "--min-box-m", help="Keypoints: widen the hand box to at least this "
                                        "many metres at the hand's depth, as detection does (0.114; default 0: "
                                        "the crops of before)."),
        crop_size: int | None = typer.Option(None, "--crop-size", help="Keypoints: crop side in pixels, a multiple "
                                             "of 16 (default of CropConfig, 128; the weights record it, detection "
                                             "cuts its crops at that size)."),
        occluders: float = typer.Option(0.0, "--occluders", help="Keypoints: chance of a training crop getting 1-3 "
                                        "pasted occluders (textured, flat or skin-coloured shapes; the joints they "
                                        "cover become occluded; RGB crops; 0: none)."),
        truncate: float = typer.Option(0.0, "--truncate", help="Keypoints: chance of a training view being cut as "
                                       "by an image border across the hand (35-85% of its pixels kept, black "
                                       "beyond, the joints there invisible; 0: none)."),
        upright: bool = typer.Option(False, "--upright", help="Keypoints: crops turned so the hand points up in them "
                                     "(wrist to finger bases; +-0.4 rad about that): a network the detector runs on "
                                     "upright crops after its first keypoints, its heatmaps averaged in."),
        device: str = typer.Option("auto", help="auto (CUDA when present), cpu, cuda:0, ..."),
        workers: int = typer.Option(0, help="DataLoader worker processes."),
        checkpoint_every: int = typer.Option(200, help="Steps between checkpoints."),
        init: Path | None = typer.Option(None, "--init", help="Start from these weights (a folder holding the task's "
                                         "file, e.g. the shipped weights, or any weights file of the task, e.g. "
                                         "keypoints_fine.pt) instead of a random network: fine-tuning."),
        precision: str = typer.Option("fp32", help="fp32; bf16: mixed precision (the forward pass in bfloat16; "
                                      "~2.4x faster on CPUs with AMX and on recent GPUs; slower on CPUs without AMX); "
                                      "or auto: bf16 where it is fast (a CPU with AMX, a GPU with bfloat16), else fp32."),
        zoom: str = typer.Option("", help="Range of the random zoom of the training images, LO,HI (default of "
                                 "AugmentConfig, 0.8,1.25; segmentation: 0.8,2 adds hands close to the camera, "
                                 "filling much of the view)."),
        flip: float = typer.Option(0.0, help="Segmentation: chance of each training image being mirrored left-right "
                                   "(a right hand then looks like a left one; 0: none)."),
        ema: float = typer.Option(0.0, help="Decay of a moving average of the weights, exported instead of the last "
                                             "step's (0: off; 0.999: about the last 1000 steps)."),
        foreground: float | None = typer.Option(None, help="Keypoints: weight of the heatmap peak cells in the loss "
                                                "(cells weighted by 1 + k * target; default of TrainConfig)."),
        integral: float | None = typer.Option(None, help="Keypoints: weight of the integral-regression coordinate "
                                              "term (default of TrainConfig)."),
        bone_weight: float | None = typer.Option(None, help="Keypoints with --arch bones=1: weight of the bone "
                                                 "heatmaps' loss (default of TrainConfig)."),
        hard_joints: int | None = typer.Option(None, help="Keypoints: online hard keypoint mining, the K joints of "
                                               "each crop with the largest heatmap error weigh in twice (0: off; "
                                               "default of TrainConfig)."),
        arch: str = typer.Option("", help="Architecture changes, KEY=INT,... to the defaults or, with --init, to the "
                                 "init network's architecture (e.g. blocks=6: keypoint backbone residual blocks; "
                                 "context=2: a stride-16 context branch; context_attention=2: global self-attention "
                                 "layers in that branch; depth=1: RGB-D keypoint crops, the capture's depth as two more "
                                 "input channels; bones=1: every keypoint stage also outputs a heatmap per bone, which "
                                 "the next stage sees; segmentation num_classes=4: a forearm class, which the detector ends at the wrist "
                                 "with the hand; segmentation depth=1: RGB-D images, the capture's depth as two more "
                                 "input channels (detection then needs the depth maps); the init network is grown to them)."),
        write_bank: int = typer.Option(0, "--write-bank", help="Keypoints: instead of training, write this many samples "
                                       "of the data (composites and --data frames, crops augmented, before colour jitter) "
                                       "to --out as a sample bank (an interrupted bank is finished by the same command)."),
        bank: list[Path] = typer.Option([], "--bank", help="Keypoints: train on these sample banks (repeatable) instead "
                                        "of drawing new data: several times faster steps on a CPU; colour jitter is "
                                        "drawn anew for each use of a crop."),
    ) -> None:
        """Train the segmentation (seg) or the 2D keypoint network; writes weights for `honnotate detect --weights`."""
        from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

        from honnotate.perception.data import AugmentConfig, CompositeConfig, CropConfig
        from honnotate.perception.train import TrainConfig, train

        if task not in _TASKS:
            raise typer.BadParameter(f"task must be seg or keypoints, got {task!r}")
        full = _TASKS[task]
        syn = {"grasps_per_object": grasps_per_object, "seed": seed}
        w, h = (320, 240) if full == "segmentation" else (640, 480)
        if size:
            try:
                w, h = (int(x) for x in size.lower().split("x"))
            except ValueError:
                raise typer.BadParameter(f"--size must look like 320x240, got {size!r}") from None
        syn.update(width=w, height=h, crops_per_scene=crops_per_scene)
        if table_prob is not None:
            syn["table_prob"] = table_prob
        if anatomical_prob is not None:
            syn["anatomical_prob"] = anatomical_prob
        if arm_prob is not None:
            syn["arm_prob"] = arm_prob
        crop_kw = {}
        if crop_size is not None:
            if full != "keypoints" or crop_size < 32 or crop_size % 16:
                raise typer.BadParameter(f"--crop-size is for keypoints, a multiple of 16 >= 32, got {crop_size}")
            crop_kw["size"] = crop_size
        if min_box_m:
            if full != "keypoints" or min_box_m < 0:
                raise typer.BadParameter(f"--min-box-m is for keypoints, >= 0, got {min_box_m}")
            crop_kw["min_box_m"] = min_box_m
        if occluders:
            if full != "keypoints" or not 0 < occluders <= 1:
                raise typer.BadParameter(f"--occluders is for keypoints, a probability in (0, 1], got {occluders}")
            crop_kw["occluder_prob"] = occluders
        if truncate:
            if full != "keypoints" or not 0 < truncate <= 1:
                raise typer.BadParameter(f"--truncate is for keypoints, a probability in (0, 1], got {truncate}")
            crop_kw["truncate_prob"] = truncate
        if upright:
            if full != "keypoints":
                raise typer.BadParameter("--upright is for keypoints")
            crop_kw["upright"] = True
        if crop_kw:
            syn["crop"] = CropConfig(**crop_kw)
        if zoom:
            try:
                lo, hi = (float(x) for x in zoom.split(","))
            except ValueError:
                raise typer.BadParameter(f"--zoom must look like 0.8,2, got {zoom!r}") from None
            if not 0 < lo <= hi:
                raise typer.BadParameter(f"--zoom needs 0 < LO <= HI, got {zoom!r}")
            syn["augment"] = AugmentConfig(scale=(lo, hi))
        if objects:
            syn["objects"] = tuple(o.strip() for o in objects.split(",") if o.strip())
        if backgrounds is not None:
            if not backgrounds.is_dir():
                raise typer.BadParameter(f"{backgrounds}: no such folder")
            syn["background_dir"] = str(backgrounds)
        try:
            arch_dict = {**(_init_arch(full, init) if init is not None else {}), **_parse_arch(full, arch)}
            cfg = TrainConfig(task=full, out=str(out), steps=steps, batch=batch, lr=lr, seed=seed, device=device,
                              workers=workers, data=tuple(str(d) for d in data), data_fraction=data_fraction,
                              checkpoint_every=checkpoint_every, synthetic=CompositeConfig(**syn),
                              init=str(init) if init is not None else None, precision=precision, ema=ema,
                              flip=flip, arch=arch_dict, bank=tuple(str(b) for b in bank),
                              **{k: v for k, v in (("foreground", foreground), ("integral", integral),
                                                        ("bone_weight", bone_weight),
                                                        ("hard_joints", hard_joints)) if v is not None})
        except ValueError as exc:
            raise typer.BadParameter(str(exc)) from None
        if write_bank:
            _write_bank(cfg, write_bank)
            return
        with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                      TextColumn("loss {task.fields[loss]:.4f}"), TimeRemainingColumn()) as bar:
            job = bar.add_task(f"train {full}", total=steps, loss=float("nan"))
            try:
                result = train(cfg, resume=resume,
                               progress=lambda done, total, loss: bar.update(job, completed=done, loss=loss))
            except (FileExistsError, ValueError) as exc:
                typer.echo(f"error: {exc}", err=True)
                raise typer.Exit(2) from None
        typer.echo(f"trained {full} for {result.steps} steps; weights: {result.weights}; "
                   f"losses: {out / (full + '_losses.csv')}, {out / (full + '_loss.png')}")


def _write_bank(cfg, count: int) -> None:
    """``--write-bank``: the samples of ``cfg``'s data as a bank in ``cfg.out``."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from honnotate.perception.train import write_training_bank

    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                  TimeRemainingColumn()) as bar:
        job = bar.add_task("write sample bank", total=count)
        try:
            path = write_training_bank(cfg, count, progress=lambda done, total: bar.update(job, completed=done))
        except (ValueError, FileNotFoundError) as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from None
    typer.echo(f"wrote a sample bank of {count} keypoint crops: {path} (train on it with --bank {path})")


def _init_arch(task: str, init: Path) -> dict[str, int]:
    """The architecture of the ``--init`` weights (empty when they do not load: the run then says why)."""
    from honnotate.perception.train import load_init
    from honnotate.perception.weights import WeightsError

    try:
        return dict(load_init(task, init)[1].get("arch") or {})
    except (WeightsError, OSError):
        return {}


def _parse_arch(task: str, text: str) -> dict[str, int]:
    """``"blocks=6,stages=4"`` -> ``{"blocks": 6, "stages": 4}``, keys checked against ``task``'s
    architecture; ValueError naming the bad item."""
    from honnotate.perception.networks import default_arch

    known = default_arch(task)
    out: dict[str, int] = {}
    for item in filter(None, (p.strip() for p in text.split(","))):
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or key not in known:
            raise ValueError(f"--arch: {item!r} is not KEY=INT with KEY one of {sorted(known)}")
        try:
            out[key] = int(value)
        except ValueError:
            raise ValueError(f"--arch: {item!r}: {value.strip()!r} is not an integer") from None
    return out
