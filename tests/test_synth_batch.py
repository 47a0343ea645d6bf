"""Batches of synthetic captures: the same captures as one at a time, resume, failures, the CLI."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from typer.testing import CliRunner

from honnotate.synth import batch as batch_mod
from honnotate.synth.batch import batch_jobs, capture_done, generate_batch
from honnotate.synth.generator import SynthConfig, generate_sequence

BASE = SynthConfig(frames=1, cameras=2, object="mug", width=128, height=96, seed=40, grasp="random")
OBJS = ("sphere", "soup_can")


def test_jobs_draw_objects_by_seed(tmp_path):
    jobs = batch_jobs(tmp_path, BASE, 3, OBJS)
    assert [p.name for p, _ in jobs] == ["s40", "s41", "s42"]
    assert [c.object for _, c in jobs] == ["sphere", "soup_can", "sphere"]  # objects[seed % 2]
    assert all(c.width == 128 and c.cameras == 2 for _, c in jobs)
    assert [c.object for _, c in batch_jobs(tmp_path, BASE, 2)] == ["mug", "mug"]
    with pytest.raises(ValueError, match="count"):
        batch_jobs(tmp_path, BASE, 0)
    with pytest.raises(ValueError, match="anvil"):
        batch_jobs(tmp_path, BASE, 2, ["mug", "anvil"])


def test_batch_equals_single_captures_and_resumes(tmp_path):
    out = tmp_path / "batch"
    res = generate_batch(out, BASE, 2, objects=OBJS, contact_sheet=False)
    assert res.written == [40, 41] and res.skipped == [] and res.failed == []
    assert capture_done(out / "s40") and not (out / "s40" / "contact_sheet.png").exists()
    # the same capture as generate_sequence with that seed and object; regenerating it without a
    # contact sheet removes the one it had
    generate_sequence(tmp_path / "one", dataclasses.replace(BASE, seed=41, object="soup_can"))
    assert (tmp_path / "one" / "contact_sheet.png").exists()
    generate_sequence(tmp_path / "one", dataclasses.replace(BASE, seed=41, object="soup_can"), contact_sheet=False)
    assert not (tmp_path / "one" / "contact_sheet.png").exists()
    a, b = np.load(out / "s41" / "ground_truth" / "sequence_gt.npz"), np.load(tmp_path / "one" / "ground_truth" /
                                                                              "sequence_gt.npz")
    np.testing.assert_array_equal(a["keypoints2d"], b["keypoints2d"])
    np.testing.assert_array_equal(a["hand_pose"], b["hand_pose"])
    assert json.loads((out / "s41" / "synth_config.json").read_text())["object"] == "soup_can"
    # a rerun skips finished captures and redoes a half-written one
    (out / "s41" / "ground_truth" / "summary.json").unlink()
    done = []
    res = generate_batch(out, BASE, 2, objects=OBJS, progress=lambda d, t: done.append((d, t)))
    assert res.written == [41] and res.skipped == [40] and done == [(1, 1)]
    assert capture_done(out / "s41")


def test_failed_capture_is_reported_and_others_go_on(tmp_path, monkeypatch):
    real = batch_mod.generate_sequence

    def flaky(path, cfg, **kw):
        if cfg.seed == 40:
            raise RuntimeError("grasp search found nothing")
        return real(path, cfg, **kw)

    monkeypatch.setattr(batch_mod, "generate_sequence", flaky)
    res = generate_batch(tmp_path, BASE, 2, objects=OBJS)
    assert res.written == [41] and res.failed == [(40, "RuntimeError: grasp search found nothing")]
    assert not capture_done(tmp_path / "s40")
    with pytest.raises(ValueError, match="workers"):
        generate_batch(tmp_path, BASE, 2, workers=0)


def test_cli_batch_with_workers(tmp_path):
    from honnotate.cli import app

    runner = CliRunner()
    args = ["synth", str(tmp_path / "b"), "--frames", "1", "--width", "128", "--height", "96", "--seed", "7",
            "--count", "2", "--workers", "2", "--object", "sphere,mug", "--grasp", "random", "--no-contact-sheet"]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    assert "wrote 2 captures" in res.output
    assert json.loads((tmp_path / "b" / "s7" / "synth_config.json").read_text())["object"] == "mug"
    assert json.loads((tmp_path / "b" / "s8" / "synth_config.json").read_text())["object"] == "sphere"
    res = runner.invoke(app, args)
    assert res.exit_code == 0 and "2 already done" in res.output
    res = runner.invoke(app, ["synth", str(tmp_path / "x"), "--count", "2", "--object", "mug,anvil"])
    assert res.exit_code != 0 and "anvil" in res.output
