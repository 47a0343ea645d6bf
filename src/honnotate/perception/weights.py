"""Weights files of the perception networks: format, atomic saving, safe loading.

A weights file (``segmentation.pt``, ``keypoints.pt``, or the optional ``segmentation_rgb.pt``:
an RGB segmentation for frames without depth beside an RGB-D one) is a ``torch.save`` of a plain dict
readable with ``torch.load(weights_only=True)`` (no code is unpickled)::

    {"format": "honnotate-perception", "version": 1, "task": "segmentation" | "keypoints",
     "arch": {...}, "input": {...}, "train": {...}, "state_dict": {name: tensor}}

``arch`` rebuilds the network (:func:`~honnotate.perception.networks.build_network`), ``input``
says how images are fed to it (segmentation: ``width``, ``height``; keypoints: ``crop_size``,
``margin``), ``train`` records the training run (steps, seed, final loss) for reproducibility.
Tensors are stored in float16 (halves the size; the networks run in float32). Version 2 files
(:func:`quantize_weights_file`) may also hold ``"scales": {name: float16 (out,) tensor}``: those
tensors of ``state_dict`` are int8, one symmetric scale per output channel (``w = q * scale``),
half the size again; version 1 files (float16 only) read as before.
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
    "KP_UPRIGHT_FILE",
    "WeightsError",
    "default_weights_dir",
    "weights_path",
    "save_weights",
    "load_weights",
    "quantize_state",
    "quantize_weights_file",
]

WEIGHTS_FORMAT = "honnotate-perception"
_VERSION = 1
#: Version of files with int8 tensors (:func:`quantize_weights_file`); readers take both.
_VERSION_INT8 = 2
#: Smallest tensor (elements) that :func:`quantize_state` stores in int8: convolution and linear
#: weights; biases and normalisation parameters stay float16.
_INT8_MIN_ELEMENTS = 256
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
#: Optional keypoint file of a network trained on crops turned so the hand points up in them
#: (``honnotate train keypoints --upright``), run after the others' keypoints give the hand's
#: orientation (:class:`~honnotate.perception.detect.Detector`, ``upright_keypoints``).
KP_UPRIGHT_FILE = "keypoints_upright.pt"


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
    if data.get("version") not in (_VERSION, _VERSION_INT8):
        raise WeightsError(f"{path}: weights format version {data.get('version')!r}; this honnotate reads versions "
                           f"{_VERSION} and {_VERSION_INT8}")
    if data.get("task") != task:
        raise WeightsError(f"{path}: holds a {data.get('task')!r} network, expected {task!r}")
    try:
        model = build_network(task, data.get("arch") or {})
    except (TypeError, ValueError) as exc:
        raise WeightsError(f"{path}: invalid architecture {data.get('arch')!r}: {exc}") from exc
    state = data.get("state_dict")
    if not isinstance(state, dict):
        raise WeightsError(f"{path}: missing 'state_dict'")
    try:
        state = _dequantize(state, data.get("scales") or {})
    except ValueError as exc:
        raise WeightsError(f"{path}: {exc}") from None
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
    info = {k: v for k, v in data.items() if k not in ("state_dict", "scales")}
    return model, info


def quantize_state(state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """``(state, scales)``: the floating tensors of ``state`` with at least
    :data:`_INT8_MIN_ELEMENTS` elements and two or more dimensions as int8, each output channel
    (first dimension) with its own symmetric scale (``w = q * scale``, float16 (out,)); the other
    floating tensors as float16, the rest unchanged. The rounding error of a weight is at most
    half its channel's scale (its channel's largest magnitude / 254)."""
    out, scales = {}, {}
    for name, v in state.items():
        v = v.detach().cpu()
        if v.is_floating_point() and v.ndim >= 2 and v.numel() >= _INT8_MIN_ELEMENTS:
            w = v.float().reshape(v.shape[0], -1)
            scale = (w.abs().amax(1) / 127.0).to(torch.float16).float()
            scale = torch.where(scale > 0, scale, torch.ones_like(scale))  # an all-zero channel: q = 0
            out[name] = torch.round(w / scale[:, None]).clamp(-127, 127).to(torch.int8).reshape(v.shape)
            scales[name] = scale.to(torch.float16)
        else:
            out[name] = v.to(torch.float16) if v.is_floating_point() else v
    return out, scales


def _dequantize(state: dict[str, Any], scales: dict[str, Any]) -> dict[str, Any]:
    """``state`` with its int8 tensors (those named in ``scales``) back to float32;
    ValueError when a scale names no int8 tensor of matching channels."""
    if not isinstance(scales, dict):
        raise ValueError("'scales' must map tensor names to per-channel scales")
    out = dict(state)
    for name, scale in scales.items():
        q = state.get(name)
        if not isinstance(q, torch.Tensor) or q.dtype != torch.int8 or not isinstance(scale, torch.Tensor) \
                or scale.shape != (q.shape[0],):
            raise ValueError(f"scale of {name!r} does not match an int8 tensor of as many output channels")
        out[name] = q.float() * scale.float().reshape(-1, *([1] * (q.ndim - 1)))
    return out


def quantize_weights_file(src: str | Path, dst: str | Path) -> Path:
    """Write the weights file ``src`` again as ``dst`` with its large tensors in int8
    (:func:`quantize_state`; format version 2, about half the size); ``src`` is read safely and
    checked as :func:`load_weights` checks it. Returns ``dst``."""
    src = Path(src)
    try:
        data = torch.load(src, map_location="cpu", weights_only=True)
    except Exception:  # missing, corrupt or unsafe: the message below
        data = None
    if not isinstance(data, dict) or data.get("format") != WEIGHTS_FORMAT or data.get("task") not in TASKS:
        raise WeightsError(f"{src}: not a honnotate perception weights file")
    model, info = load_weights(data["task"], src.parent, file=src.name)  # the full checks (architecture, tensors)
    q, scales = quantize_state(model.state_dict())
    payload = {**info, "version": _VERSION_INT8, "state_dict": q, "scales": scales}
    buf = io.BytesIO()
    torch.save(payload, buf)
    return atomic_write_bytes(dst, buf.getvalue(), durable=True)
