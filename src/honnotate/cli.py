"""The ``honnotate`` command line: a thin typer shell over library functions.

Each command lives in a module of :mod:`honnotate.commands` that defines ``register(app)``;
this file only lists them, so adding a command never edits another command's code.
"""

from __future__ import annotations

import importlib

import typer

__all__ = ["app", "main"]

app = typer.Typer(
    name="honnotate",
    help="Annotate RGB-D recordings of a hand manipulating an object with 3D hand and object poses.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)



@app.callback()
def _root() -> None:
    """honnotate: 3D hand + object pose annotation of RGB-D sequences (HOnnotate method)."""


#: Command modules under honnotate.commands, in the order they appear in --help.
COMMAND_MODULES = [
    "info",
    "evaluate",
    "check",
    "demo",
    "synth",
    "render",
    "train",
    "detect",
    "annotate",
]

for _name in COMMAND_MODULES:
    importlib.import_module(f"honnotate.commands.{_name}").register(app)


def main() -> None:  # pragma: no cover - console entry
    app()
