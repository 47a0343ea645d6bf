"""Weights files of the perception networks: format, atomic saving, safe loading.

A weights file (``segmentation.pt``, ``keypoints.pt``, or the optional ``segmentation_rgb.pt``:
an RGB segmentation for frames without depth beside an RGB-D one) is a ``torch.save`` of a plain dict
readable with ``torch.load(weights_only=True)`` (no code is unpickled)::

    {"format": "honnotate-perception", "version": 1, "task": "segmentation" | "keypoints",
     "arch": {...}, "input": {...}, "train": {...}, "state_dict": {name: tensor}}

``arch`` rebuilds the network (:func:`~honnotate.perception.networks.build_network`), ``input``
says how images are fed to it (segmentation: ``width``, ``height``; keypoints: ``crop_size``,
``margin``), ``train`` records the training run (steps, seed, final loss) for reproducibility.
Tensors are stored in float16 (halves the size; the networks run in float32).
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import torch

from honnotate.io.files import atomic_write_bytes
from honnotate.perception.networks import TASKS, build_network

__all__ = [
    "WEIGHTS_FORMAT",
    "WEIGHTS_FILES",
    "SEG_RGB_FILE",
    "KP_FINE_FILE",
    "WeightsError",
    "default_weights_dir",
    "weights_path",
    "save_weights",
    "load_weights",
]

WEIGHTS_FORMAT = "honnotate-perception"
_VERSION = 1
#: File name of each task's weights inside a weights folder.
WEIGHTS_FILES = {"segmentation": "segmentation.pt", "keypoints": "keypoints.pt"}
#: Optional second segmentation file of a folder whose ``segmentation.pt`` takes RGB-D images: an
#: RGB network of the same classes, run on frames without a depth map
#: (:class:`~honnotate.perception.detect.Detector`).
SEG_RGB_FILE = "segmentation_rgb.pt"
#: Optional second keypoint file: a keypoint network cut at a larger crop of the same hand square,
#: whose heatmaps the detector averages with those of ``keypoints.pt``
#: (:class:`~honnotate.perception.detect.Detector`, ``fine_keypoints``).
KP_FINE_FILE = "keypoints_fine.pt"


class WeightsError(ValueError):
    """A weights file is missing, corrupt, or does not match the network; the message names it."""


def default_weights_dir() -> Path:
    """The folder of the weights shipped with the package (``honnotate/assets/weights``)."""
    return Path(__file__).resolve().parent.parent / "assets" / "weights"


def weights_path(task: str, weights_dir: str | Path | None = None, file: str | None = None) -> Path:
    """Path of ``task``'s weights file in ``weights_dir`` (default: the shipped weights); ``file``:
    another file name than the task's (e.g. :data:`SEG_RGB_FILE`)."""
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; expected one of {TASKS}")
    return Path(weights_dir if weights_dir is not None else default_weights_dir()) / (file or WEIGHTS_FILES[task])


def save_weights(path: str | Path, task: str, model: torch.nn.Module, arch: dict[str, Any],
                 input_spec: dict[str, Any], train_info: dict[str, Any] | None = None) -> Path:
    """Write ``model``'s weights (float16, CPU) with its description, atomically."""
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; expected one of {TASKS}")
    state = {k: (v.detach().to("cpu", torch.float16) if v.is_floating_point() else v.detach().cpu())
             for k, v in model.state_dict().items()}
    payload = {"format": WEIGHTS_FORMAT, "version": _VERSION, "task": task, "arch": dict(arch),
               "input": dict(input_spec), "train": dict(train_info or {}), "state_dict": state}
    buf = io.BytesIO()
    torch.save(payload, buf)
    return atomic_write_bytes(path, buf.getvalue(), durable=True)


def _train_hint(task: str, folder: Path) -> str:
    short = "seg" if task == "segmentation" else "keypoints"
    return (f"train them with `honnotate train {short} --out {folder}` (and the other network), "
            f"or pass --weights DIR with a folder holding {WEIGHTS_FILES['segmentation']} and "
            f"{WEIGHTS_FILES['keypoints']}")


def load_weights(task: str, weights_dir: str | Path | None = None, *, device: str | torch.device | None = None,
                 file: str | None = None) -> tuple[torch.nn.Module, dict[str, Any]]:
    """Load ``task``'s network from a weights folder, safely (``torch.load(weights_only=True)``).

    Args:
        task: "segmentation" or "keypoints".
        weights_dir: folder with the weights files; None: the weights shipped with the package.
        device: where to put the network (default CPU).
        file: another file name in the folder than the task's (e.g. :data:`SEG_RGB_FILE`).

    Returns:
        ``(model, info)``: the network in eval mode (float32) and the file's dict without its
        ``state_dict`` (``arch``, ``input``, ``train``).

    Raises:
        WeightsError naming the file: missing (with how to train them), not a torch file or
        corrupt, another format or task, or tensors that do not match the architecture.
    """
    path = weights_path(task, weights_dir, file)
    if not path.is_file():
        shipped = weights_dir is None
        where = "the shipped weights file is missing from this installation" if shipped else "no such file"
        raise WeightsError(f"{path}: {where}; {_train_hint(task, path.parent if not shipped else Path('WEIGHTS_DIR'))}")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle, zip and unsafe-global errors all mean: not a weights file
        raise WeightsError(f"{path}: not a readable honnotate weights file (corrupt or not made by "
                           f"`honnotate train`): {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}") from exc
    if not isinstance(data, dict) or data.get("format") != WEIGHTS_FORMAT:
        raise WeightsError(f"{path}: not a honnotate perception weights file (format "
                           f"{data.get('format') if isinstance(data, dict) else type(data).__name__!r}, "
                           f"expected {WEIGHTS_FORMAT!r})")
    if data.get("version") != _VERSION:
        raise WeightsError(f"{path}: weights format version {data.get('version')!r}; this honnotate reads version {_VERSION}")
    if data.get("task") != task:
        raise WeightsError(f"{path}: holds a {data.get('task')!r} network, expected {task!r}")
    try:
        model = build_network(task, data.get("arch") or {})
    except (TypeError, ValueError) as exc:
        raise WeightsError(f"{path}: invalid architecture {data.get('arch')!r}: {exc}") from exc
    state = data.get("state_dict")
    if not isinstance(state, dict):
        raise WeightsError(f"{path}: missing 'state_dict'")
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = [f"{k} {tuple(state[k].shape)} (expected {tuple(expected[k].shape)})"
             for k in expected if k in state and tuple(state[k].shape) != tuple(expected[k].shape)]
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"missing tensors {missing[:5]}{' ...' if len(missing) > 5 else ''}")
        if unexpected:
            parts.append(f"unexpected tensors {unexpected[:5]}{' ...' if len(unexpected) > 5 else ''}")
        if wrong:
            parts.append(f"shape mismatches {wrong[:5]}{' ...' if len(wrong) > 5 else ''}")
        raise WeightsError(f"{path}: weights do not match the {task} architecture {data.get('arch')}: " + "; ".join(parts))
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})
    model.eval()
    if device is not None:
        model.to(device)
    info = {k: v for k, v in data.items() if k != "state_dict"}
    return model, info
