"""``honnotate annotate SEQ``: annotate a capture end to end (hand and object poses per frame)."""

from __future__ import annotations

from pathlib import Path

import typer

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    @app.command("annotate")
    def annotate_cmd(
        sequence: Path = typer.Argument(..., help="Capture folder (rgb/, depth/, calibration/, cues, meta.yaml)."),
        out: Path | None = typer.Option(None, "--out", "-o", help="Output folder (default SEQ/annotation)."),
        config: Path | None = typer.Option(None, "--config", "-c", help="Config file (JSON or YAML; partial)."),
        resume: bool = typer.Option(False, "--resume", help="Continue a stopped run from its checkpoints."),
        frames: str | None = typer.Option(None, "--frames", help="Frame slice 'start:stop[:step]'."),
        cameras: list[str] = typer.Option([], "--cameras", help="Camera ids to use (repeatable; default all)."),
        device: str | None = typer.Option(None, help="auto (CUDA when present), cpu, cuda:0, ..."),
        mode: str | None = typer.Option(None, help="auto, single or multi (default: multi with >= 2 cameras)."),
    ) -> None:
        """Annotate hand pose, hand shape and object pose in every frame; writes HO-3D pickles,
        annotation.npz, a report and the resolved config."""
        from rich.progress import (
            BarColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        from honnotate.annotate.config import ConfigError, load_config
        from honnotate.io.sequence import CaptureFormatError
        from honnotate.pipeline.annotate import MissingCuesError, annotate_sequence

        try:
            cfg = load_config(config, frames=frames, cameras=cameras or None, device=device, mode=mode)
        except ConfigError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from None
        with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                      TimeElapsedColumn(), TimeRemainingColumn()) as bar:
            tasks: dict[str, int] = {}

            def progress(stage: str, done: int, total: int) -> None:
                if stage not in tasks:
                    tasks[stage] = bar.add_task(stage, total=total)
                bar.update(tasks[stage], completed=done, total=total)

            try:
                annotate_sequence(sequence, out, cfg, resume=resume, log=bar.console.print, progress=progress)
            except (MissingCuesError, FileNotFoundError, CaptureFormatError, ValueError) as exc:
                typer.echo(f"error: {exc}", err=True)
                raise typer.Exit(2) from None
