"""The main job on its embedded default, end to end at a small resolution, and through the CLI."""

import json

from typer.testing import CliRunner

from honnotate.cli import app
from honnotate.pipeline.demo import DemoConfig, run_demo


def test_run_demo_writes_outputs(tmp_path):
    summary = run_demo(tmp_path, DemoConfig(width=160, height=120, annotate_frames=3), log=lambda *_: None)
    for name in summary["outputs"]:
        assert (tmp_path / name).is_file(), name
    assert summary["grasp"]["penetration_mm"] <= 2.0
    assert len(summary["grasp"]["contacts"]) >= 3
    for cam in summary["visible_pixels"].values():
        assert cam["hand"] > 50 and cam["object"] > 50
    assert json.loads((tmp_path / "config.json").read_text())["width"] == 160
    assert summary["annotation"]["frames"] == 3
    assert summary["annotation"]["accuracy"]["hand_mpjpe_mm"] < 100.0  # smoke: 160x120, 3 frames


def test_cli_demo_rejects_bad_side(tmp_path):
    res = CliRunner().invoke(app, ["demo", "--out", str(tmp_path), "--side", "middle"])
    assert res.exit_code != 0
    assert "side" in res.output


def test_cli_help_on_every_command():
    runner = CliRunner()
    res = runner.invoke(app, ["--help"])
    assert res.exit_code == 0
    commands = [c.name for c in app.registered_commands]
    assert "demo" in commands and "info" in commands
    for name in commands:
        r = runner.invoke(app, [name, "--help"])
        assert r.exit_code == 0, (name, r.output)
