"""``honnotate evaluate GT PRED --out DIR``: HO-3D scores and annotation accuracy."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

__all__ = ["register"]


def _load_object_vertices(path: Path):
    import numpy as np
    import trimesh

    mesh = trimesh.load(path, force="mesh", process=False)
    v = np.asarray(mesh.vertices, dtype=np.float64)
    if v.ndim != 2 or v.shape[0] == 0:
        raise typer.BadParameter(f"{path}: no vertices in the object mesh")
    return v


def register(app: typer.Typer) -> None:
    @app.command("evaluate")
    def evaluate_cmd(
        gt: Annotated[Path, typer.Argument(help="Ground truth: HO-3D eval JSON (file or folder), annotation-pickle folder, or .npz.")],
        pred: Annotated[Path, typer.Argument(help="Prediction of the same kind as GT (e.g. pred.json).")],
        out: Annotated[Path, typer.Option("--out", "-o", help="Output folder for scores.txt/json/html and accuracy reports.")],
        object_mesh: Annotated[
            Path | None, typer.Option(help="Object mesh (.obj/.ply, metres, object frame) for object metrics from annotation pickles.")
        ] = None,
        chunk_size: Annotated[int, typer.Option(min=1, help="Frames per batch.")] = 256,
    ) -> None:
        """Evaluate predictions or annotations: the 14 HO-3D metrics, plus annotation accuracy
        (MPJPE, per-joint errors, object ADD / ADD-S, percentiles, PCK/AUC) for annotation inputs."""
        from rich.console import Console
        from rich.progress import Progress
        from rich.table import Table

        from honnotate.evaluate.run import evaluate_paths

        console = Console()
        object_vertices = _load_object_vertices(object_mesh) if object_mesh else None
        try:
            with Progress(console=console, transient=True) as bar:
                task = bar.add_task("evaluating", total=None)

                def progress(done: int, total: int) -> None:
                    bar.update(task, completed=done, total=total)

                result = evaluate_paths(gt, pred, out, object_vertices=object_vertices, chunk_size=chunk_size, progress=progress)
        except (ValueError, FileNotFoundError) as exc:
            console.print(f"[red]error:[/red] {exc}")
            raise typer.Exit(code=2) from None

        table = Table(title=f"HO-3D scores ({result.ho3d.n_frames} frames, mean errors in cm)")
        table.add_column("key")
        table.add_column("value", justify="right")
        for k, v in result.ho3d.scores.items():
            table.add_row(k, f"{v:f}")
        console.print(table)
        if result.accuracy is not None:
            acc = Table(title="annotation accuracy (mm)")
            for col in ("sequence", "metric", "frames", "mean", "median", "p90", "max", "AUC"):
                acc.add_column(col, justify="right" if col not in ("sequence", "metric") else "left")
            for r in result.accuracy.table:
                acc.add_row(r["sequence"], r["metric"], str(int(r["n"])), f"{r['mean_mm']:.2f}", f"{r['p50_mm']:.2f}",
                            f"{r['p90_mm']:.2f}", f"{r['max_mm']:.2f}", f"{r['auc']:.3f}")
            console.print(acc)
        for note in dict.fromkeys(result.ho3d.notes + (result.accuracy.notes if result.accuracy else ())):
            console.print(f"[yellow]note:[/yellow] {note}")
        console.print(f"wrote {len(result.files)} files to {out}")
