"""``honnotate info``: environment facts and hand model status."""

import json

from typer.testing import CliRunner

from honnotate.cli import app


def test_info_json(tmp_path):
    res = CliRunner().invoke(app, ["info", "--json", "--cache-dir", str(tmp_path)])
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    assert data["torch"].startswith("2.13") and data["device"] in ("cpu", "cuda")
    assert data["cache_dir"] == str(tmp_path)
    names = {(m["name"], m["side"]) for m in data["hand_models"]}
    assert {("open", "right"), ("open", "left"), ("mano", "right"), ("mano", "left")} <= names
    opened = [m for m in data["hand_models"] if m["name"] == "open"]
    assert all("not built" in m["status"] for m in opened), "empty cache: nothing built yet"
    assert "soup_can" in data["builtin_objects"]
