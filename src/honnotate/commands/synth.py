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
        object_name: str = typer.Option("mustard_bottle", "--object",
                                        help="Built-in object name; a comma-separated list draws them in turn by "
                                        "seed (objects[seed % len]), for batches."),
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
        forearm: bool = typer.Option(True, "--forearm/--no-forearm", help="Render a forearm behind the wrist, bare or "
                                     "sleeved (scenery: background in the masks; --no-forearm: the captures of "
                                     "before 2026-12-04)."),
        count: int = typer.Option(1, "--count", help="Captures to generate: more than 1 writes OUT/s<seed> for "
                                  "seeds SEED .. SEED+COUNT-1 (a batch; a rerun skips finished captures)."),
        workers: int = typer.Option(1, "--workers", help="Processes for a batch (one torch thread each)."),
        no_contact_sheet: bool = typer.Option(False, "--no-contact-sheet",
                                              help="Skip the contact sheet (a third of a one-frame capture's time)."),
    ) -> None:
        """Generate a synthetic capture (RGB, noisy depth, cues, HO-3D ground truth, contact sheet)."""
        from rich.progress import Progress

        from honnotate.models.object import list_builtin_objects
        from honnotate.synth.generator import LightingConfig, SynthConfig, generate_sequence
        from honnotate.synth.noise import DepthNoiseConfig

        objects = [o.strip() for o in object_name.split(",") if o.strip()]
        unknown = [o for o in objects if o not in list_builtin_objects()]
        if unknown or not objects:
            raise typer.BadParameter(f"unknown object {', '.join(unknown) or repr(object_name)}; built-in objects: "
                                     f"{', '.join(list_builtin_objects())}")
        if count < 1 or workers < 1:
            raise typer.BadParameter(f"--count and --workers must be >= 1, got {count} and {workers}")
        if depth_noise not in ("structured_light", "tof", "none"):
            raise typer.BadParameter(f"depth noise must be structured_light, tof or none, got {depth_noise!r}")
        try:
            cfg = SynthConfig(frames=frames, cameras=cameras, object=objects[seed % len(objects)], seed=seed, grasp=grasp, side=side,
                              degraded_cues=degraded_cues, width=width, height=height,
                              depth_noise=DepthNoiseConfig(kind=depth_noise), lighting=LightingConfig(kind=lighting),
                              hand_appearance=hand_appearance, forearm=forearm)
        except ValueError as exc:
            raise typer.BadParameter(str(exc)) from None
        if count > 1:
            _batch(out, cfg, count, objects, workers, not no_contact_sheet)
            return
        with Progress() as bar:
            task = bar.add_task(f"synth {out.name}", total=frames)
            summary = generate_sequence(out, cfg, progress=lambda done, total: bar.update(task, completed=done),
                                        contact_sheet=not no_contact_sheet)
        typer.echo(f"wrote {out} ({summary['frames']} frames x {summary['cameras']} cameras, {summary['grasp']} grasp, "
                   f"penetration {summary['penetration_mm']:.2f} mm, contacts {', '.join(summary['contacts'])}, "
                   f"{summary['timings_s']['total_s']:.1f} s)"
                   + ("" if no_contact_sheet else f"; contact sheet: {out / 'contact_sheet.png'}"))


def _batch(out: Path, cfg, count: int, objects: list[str], workers: int, contact_sheet: bool) -> None:
    import time

    from rich.progress import Progress

    from honnotate.synth.batch import generate_batch

    t0 = time.perf_counter()
    with Progress() as bar:
        task = bar.add_task(f"synth {out.name} ({count} captures)", total=None)
        result = generate_batch(out, cfg, count, objects=objects, workers=workers, contact_sheet=contact_sheet,
                                progress=lambda done, total: bar.update(task, completed=done, total=total))
    typer.echo(f"wrote {len(result.written)} captures to {out} (seeds {cfg.seed}-{cfg.seed + count - 1}; "
               f"{len(result.skipped)} already done) in {time.perf_counter() - t0:.0f} s")
    for seed, error in result.failed:
        typer.echo(f"capture {out / f's{seed}'} (seed {seed}) failed: {error}", err=True)
    if result.failed:
        raise typer.Exit(1)
