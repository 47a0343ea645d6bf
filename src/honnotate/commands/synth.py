"""``honnotate synth``: generate a synthetic RGB-D capture with exact ground truth."""

from __future__ import annotations

from pathlib import Path

import typer

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    @app.command("synth")
    def synth_cmd(
        out: Path = typer.Argument(..., help="Sequence folder to write."),
        frames: int = typer.Option(100, "--frames", "-n", help="Number of frames."),
        cameras: int = typer.Option(1, "--cameras", "-k", help="Number of RGB-D cameras (1-5)."),
        object_name: str = typer.Option("mustard_bottle", "--object", help="Built-in object name."),
        seed: int = typer.Option(0, help="Random seed."),
        grasp: str = typer.Option("power", help="Grasp kind: power, precision, lateral or random."),
        side: str = typer.Option("right", help="Hand side: right or left."),
        degraded_cues: bool = typer.Option(False, "--degraded-cues", help="Write cues degraded like real detectors (else exact)."),
        width: int = typer.Option(640, help="Image width."),
        height: int = typer.Option(480, help="Image height."),
        depth_noise: str = typer.Option("structured_light", help="Depth noise: structured_light, tof or none."),
        lighting: str = typer.Option("directional", help="Lighting: directional (ambient + a drifting distant light) "
                                     "or headlight (a light at each camera)."),
        hand_appearance: str = typer.Option("uniform", help="Hand colours: uniform (one skin tone) or anatomical "
                                            "(a lighter palm side and pale nails)."),
    ) -> None:
        """Generate a synthetic capture (RGB, noisy depth, cues, HO-3D ground truth, contact sheet)."""
        from rich.progress import Progress

        from honnotate.models.object import list_builtin_objects
        from honnotate.synth.generator import LightingConfig, SynthConfig, generate_sequence
        from honnotate.synth.noise import DepthNoiseConfig

        if object_name not in list_builtin_objects():
            raise typer.BadParameter(f"unknown object {object_name!r}; built-in objects: {', '.join(list_builtin_objects())}")
        if depth_noise not in ("structured_light", "tof", "none"):
            raise typer.BadParameter(f"depth noise must be structured_light, tof or none, got {depth_noise!r}")
        try:
            cfg = SynthConfig(frames=frames, cameras=cameras, object=object_name, seed=seed, grasp=grasp, side=side,
                              degraded_cues=degraded_cues, width=width, height=height,
                              depth_noise=DepthNoiseConfig(kind=depth_noise), lighting=LightingConfig(kind=lighting),
                              hand_appearance=hand_appearance)
        except ValueError as exc:
            raise typer.BadParameter(str(exc)) from None
        with Progress() as bar:
            task = bar.add_task(f"synth {out.name}", total=frames)
            summary = generate_sequence(out, cfg, progress=lambda done, total: bar.update(task, completed=done))
        typer.echo(f"wrote {out} ({summary['frames']} frames x {summary['cameras']} cameras, {summary['grasp']} grasp, "
                   f"penetration {summary['penetration_mm']:.2f} mm, contacts {', '.join(summary['contacts'])}, "
                   f"{summary['timings_s']['total_s']:.1f} s); contact sheet: {out / 'contact_sheet.png'}")
