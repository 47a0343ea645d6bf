"""``honnotate info``: versions, torch device and threads, hand models and their cache."""

from __future__ import annotations

import os
import platform
from pathlib import Path

import typer

__all__ = ["register", "collect_info"]


def collect_info(cache_dir: Path | None = None) -> dict:
    """Environment facts as a dict (what ``honnotate info`` prints)."""
    import numpy
    import torch

    import honnotate
    from honnotate.paths import default_cache_dir

    cache_dir = Path(cache_dir) if cache_dir else default_cache_dir()
    info: dict = {
        "honnotate": honnotate.__version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "device": "cuda" if torch.cuda.is_available() else "cpu",
        "cuda_devices": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())],
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "cache_dir": str(cache_dir),
    }
    from importlib.metadata import PackageNotFoundError, version

    for dist in ("anny", "smplx", "roma", "trimesh", "numba", "warp-lang", "opencv-python-headless"):
        try:
            info[dist] = version(dist)
        except PackageNotFoundError:
            info[dist] = None
    from honnotate.models.object import list_builtin_objects

    info["builtin_objects"] = ", ".join(list_builtin_objects())
    try:
        from honnotate.models.registry import available_hand_models

        info["hand_models"] = available_hand_models(cache_dir=cache_dir)
    except ImportError:
        info["hand_models"] = []
    return info


def register(app: typer.Typer) -> None:
    @app.command("info")
    def info_cmd(
        cache_dir: Path = typer.Option(None, help="Model cache directory (default $HONNOTATE_CACHE or ~/.cache/honnotate)."),
        json_out: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
    ) -> None:
        """Show versions, the torch device and threads, and the available hand models."""
        import json

        from rich.console import Console
        from rich.table import Table

        data = collect_info(cache_dir)
        if json_out:
            typer.echo(json.dumps(data, indent=2))
            return
        table = Table(title="honnotate info", show_header=False)
        for k, v in data.items():
            if k == "hand_models":
                continue
            table.add_row(k, str(v))
        console = Console()
        console.print(table)
        models = Table(title="hand models", show_header=True)
        for col in ("name", "side", "status", "location"):
            models.add_column(col)
        for m in data["hand_models"]:
            models.add_row(m["name"], m["side"], m["status"], m["location"])
        console.print(models)
