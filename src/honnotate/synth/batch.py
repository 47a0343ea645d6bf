"""Many synthetic captures at once: training data for the perception networks.

A batch is a folder of captures ``<out>/s<seed>``, one per seed of ``seed .. seed + count - 1``,
each exactly what :func:`~honnotate.synth.generator.generate_sequence` writes for the base
configuration with that seed and the object ``objects[seed % len(objects)]`` (so a batch made in
pieces, or resumed, is the same batch). A capture counts as done once its
``ground_truth/summary.json`` exists (written last): a rerun skips those and redoes any capture
a crash left half-written. A capture that fails is reported with its seed and the error; the
others go on.

Captures of few frames and several cameras are the cheap way to many distinct training views:
one-frame captures with 5 cameras at 640x480 come at about 50 a minute on 2 CPU cores in a
30-capture batch, the workers' start included (two workers, no contact sheets; BENCHMARKS.md
section synth), and about 64 a minute over 3000 (the weights README's batch, one-off); a
separate ``honnotate synth`` per capture, its imports and contact sheet included, takes about
6 s (5.1 s with one camera: the views cost little; one-off).

Workers are separate processes (``spawn``), each with one torch thread.
"""

from __future__ import annotations

import dataclasses
import multiprocessing as mp
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from honnotate.synth.generator import SynthConfig, generate_sequence

__all__ = ["BatchResult", "batch_jobs", "capture_done", "generate_batch"]


@dataclass(frozen=True)
class BatchResult:
    """written / skipped: seeds generated now / found done; failed: (seed, error message) pairs."""

    written: list[int]
    skipped: list[int]
    failed: list[tuple[int, str]]


def capture_done(path: str | Path) -> bool:
    """True when ``path`` holds a finished capture (its ``ground_truth/summary.json``, written last)."""
    return (Path(path) / "ground_truth" / "summary.json").is_file()


def batch_jobs(out_dir: str | Path, config: SynthConfig, count: int,
               objects: Sequence[str] | None = None) -> list[tuple[Path, SynthConfig]]:
    """The (capture folder, configuration) of every capture of a batch.

    Args:
        out_dir: batch folder. config: base configuration; its ``seed`` is the first seed.
        count: number of captures (>= 1). objects: built-in objects drawn in turn by seed
            (``objects[seed % len(objects)]``); None: ``config.object`` for all.

    Raises:
        ValueError: count < 1, an empty or unknown object list.
    """
    from honnotate.models.object import list_builtin_objects

    if count < 1:
        raise ValueError(f"count must be >= 1, got {count}")
    objects = [config.object] if objects is None else list(objects)
    bad = [o for o in objects if o not in list_builtin_objects()]
    if not objects or bad:
        raise ValueError(f"objects must be built-in objects {list_builtin_objects()}, got {objects}")
    out = Path(out_dir)
    jobs = []
    for seed in range(config.seed, config.seed + count):
        cfg = dataclasses.replace(config, seed=seed, object=objects[seed % len(objects)])
        jobs.append((out / f"s{seed}", cfg))
    return jobs


def _one_thread() -> None:
    import torch

    torch.set_num_threads(1)


def _run(job: tuple[Path, SynthConfig, bool]) -> tuple[int, str | None]:
    path, cfg, sheet = job
    try:
        generate_sequence(path, cfg, contact_sheet=sheet)
    except Exception as exc:  # reported with its seed; the batch goes on
        return cfg.seed, f"{type(exc).__name__}: {exc}"
    return cfg.seed, None


def generate_batch(out_dir: str | Path, config: SynthConfig, count: int, *, objects: Sequence[str] | None = None,
                   workers: int = 1, contact_sheet: bool = False,
                   progress: Callable[[int, int], None] | None = None) -> BatchResult:
    """Generate the captures of :func:`batch_jobs` that are not done yet.

    Args:
        out_dir, config, count, objects: see :func:`batch_jobs`. workers: processes (1: in this
            process). contact_sheet: write each capture's contact sheet (off: a third faster).
        progress: called as ``progress(done, total)`` over the captures to generate.

    Returns:
        :class:`BatchResult`.
    """
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    jobs = batch_jobs(out_dir, config, count, objects)
    todo, skipped = [], []
    for path, cfg in jobs:
        if capture_done(path):
            skipped.append(cfg.seed)
        else:
            todo.append((path, cfg, contact_sheet))
    written: list[int] = []
    failed: list[tuple[int, str]] = []

    def record(seed: int, error: str | None) -> None:
        if error is None:
            written.append(seed)
        else:
            failed.append((seed, error))
        if progress is not None:
            progress(len(written) + len(failed), len(todo))

    if workers == 1 or len(todo) <= 1:
        for job in todo:
            record(*_run(job))
    else:
        with mp.get_context("spawn").Pool(min(workers, len(todo)), initializer=_one_thread) as pool:
            for seed, error in pool.imap_unordered(_run, todo):
                record(seed, error)
    return BatchResult(written=sorted(written), skipped=skipped, failed=sorted(failed))
