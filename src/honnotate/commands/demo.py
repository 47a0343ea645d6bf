"""``honnotate demo``: the main job on its embedded default (see honnotate.pipeline.demo)."""

from __future__ import annotations

from pathlib import Path

import typer

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    @app.command("demo")
    def demo_cmd(
        out: Path = typer.Option(Path("honnotate_out"), "--out", "-o", help="Output folder."),
        object_name: str = typer.Option("soup_can", "--object", help="Built-in object (see `honnotate info`)."),
        side: str = typer.Option("right", help="Hand side: right or left."),
        grasp: str = typer.Option("power", help="Grasp kind: power or precision."),
        seed: int = typer.Option(0, help="Random seed."),
    ) -> None:
        """Build the open hand, grasp a built-in object, render 3 cameras, write meshes and a report."""
        from honnotate.pipeline.demo import DemoConfig, run_demo

        if side not in ("right", "left"):
            raise typer.BadParameter(f"side must be 'right' or 'left', got {side!r}")
        if grasp not in ("power", "precision"):
            raise typer.BadParameter(f"grasp must be 'power' or 'precision', got {grasp!r}")
        cfg = DemoConfig(object_name=object_name, side=side, grasp=grasp, seed=seed)
        summary = run_demo(out, cfg, log=typer.echo)
        typer.echo(f"grasp: penetration {summary['grasp']['penetration_mm']:.2f} mm, "
                   f"contacts {', '.join(summary['grasp']['contacts']) or 'none'}")
