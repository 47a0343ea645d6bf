"""Sample banks: keypoint training samples made once, trained on many times.

Making a keypoint sample (rendering a 640x480 composite, or reading a capture frame, then
cutting the hand crop) costs several times the network's training step on a CPU, so a run that
draws fresh samples spends most of its time on data. A bank stores the crops of a data mixture
(the composites and ``--data`` captures of :func:`honnotate.perception.train.train`, with their
crop geometry augmentation: box jitter, rotation, scale) before the colour jitter; training from
it (``TrainConfig.bank``) draws the colour jitter anew for every use of a crop, and computes the
heatmap targets with the run's own ``sigma`` and ``occluded_amplitude``.

Layout of a bank folder::

    bank.json                 # format, task, crop settings, depth, count, shard size, source
    shard_00000/images.npy    # (n, S, S, 3) uint8 RGB crops, before colour jitter
    shard_00000/depth.npy     # (n, S, S, 2) float16 depth channels (RGB-D banks only)
    shard_00000/keypoints.npy # (n, 21, 3) float32 crop pixels u, v and visibility (0/1)
    shard_00000/weights.npy   # (n, 21) float32, 1 for joints inside the crop
    shard_00000/pixel_scale.npy  # (n,) float32 crop pixels per 640-wide-capture pixel (blur size)

Shards are written to a temporary folder and renamed when complete, so an interrupted
:func:`write_bank` continues where it stopped (and sample ``i`` is the same either way: samples
are pure functions of the mixture's seed and index).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from honnotate.io.files import atomic_write_text
from honnotate.perception.crops import heatmap_targets
from honnotate.perception.data import AugmentConfig, CropConfig, color_jitter, maybe_occlude

__all__ = ["BANK_FORMAT", "BankError", "SampleBank", "write_bank"]

#: ``format`` field of ``bank.json``.
BANK_FORMAT = "honnotate-sample-bank"
_FIELDS = ("images", "keypoints", "weights", "pixel_scale")


class BankError(ValueError):
    """A bank folder that cannot be used (missing, incomplete, or made for other crops); the
    message names the folder."""


def _shard_dir(root: Path, k: int) -> Path:
    return root / f"shard_{k:05d}"


def write_bank(dataset: Dataset, out: str | Path, count: int, *, crop: CropConfig, depth: bool = False,
               shard_size: int = 512, workers: int = 0, source: dict[str, Any] | None = None,
               progress: Callable[[int, int], None] | None = None) -> Path:
    """Write samples ``0 .. count - 1`` of ``dataset`` to the bank folder ``out``.

    Args:
        dataset: keypoint samples without colour jitter (``crop_colour=False`` on
            :class:`~honnotate.perception.data.SyntheticComposites` /
            :class:`~honnotate.perception.data.SequenceFrames`: each has ``image`` (C, S, S) float32,
            ``keypoints``, ``weights`` and ``pixel_scale``).
        out: bank folder (created; complete shards already there are kept: an interrupted bank
            is finished by the same call).
        count: samples. crop: the crop settings the samples were cut with (recorded; training
            checks size and margin against its own). depth: samples carry the two depth channels.
        shard_size: samples per shard. workers: DataLoader worker processes.
        source: description of the data (recorded in ``bank.json``; e.g. the training config).
        progress: called as ``progress(samples_done, count)`` after each shard.

    Returns:
        The bank folder.

    Raises:
        BankError: ``out`` holds a bank with other settings; ValueError: bad count or shard size.
    """
    if count < 1 or shard_size < 1:
        raise ValueError(f"count and shard_size must be >= 1, got {count}, {shard_size}")
    root = Path(out)
    root.mkdir(parents=True, exist_ok=True)
    meta = {"format": BANK_FORMAT, "version": 1, "task": "keypoints", "crop": asdict(crop), "depth": bool(depth),
            "count": int(count), "shard_size": int(shard_size), "source": source or {}}
    meta = json.loads(json.dumps(meta))
    meta_path = root / "bank.json"
    if meta_path.is_file():
        old = json.loads(meta_path.read_text())
        if old != meta:
            diff = sorted(k for k in meta if old.get(k) != meta[k])
            raise BankError(f"{root}: holds a bank with other settings ({', '.join(diff)}); choose another folder")
    else:
        atomic_write_text(meta_path, json.dumps(meta, indent=2) + "\n")
    shards = [k for k in range((count + shard_size - 1) // shard_size) if not _shard_dir(root, k).is_dir()]
    done = count - sum(min(shard_size, count - k * shard_size) for k in shards)
    if progress:
        progress(done, count)
    batches = [list(range(k * shard_size, min(count, (k + 1) * shard_size))) for k in shards]
    loader = DataLoader(dataset, batch_sampler=batches, num_workers=workers, collate_fn=_stack)
    for k, arrays in zip(shards, loader, strict=True):
        tmp = root / f".tmp_shard_{k:05d}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        for name, value in arrays.items():
            np.save(tmp / f"{name}.npy", value)
        tmp.rename(_shard_dir(root, k))
        done += len(arrays["images"])
        if progress:
            progress(done, count)
    return root


def _stack(samples: list[dict[str, torch.Tensor]]) -> dict[str, np.ndarray]:
    """Bank arrays of a list of un-jittered keypoint samples (images quantised to uint8)."""
    if any("pixel_scale" not in s for s in samples):
        raise ValueError("bank samples need their pixel_scale: keypoint datasets made with crop_colour=False and "
                         "augmentation enabled")
    image = np.stack([s["image"].numpy() for s in samples])  # (n, C, S, S)
    out = {"images": np.round(np.clip(image[:, :3], 0, 1) * 255).astype(np.uint8).transpose(0, 2, 3, 1),
           "keypoints": np.stack([s["keypoints"].numpy() for s in samples]).astype(np.float32),
           "weights": np.stack([s["weights"].numpy() for s in samples]).astype(np.float32),
           "pixel_scale": np.array([float(s["pixel_scale"]) for s in samples], np.float32)}
    if image.shape[1] > 3:
        out["depth"] = image[:, 3:].transpose(0, 2, 3, 1).astype(np.float16)
    return out


class SampleBank(Dataset):
    """Keypoint training samples from bank folders (see the module docstring).

    Any index >= 0 is a sample: indices ``p * len(self) .. (p + 1) * len(self) - 1`` are pass
    ``p`` over all banks' samples in an order shuffled by ``(seed, p)`` (consecutive indices,
    a training batch, mix the banks), each with the colour jitter of its index, so each pass
    shows the crops in another order and in other colours, blur and noise.

    Args:
        paths: bank folders. crop: the training run's crop settings (default ``CropConfig()``;
            size and margin must be the banks'; ``sigma`` and ``occluded_amplitude`` shape the
            heatmap targets). augment: colour jitter settings (default ``AugmentConfig()``;
            ``enabled=False``: the stored crops as they are).
        seed: jitter seed. depth: the run trains an RGB-D network (the banks must have depth).

    Raises:
        BankError: a folder is not a complete bank, or was cut for other crops or channels.
    """

    def __init__(self, paths: list[str | Path], crop: CropConfig | None = None,
                 augment: AugmentConfig | None = None, seed: int = 0, depth: bool = False) -> None:
        if not paths:
            raise BankError("no bank folders given")
        crop, augment = crop or CropConfig(), augment or AugmentConfig()
        self.crop, self.augment, self.seed, self.depth = crop, augment, int(seed), bool(depth)
        self.shards: list[Path] = []
        sizes: list[int] = []
        for p in map(Path, paths):
            meta_path = p / "bank.json"
            if not meta_path.is_file():
                raise BankError(f"{p}: not a sample bank (no bank.json); write one with "
                                f"`honnotate train keypoints --write-bank N --out {p}`")
            try:
                meta = json.loads(meta_path.read_text())
            except json.JSONDecodeError as exc:
                raise BankError(f"{meta_path}: unreadable ({exc})") from None
            if meta.get("format") != BANK_FORMAT:
                raise BankError(f"{meta_path}: not a {BANK_FORMAT} file")
            bank_crop = meta.get("crop", {})
            for key in ("size", "margin"):
                if bank_crop.get(key) != getattr(crop, key):
                    raise BankError(f"{p}: its crops have {key} {bank_crop.get(key)}, this run {getattr(crop, key)}")
            if bool(bank_crop.get("upright", False)) != crop.upright:  # banks of before lack the key: not upright
                raise BankError(f"{p}: its crops are {'' if bank_crop.get('upright') else 'not '}turned upright, "
                                f"this run's are{'' if crop.upright else ' not'} (--upright)")
            if bool(meta.get("depth")) != self.depth:
                raise BankError(f"{p}: a {'RGB-D' if meta.get('depth') else 'RGB'} bank; this run trains an "
                                f"{'RGB-D' if self.depth else 'RGB'} network")
            n, size = int(meta["count"]), int(meta["shard_size"])
            shards = [_shard_dir(p, k) for k in range((n + size - 1) // size)]
            missing = [s.name for s in shards if not s.is_dir()]
            if missing:
                raise BankError(f"{p}: incomplete bank, {len(missing)} of {len(shards)} shards missing (first "
                                f"{missing[0]}); run its --write-bank command again to finish it")
            self.shards += shards
            sizes += [min(size, n - k * size) for k in range(len(shards))]
        self.offsets = np.concatenate([[0], np.cumsum(sizes)])
        self._arrays: dict[int, dict[str, np.ndarray]] = {}
        self._order: tuple[int, np.ndarray] | None = None

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def item(self, index: int) -> int:
        """The bank sample (position in the banks, in order) that ``index`` shows."""
        p, k = divmod(int(index), len(self))
        if self._order is None or self._order[0] != p:
            self._order = (p, np.random.default_rng([self.seed, p, 8]).permutation(len(self)))
        return int(self._order[1][k])

    def _shard(self, k: int) -> dict[str, np.ndarray]:
        """Arrays of shard ``k``, memory-mapped (opened once per process)."""
        if k not in self._arrays:
            names = _FIELDS + (("depth",) if self.depth else ())
            try:
                self._arrays[k] = {name: np.load(self.shards[k] / f"{name}.npy", mmap_mode="r") for name in names}
            except (OSError, ValueError) as exc:
                raise BankError(f"{self.shards[k]}: unreadable shard ({exc})") from None
        return self._arrays[k]

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        if index < 0:
            raise IndexError(f"sample index must be >= 0, got {index}")
        item = self.item(index)
        k = int(np.searchsorted(self.offsets, item, side="right")) - 1
        a, j = self._shard(k), item - int(self.offsets[k])
        image = np.asarray(a["images"][j], dtype=np.float32) / 255.0  # (S, S, 3)
        kp = np.array(a["keypoints"][j], dtype=np.float32)
        weights = np.array(a["weights"][j], dtype=np.float32)
        if self.augment.enabled:
            if not self.depth:  # occluders (their chance in the run's crop settings); none on RGB-D crops
                image, kp, _ = maybe_occlude(image, kp, np.random.default_rng([self.seed, int(index), 5]), self.crop)
            rng = np.random.default_rng([self.seed, int(index), 6])
            image = color_jitter(image, rng, self.augment, float(a["pixel_scale"][j]))
        channels = [image.transpose(2, 0, 1)]
        if self.depth:
            channels.append(np.asarray(a["depth"][j], dtype=np.float32).transpose(2, 0, 1))
        amp = np.where(kp[:, 2] > 0, 1.0, self.crop.occluded_amplitude) * weights
        hm = heatmap_targets(kp[:, :2], amp, self.crop.size, 4, self.crop.sigma)
        return {"image": torch.from_numpy(np.ascontiguousarray(np.concatenate(channels, 0), dtype=np.float32)),
                "heatmaps": torch.from_numpy(hm), "weights": torch.from_numpy(weights),
                "keypoints": torch.from_numpy(kp)}
