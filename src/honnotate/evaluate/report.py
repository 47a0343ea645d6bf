"""Outputs of an evaluation: HO-3D ``scores.txt`` / ``scores.json`` / ``scores.html`` and the
annotation-accuracy tables and plots.

``scores.txt`` has the official script's ``key: %f`` lines in its order; ``scores.html`` follows
the official ``createHTML`` page (one section per PCK curve: the plot as an embedded base64 PNG,
then the raw curve data), x axis in cm. Plots use matplotlib's Agg backend (no display needed).
"""

from __future__ import annotations

import base64
import csv
import html
import io
import json
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from honnotate.evaluate.accuracy import METRIC_LABELS, PERCENTILES, AccuracyReport
from honnotate.evaluate.ho3d_metrics import HO3D_SCORE_KEYS, Ho3dScores, PckCurve

__all__ = [
    "format_scores_txt",
    "pck_curve_png",
    "scores_html",
    "write_ho3d_scores",
    "accuracy_table_markdown",
    "error_over_frames_png",
    "per_joint_errors_png",
    "write_accuracy_report",
]


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _fig_png(fig, dpi: int = 100) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    _pyplot().close(fig)
    return buf.getvalue()


def format_scores_txt(scores: Mapping[str, float]) -> str:
    """The official ``scores.txt`` text: ``key: %f`` lines for the 14 HO-3D keys, in order.

    Args:
        scores: the 14 keys (mean errors in cm, as :class:`Ho3dScores`).
    """
    missing = [k for k in HO3D_SCORE_KEYS if k not in scores]
    if missing:
        raise ValueError(f"scores: missing keys {missing}")
    return "".join(f"{k}: {float(scores[k]):f}\n" for k in HO3D_SCORE_KEYS)


def pck_curve_png(curve: PckCurve, *, dpi: int = 100) -> bytes:
    """PNG bytes of one PCK curve (x: threshold in cm, y: PCK)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.76, 4.32))
    ax.plot(curve.thresholds_m * 100.0, curve.pck)
    ax.set_xlabel("Distance in cm")
    ax.set_ylabel(curve.ylabel)
    ax.set_title(curve.title)
    ax.set_ylim(0.0, 1.02)
    ax.grid(True, alpha=0.3)
    return _fig_png(fig, dpi)


def _img_tag(png: bytes, alt: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return f'<img border="0" src="data:image/png;base64,{data}" alt="{html.escape(alt)}" width="576">'


def scores_html(result: Ho3dScores) -> str:
    """The ``scores.html`` page: a score table, then each PCK curve with its raw data."""
    rows = "".join(f"<tr><td>{k}</td><td>{v:f}</td></tr>" for k, v in result.scores.items())
    parts = [
        "<!DOCTYPE html>\n<html>\n<head><meta charset=\"utf-8\"><title>HO-3D scores</title></head>\n<body>",
        f"<h1>Scores</h1>\n<p>{result.n_frames} frames; mean errors in cm.</p>",
        f"<table border=\"1\" cellpadding=\"3\">{rows}</table>",
    ]
    parts += [f"<p><em>{html.escape(n)}</em></p>" for n in result.notes]
    parts.append("<h1>Detailed results:</h1>")
    for curve in result.curves.values():
        x = np.array2string(curve.thresholds_m * 100.0, separator=", ", threshold=10**6, max_line_width=10**6)
        y = np.array2string(curve.pck, separator=", ", threshold=10**6, max_line_width=10**6)
        parts.append(
            f"<h2>{html.escape(curve.title)}</h2>\n<p>{_img_tag(pck_curve_png(curve), curve.title)}</p>\n"
            f"<p>Raw curve data:</p>\n<p>x_axis: <small>{x}</small></p>\n<p>y_axis: <small>{y}</small></p>"
        )
    parts.append("</body>\n</html>\n")
    return "\n".join(parts)


def write_ho3d_scores(out_dir, result: Ho3dScores) -> dict[str, Path]:
    """Write ``scores.txt``, ``scores.json`` and ``scores.html`` into ``out_dir``.

    ``scores.json`` holds the scores, the frame count, the notes and the PCK curves
    (``thresholds_m``, ``pck``).

    Returns:
        ``{"txt": path, "json": path, "html": path}``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"txt": out / "scores.txt", "json": out / "scores.json", "html": out / "scores.html"}
    paths["txt"].write_text(format_scores_txt(result.scores))
    payload = {
        "scores": result.scores,
        "n_frames": result.n_frames,
        "units": "mean errors in cm; AUC over 0-5 cm; F-scores at 5 and 15 mm",
        "notes": list(result.notes),
        "curves": {
            k: {"title": c.title, "thresholds_m": c.thresholds_m.tolist(), "pck": c.pck.tolist()}
            for k, c in result.curves.items()
        },
    }
    paths["json"].write_text(json.dumps(payload, indent=2))
    paths["html"].write_text(scores_html(result))
    return paths


# ----------------------------------------------------------------------------- accuracy


def accuracy_table_markdown(report: AccuracyReport) -> str:
    """The accuracy summary as a markdown table (one row per sequence and metric), mm."""
    cols = ["n", "mean_mm"] + [f"p{q}_mm" for q in PERCENTILES] + ["max_mm", "auc"]
    head = "| sequence | metric | frames | mean | " + " | ".join(f"p{q}" for q in PERCENTILES) + " | max | AUC 0-5 cm |"
    lines = [head, "|" + "---|" * (len(cols) + 2)]
    for row in report.table:
        vals = [f"{int(row['n'])}"] + [f"{row[c]:.2f}" for c in cols[1:-1]] + [f"{row['auc']:.3f}"]
        lines.append(f"| {row['sequence']} | {METRIC_LABELS[row['metric']]} | " + " | ".join(vals) + " |")
    return "\n".join(lines) + "\n"


def error_over_frames_png(report: AccuracyReport, sequence: str, *, dpi: int = 100) -> bytes:
    """PNG: every per-frame metric of one sequence over its frames (mm), one panel per metric."""
    plt = _pyplot()
    mask = report.sequence_ids == sequence
    if not mask.any():
        raise ValueError(f"sequence '{sequence}' is not in the report")
    metrics = list(report.per_frame_mm)
    fig, axes = plt.subplots(len(metrics), 1, figsize=(8, 1.9 * len(metrics) + 0.6), sharex=True, squeeze=False)
    x = np.arange(int(mask.sum()))
    for ax, m in zip(axes[:, 0], metrics, strict=True):
        y = report.per_frame_mm[m][mask]
        ax.plot(x, y, lw=1.0)
        ax.axhline(float(np.mean(y)), color="tab:red", lw=0.8, ls="--", label=f"mean {np.mean(y):.2f} mm")
        ax.set_ylabel("mm")
        ax.set_title(METRIC_LABELS[m], fontsize=9)
        ax.legend(loc="upper right", fontsize=8)
        ax.grid(True, alpha=0.3)
    axes[-1, 0].set_xlabel(f"frame index in sequence '{sequence}'")
    fig.tight_layout()
    return _fig_png(fig, dpi)


def per_joint_errors_png(report: AccuracyReport, *, dpi: int = 100) -> bytes:
    """PNG: mean absolute and root-relative error per joint (MANO order), mm, all frames."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 3.2))
    j = np.arange(report.per_joint_mm.shape[1])
    ax.bar(j - 0.2, report.per_joint_mm.mean(axis=0), width=0.4, label="absolute")
    ax.bar(j + 0.2, report.per_joint_rr_mm.mean(axis=0), width=0.4, label="root-relative")
    ax.set_xticks(j)
    ax.set_xlabel("joint (MANO order; tips 16-20)")
    ax.set_ylabel("mean error (mm)")
    top = max(float(report.per_joint_mm.mean(axis=0).max()), float(report.per_joint_rr_mm.mean(axis=0).max()))
    ax.set_ylim(0.0, top * 1.3 + 1e-9)
    ax.legend(ncol=2, loc="upper left")
    ax.grid(True, axis="y", alpha=0.3)
    fig.tight_layout()
    return _fig_png(fig, dpi)


def _safe_name(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name) or "sequence"


def write_accuracy_report(out_dir, report: AccuracyReport) -> dict[str, Path]:
    """Write the annotation-accuracy outputs into ``out_dir``.

    Files: ``accuracy.md`` (table), ``accuracy.json`` (table, notes, PCK curves),
    ``accuracy_per_frame.csv`` (sequence, frame, each metric in mm), ``accuracy_pck.png``,
    ``accuracy_per_joint.png``, ``accuracy_frames_<sequence>.png`` per sequence, and
    ``accuracy.html`` embedding all of them.

    Returns:
        name -> path of every written file.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    table_md = accuracy_table_markdown(report)
    paths["md"] = out / "accuracy.md"
    notes_md = "".join(f"- {n}\n" for n in report.notes)
    paths["md"].write_text("# Annotation accuracy\n\n" + table_md + ("\n" + notes_md if notes_md else ""))
    paths["json"] = out / "accuracy.json"
    paths["json"].write_text(
        json.dumps(
            {
                "table": report.table,
                "notes": list(report.notes),
                "pck": {k: {"thresholds_m": c.thresholds_m.tolist(), "pck": c.pck.tolist()} for k, c in report.pck.items()},
            },
            indent=2,
        )
    )
    paths["csv"] = out / "accuracy_per_frame.csv"
    metrics = list(report.per_frame_mm)
    with open(paths["csv"], "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["sequence", "frame"] + [f"{m}_mm" for m in metrics])
        for i in range(len(report.frame_ids)):
            w.writerow([report.sequence_ids[i], report.frame_ids[i]] + [f"{report.per_frame_mm[m][i]:.4f}" for m in metrics])
    images: list[tuple[str, bytes]] = []
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.76, 4.32))
    for c in report.pck.values():
        ax.plot(c.thresholds_m * 100.0, c.pck, label=c.title)
    ax.set_xlabel("Distance in cm")
    ax.set_ylabel("Percentage of correct keypoints")
    ax.set_ylim(0.0, 1.02)
    ax.legend(loc="lower right")
    ax.grid(True, alpha=0.3)
    images.append(("accuracy_pck.png", _fig_png(fig)))
    images.append(("accuracy_per_joint.png", per_joint_errors_png(report)))
    for seq in dict.fromkeys(report.sequence_ids.tolist()):
        images.append((f"accuracy_frames_{_safe_name(seq)}.png", error_over_frames_png(report, seq)))
    for name, png in images:
        paths[name] = out / name
        paths[name].write_bytes(png)
    body = "".join(f"<h2>{html.escape(n)}</h2>\n<p>{_img_tag(png, n)}</p>\n" for n, png in images)
    rows = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in (r["sequence"], METRIC_LABELS[r["metric"]], int(r["n"]), f"{r['mean_mm']:.2f}", f"{r['p50_mm']:.2f}", f"{r['p90_mm']:.2f}", f"{r['max_mm']:.2f}", f"{r['auc']:.3f}")) + "</tr>"
        for r in report.table
    )
    table_html = (
        "<table border=\"1\" cellpadding=\"3\"><tr><th>sequence</th><th>metric</th><th>n</th><th>mean</th>"
        f"<th>median</th><th>p90</th><th>max</th><th>AUC 0-5 cm</th></tr>{rows}</table>"
    )
    notes_html = "".join(f"<p><em>{html.escape(n)}</em></p>" for n in report.notes)
    paths["html"] = out / "accuracy.html"
    paths["html"].write_text(
        "<!DOCTYPE html>\n<html>\n<head><meta charset=\"utf-8\"><title>Annotation accuracy</title></head>\n<body>\n"
        f"<h1>Annotation accuracy (mm)</h1>\n{table_html}\n{notes_html}\n{body}</body>\n</html>\n"
    )
    return paths
