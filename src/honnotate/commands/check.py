"""``honnotate check SEQ``: report missing, corrupt or inconsistent data in a capture sequence.

Exit code 0 when the sequence is clean (warnings alone allowed unless ``--strict``), 1 when
something is wrong, so scripts can gate on it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    @app.command("check")
    def check_cmd(
        seq: Annotated[Path, typer.Argument(help="Sequence folder (<seq>/rgb/<cam>/<frame>.png, ...).")],
        strict: bool = typer.Option(False, "--strict", help="Exit 1 on warnings too."),
        decode: bool = typer.Option(True, "--decode/--headers-only",
                                    help="Decode every image (catches truncated files, checks depth units) "
                                         "or read headers only (fast)."),
        json_out: bool = typer.Option(False, "--json", help="Print the report as JSON."),
        max_rows: int = typer.Option(50, help="Show at most this many issues in the table."),
    ) -> None:
        """Check a capture sequence: missing/corrupt frames, sizes, calibration, depth units, cues."""
        import json

        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )
        from rich.table import Table

        from honnotate.io.check import check_sequence

        console = Console(stderr=json_out)
        with Progress(TextColumn("checking frames"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                      console=console, transient=True, disable=json_out) as bar:
            task = bar.add_task("check", total=None)
            report = check_sequence(seq, decode=decode,
                                    progress=lambda done, total: bar.update(task, completed=done, total=total))
        if json_out:
            typer.echo(json.dumps(report.to_dict(), indent=2))
            raise typer.Exit(report.exit_code(strict))

        console.print(f"[bold]{seq}[/]: {len(report.camera_ids)} camera(s) {report.camera_ids}, "
                      f"{len(report.frame_ids)} frame(s)")
        for cam, metres in report.median_depth_m.items():
            console.print(f"  camera {cam}: median valid depth {metres:.3f} m")
        if report.issues:
            table = Table(show_lines=False)
            for col in ("severity", "camera", "frame", "file", "message"):
                table.add_column(col, overflow="fold")
            for issue in report.issues[:max_rows]:
                style = "red" if issue.severity == "error" else "yellow"
                table.add_row(f"[{style}]{issue.severity}[/]", issue.camera or "", issue.frame or "",
                              issue.file or "", issue.message)
            console.print(table)
            if len(report.issues) > max_rows:
                console.print(f"... and {len(report.issues) - max_rows} more (use --json for all)")
        verdict = "[green]OK[/]" if report.ok else "[red]FAILED[/]"
        console.print(f"{verdict}: {len(report.errors)} error(s), {len(report.warnings)} warning(s)")
        raise typer.Exit(report.exit_code(strict))
