"""Shared benchmark helpers: machine description and BENCHMARKS.md sections.

Every benchmark script writes its own section of ``BENCHMARKS.md`` between the markers
``<!-- bench:NAME -->`` and ``<!-- /bench:NAME -->``, with the date and the machine, so scripts
never overwrite each other's figures.
"""

from __future__ import annotations

import datetime as _dt
import os
import platform
import re
import time
from pathlib import Path

import torch

__all__ = ["machine_description", "write_section", "timeit", "BENCHMARKS_MD"]

BENCHMARKS_MD = Path(__file__).resolve().parent.parent / "BENCHMARKS.md"


def machine_description(device: str | torch.device = "cpu") -> str:
    """One line: CPU model (with its bfloat16 units: AMX, AVX-512 BF16; bf16 training is fast
    only with AMX), cores, torch threads, torch version, and the GPU when used."""
    cpu = platform.processor() or platform.machine()
    flags: set[str] = set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                elif line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    break
    except OSError:
        pass
    bf16 = [name for flag, name in (("amx_bf16", "AMX"), ("avx512_bf16", "AVX-512 BF16")) if flag in flags]
    if bf16:
        cpu += f" ({', '.join(bf16)})"
    desc = f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__} ({torch.get_num_threads()} threads)"
    if str(device).startswith("cuda") and torch.cuda.is_available():
        desc += f", GPU {torch.cuda.get_device_name(torch.device(device))}"
    return desc


def timeit(fn, *, warmup: int = 2, repeat: int = 10, sync_cuda: bool = False) -> float:
    """Median wall time of ``fn()`` in milliseconds."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        if sync_cuda:
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        if sync_cuda:
            torch.cuda.synchronize()
        times.append((time.perf_counter() - t0) * 1e3)
    times.sort()
    return times[len(times) // 2]


def write_section(name: str, body: str, *, device: str | torch.device = "cpu", path: Path = BENCHMARKS_MD) -> None:
    """Replace (or append) the section ``name`` of BENCHMARKS.md with ``body`` (markdown)."""
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    block = (
        f"<!-- bench:{name} -->\n## {name}\n\n"
        f"_Measured {stamp} on {machine_description(device)}._\n\n{body.strip()}\n<!-- /bench:{name} -->"
    )
    text = path.read_text() if path.exists() else "# Benchmarks\n\nFigures written by the scripts in `benchmarks/` (`python benchmarks/run_all.py`).\n"
    pattern = re.compile(rf"<!-- bench:{re.escape(name)} -->.*?<!-- /bench:{re.escape(name)} -->", re.S)
    if pattern.search(text):
        text = pattern.sub(lambda _m: block, text)
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    path.write_text(text)
    print(f"wrote section '{name}' of {path}")
