"""Scores files, HTML, accuracy plots and the ``honnotate evaluate`` command end to end."""

from __future__ import annotations

import base64
import json
import pickle
import re

import numpy as np
import pytest
from typer.testing import CliRunner

from honnotate.cli import app
from honnotate.evaluate.ho3d_metrics import HO3D_SCORE_KEYS, evaluate_ho3d
from honnotate.evaluate.io import write_consolidated_npz, write_pred_json
from honnotate.evaluate.report import format_scores_txt, write_ho3d_scores
from honnotate.evaluate.run import detect_input_kind

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _data(seed, n=6):
    rng = np.random.default_rng(seed)
    c = rng.normal(size=(n, 1, 3)) * 0.05 + [0, 0, -0.5]
    xyz = c + rng.normal(size=(n, 21, 3)) * 0.04
    verts = c + rng.normal(size=(n, 778, 3)) * 0.03
    return xyz, verts, xyz + rng.normal(size=xyz.shape) * 0.01, verts + rng.normal(size=verts.shape) * 0.005


def test_scores_txt_format():
    scores = {k: float(i) for i, k in enumerate(HO3D_SCORE_KEYS)}
    text = format_scores_txt(scores)
    lines = text.splitlines()
    assert lines[0] == "xyz_mean3d: 0.000000" and lines[-1] == "f_al_score_15: 13.000000"
    assert [line.split(":")[0] for line in lines] == list(HO3D_SCORE_KEYS)
    with pytest.raises(ValueError, match="missing keys"):
        format_scores_txt({"xyz_mean3d": 1.0})


def test_write_scores_files(tmp_path):
    xyz, verts, xyz_p, verts_p = _data(0)
    res = evaluate_ho3d(xyz, xyz_p, verts, verts_p)
    paths = write_ho3d_scores(tmp_path, res)
    txt = dict(line.split(": ") for line in paths["txt"].read_text().splitlines())
    assert float(txt["mesh_mean3d"]) == pytest.approx(res.scores["mesh_mean3d"], abs=1e-6)
    js = json.loads(paths["json"].read_text())
    assert js["n_frames"] == 6 and set(js["curves"]) == {"xyz", "xyz_procrustes_al", "xyz_scale_trans_al", "mesh", "mesh_al"}
    html = paths["html"].read_text()
    imgs = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)
    assert len(imgs) == 5 and all(base64.b64decode(i).startswith(PNG_MAGIC) for i in imgs)
    assert "Raw curve data" in html


def test_cli_ho3d_json(tmp_path):
    xyz, verts, xyz_p, verts_p = _data(1)
    gt_dir = tmp_path / "gt"
    gt_dir.mkdir()
    (gt_dir / "evaluation_xyz.json").write_text(json.dumps(xyz.tolist()))
    (gt_dir / "evaluation_verts.json").write_text(json.dumps(verts.tolist()))
    pred = write_pred_json(tmp_path / "pred.json", xyz_p, verts_p)
    assert detect_input_kind(gt_dir, pred) == "ho3d"
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["evaluate", str(gt_dir), str(pred), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "f_al_score_15" in result.output
    expected = evaluate_ho3d(xyz, xyz_p, verts, verts_p).scores
    txt = dict(line.split(": ") for line in (out / "scores.txt").read_text().splitlines())
    for k in HO3D_SCORE_KEYS:
        assert float(txt[k]) == pytest.approx(expected[k], abs=1e-6)
    # fewer predictions than ground truth: exit code 2 and a message naming the frame
    short = write_pred_json(tmp_path / "short.json", xyz_p[:4], verts_p[:4])
    bad = CliRunner().invoke(app, ["evaluate", str(gt_dir), str(short), "--out", str(out)])
    assert bad.exit_code == 2 and "frame index 4" in bad.output


def test_cli_npz_accuracy(tmp_path):
    xyz, verts, xyz_p, verts_p = _data(2)
    ids = [f"{i:04d}" for i in range(6)]
    rot = np.zeros((6, 3))
    trans = np.tile([0.0, 0.0, 0.5], (6, 1))
    seqs = ["s1"] * 3 + ["s2"] * 3
    gt = write_consolidated_npz(tmp_path / "gt.npz", ids, xyz, hand_verts=verts, obj_rot=rot, obj_trans=trans,
                                object_vertices=np.eye(3) * 0.05, sequence_ids=seqs)
    pred = write_consolidated_npz(tmp_path / "pred.npz", ids, xyz_p, hand_verts=verts_p, obj_rot=rot,
                                  obj_trans=trans + 0.002, sequence_ids=seqs)
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["evaluate", str(gt), str(pred), "-o", str(out)])
    assert result.exit_code == 0, result.output
    for name in ("scores.txt", "scores.html", "accuracy.md", "accuracy.html", "accuracy_per_frame.csv",
                 "accuracy_pck.png", "accuracy_per_joint.png", "accuracy_frames_s1.png", "accuracy_frames_s2.png"):
        assert (out / name).is_file(), name
    assert (out / "accuracy_frames_s1.png").read_bytes().startswith(PNG_MAGIC)
    md = (out / "accuracy.md").read_text()
    assert "overall" in md and "object ADD (mm)" in md
    csv_lines = (out / "accuracy_per_frame.csv").read_text().splitlines()
    assert len(csv_lines) == 7 and csv_lines[0].startswith("sequence,frame,hand_mpjpe_mm")
    add = float(csv_lines[1].split(",")[csv_lines[0].split(",").index("obj_add_mm")])
    assert add == pytest.approx(np.sqrt(3) * 2.0, abs=1e-3)


def test_cli_annotation_dirs(tmp_path):
    xyz, _, xyz_p, _ = _data(3, n=3)
    for root, joints in (("gt", xyz), ("pred", xyz_p)):
        for i in range(3):
            p = tmp_path / root / "SEQ" / "meta" / f"{i:04d}.pkl"
            p.parent.mkdir(parents=True, exist_ok=True)
            with open(p, "wb") as f:
                pickle.dump({"handJoints3D": joints[i], "objRot": np.zeros((3, 1)), "objTrans": np.zeros(3)}, f, protocol=2)
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["evaluate", str(tmp_path / "gt"), str(tmp_path / "pred"), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "no hand model" in result.output  # mesh metrics skipped, said so
    txt = (out / "scores.txt").read_text()
    assert "mesh_mean3d: -1.000000" in txt
    mm = json.loads((out / "accuracy.json").read_text())["table"][0]["mean_mm"]
    assert mm == pytest.approx(np.linalg.norm(xyz - xyz_p, axis=2).mean() * 1000)


def test_detect_kind_errors(tmp_path):
    (tmp_path / "a.npz").write_bytes(b"")
    (tmp_path / "b.json").write_text("[]")
    with pytest.raises(ValueError, match="one kind"):
        detect_input_kind(tmp_path / "a.npz", tmp_path / "b.json")
    with pytest.raises(FileNotFoundError):
        detect_input_kind(tmp_path / "missing.npz", tmp_path / "a.npz")
