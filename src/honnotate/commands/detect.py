"""``honnotate detect SEQ``: segmentation and 2D keypoint cue files from the perception networks."""

from __future__ import annotations

from pathlib import Path

import typer

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    @app.command("detect")
    def detect_cmd(
        sequence: Path = typer.Argument(..., help="Capture folder (rgb/<cam>/<frame>)."),
        weights: Path | None = typer.Option(None, "--weights", help="Folder with segmentation.pt and keypoints.pt (default: shipped weights)."),
        cameras: list[str] = typer.Option([], "--cameras", help="Camera ids (repeatable; default all)."),
        overwrite: bool = typer.Option(False, "--overwrite", help="Replace existing cue files."),
        device: str = typer.Option("auto", help="auto (CUDA when present), cpu, cuda:0, ..."),
        tta: bool = typer.Option(True, "--tta/--no-tta", help="Average the keypoint heatmaps of three crop "
                                 "rotations (more accurate, three keypoint network passes)."),
        seg_flip: bool = typer.Option(True, "--seg-flip/--no-seg-flip", help="Average the segmentation of the "
                                      "image and of its mirror image (more accurate, two segmentation passes)."),
        seg_zoom: str = typer.Option("", "--seg-zoom", help="Segmentation input sizes as multiples of the "
                                     "trained one, their logits averaged, e.g. 0.5,1 (a half-size input added) "
                                     "(default: the detector's SEG_ZOOM_DEFAULT, the trained size alone)."),
        cut_wrist: bool = typer.Option(True, "--cut-wrist/--no-cut-wrist", help="End a hand mask that runs on past "
                                       "the detected wrist into the forearm (the annotation's hand ends at the "
                                       "wrist; weights with a forearm class: hand and forearm as one, ended "
                                       "there; without the cut the forearm is background)."),
        fuse_views: bool | None = typer.Option(None, "--fuse-views/--no-fuse-views", help="Then make each frame's "
                                               "keypoints agree across the cameras: views that disagree with the "
                                               "point most views agree on get its reprojection; per-view detections "
                                               "kept in keypoints2d_views/ (default: with 3 or more calibrated "
                                               "cameras)."),
    ) -> None:
        """Write segmentation/<cam>/<frame>.png and keypoints2d/<cam>/<frame>.json for every frame."""
        from rich.progress import Progress

        from honnotate.io.files import CaptureFormatError
        from honnotate.io.sequence import open_sequence
        from honnotate.perception.detect import (
            SEG_ZOOM_DEFAULT,
            TTA_DEFAULT,
            Detector,
            detect_sequence,
            parse_seg_zoom,
        )
        from honnotate.perception.weights import WeightsError

        try:
            zoom = parse_seg_zoom(seg_zoom) if seg_zoom.strip() else SEG_ZOOM_DEFAULT
        except ValueError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from None
        try:
            seq = open_sequence(sequence)
            detector = Detector(weights, device, tta=TTA_DEFAULT if tta else ((1.0, 0.0),), cut_wrist=cut_wrist,
                                seg_flip=seg_flip, seg_zoom=zoom)
        except (FileNotFoundError, WeightsError, ValueError) as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from None
        total = len(seq.frame_ids) * len(cameras or seq.camera_ids)
        with Progress() as bar:
            job = bar.add_task(f"detect {sequence.name}", total=total)
            try:
                s = detect_sequence(sequence, cameras=cameras or None, overwrite=overwrite, detector=detector,
                                    fuse_views=fuse_views, progress=lambda done, _t: bar.update(job, completed=done))
            except KeyError as exc:
                typer.echo(f"error: {exc.args[0]}", err=True)
                raise typer.Exit(2) from None
            except (ValueError, CaptureFormatError, FileNotFoundError) as exc:
                typer.echo(f"error: {exc}", err=True)
                raise typer.Exit(2) from None
        per = s.seconds / max(1, s.frames) * 1e3
        typer.echo(f"{sequence}: wrote {s.written} cue files, kept {s.skipped} existing "
                   f"({s.frames} frame x camera pairs, {per:.0f} ms each)")
        if s.fused is not None:
            f = s.fused
            typer.echo(f"fused the keypoints of {f.frames} frame{'s' * (f.frames != 1)} across views: replaced {f.replaced} of "
                       f"{f.keypoints} ({100 * f.replaced / max(1, f.keypoints):.1f}%)"
                       + (f"; {f.skipped} frames without every camera's keypoints left as they were" if f.skipped else ""))
        if (sequence / "ground_truth" / "sequence_gt.npz").is_file() and not cameras:
            from honnotate.evaluate.cues import cue_accuracy, cue_accuracy_markdown

            try:  # a generated capture: how good the cue files are, view by view
                views = cue_accuracy(sequence)
            except (ValueError, CaptureFormatError, FileNotFoundError) as exc:
                typer.echo(f"(no cue accuracy against ground_truth/: {exc})")
            else:
                typer.echo("cue files against ground_truth/ (PCK@10px of visible joints' keypoints, of those given "
                           "for hidden joints; mask IoU):\n" + cue_accuracy_markdown(views))
