"""``honnotate render``: writes a 2x2 PNG grid; bad inputs exit with a usage error."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from honnotate.cli import app


@pytest.mark.slow  # builds the open hand on first use
def test_render_command_writes_grid(tmp_path):
    bg = tmp_path / "bg.png"
    Image.fromarray(np.full((30, 40, 3), 200, dtype=np.uint8)).save(bg)
    out = tmp_path / "grid.png"
    res = CliRunner().invoke(app, ["render", str(out), "--object", "soup_can", "--width", "80", "--height", "60", "--image", str(bg)])
    assert res.exit_code == 0, res.output
    img = np.asarray(Image.open(out))
    assert img.shape == (120, 160, 3)
    rgb, labels, overlay = img[:60, :80], img[:60, 80:], img[60:, 80:]
    assert (rgb.sum(-1) > 0).mean() > 0.05  # something is drawn
    colours = {tuple(c) for c in labels.reshape(-1, 3)}
    assert {(0, 0, 0), (60, 120, 255), (255, 170, 120)} <= colours  # background, object, hand
    assert (overlay == 200).all(-1).mean() > 0.3  # the given background shows through


def test_render_command_bad_inputs(tmp_path):
    res = CliRunner().invoke(app, ["render", str(tmp_path / "x.png"), "--image", str(tmp_path / "missing.png")])
    assert res.exit_code != 0 and "does not exist" in res.output
    res = CliRunner().invoke(app, ["render", str(tmp_path / "x.png"), "--width", "0"])
    assert res.exit_code != 0 and "positive" in res.output
