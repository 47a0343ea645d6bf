"""honnotate.io.check and ``honnotate check``: each planted defect is found, a clean sequence passes."""

from __future__ import annotations

import json

import numpy as np
import pytest
import roma
import torch
from typer.testing import CliRunner

from honnotate.cli import app
from honnotate.geometry import Camera
from honnotate.io.check import check_sequence
from honnotate.io.images import write_depth_png, write_image, write_label_png
from honnotate.io.sequence import write_sequence

W, H = 64, 48


def _cameras(n):
    cams = []
    for i in range(n):
        T = torch.eye(4)
        if i:
            T[:3, :3] = roma.rotvec_to_rotmat(torch.tensor([0.1, 0.4 * i, 0.0]))
            T[:3, 3] = torch.tensor([0.25 * i, 0.0, 0.1])
        cams.append(Camera.from_intrinsics(610.0, 612.0, 31.5, 23.5, W, H, cam_to_world=T, name=str(i)))
    return cams


def _frame(seed):
    rng = np.random.default_rng(seed)
    depth = rng.uniform(0.45, 0.75, (H, W))
    depth[:, :4] = 0.0
    kp = np.stack([rng.uniform(0, W - 1, 21), rng.uniform(0, H - 1, 21), rng.uniform(0.2, 1, 21)], 1)
    return {"rgb": rng.integers(0, 256, (H, W, 3), dtype=np.uint8), "depth": depth,
            "segmentation": rng.integers(0, 3, (H, W)), "keypoints2d": kp}


@pytest.fixture(scope="module")
def clean_seq(tmp_path_factory):
    root = tmp_path_factory.mktemp("clean") / "seq"
    data = {f: {str(c): _frame(10 * f + c) for c in range(2)} for f in range(3)}
    write_sequence(root, _cameras(2), data, depth_scale=0.001, meta={"object": "006_mustard_bottle"})
    return root


@pytest.fixture
def seq(clean_seq, tmp_path):
    import shutil

    dst = tmp_path / "seq"
    shutil.copytree(clean_seq, dst)
    return dst


def _only(report, severity="error"):
    return [i for i in report.issues if i.severity == severity]


def test_clean_sequence_passes(seq):
    calls = []
    report = check_sequence(seq, progress=lambda done, total: calls.append((done, total)))
    assert report.issues == [], report.issues
    assert report.ok and report.exit_code() == 0 and report.exit_code(strict=True) == 0
    assert report.camera_ids == ["0", "1"] and report.frame_ids == ["0000", "0001", "0002"]
    assert calls == [(1, 3), (2, 3), (3, 3)]
    for metres in report.median_depth_m.values():
        assert 0.55 < metres < 0.65


def test_missing_frame(seq):
    (seq / "depth/1/0001.png").unlink()
    (seq / "rgb/1/0002.png").unlink()
    report = check_sequence(seq)
    errs = {(i.camera, i.frame, i.message) for i in _only(report)}
    assert errs == {("1", "0001", "missing depth frame"), ("1", "0002", "missing colour frame")}
    assert report.exit_code() == 1


def test_missing_cue_is_a_warning(seq):
    (seq / "keypoints2d/0/0000.json").unlink()
    report = check_sequence(seq)
    assert report.ok and report.exit_code() == 0 and report.exit_code(strict=True) == 1
    (w,) = report.warnings
    assert (w.camera, w.frame, w.message) == ("0", "0000", "missing 2D keypoint cue")


@pytest.mark.parametrize("rel", ["rgb/0/0001.png", "depth/1/0002.png", "segmentation/1/0000.png"])
def test_truncated_png(seq, rel):
    p = seq / rel
    p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])
    (err,) = _only(check_sequence(seq))
    assert err.file == str(p) and err.frame == rel[-8:-4] and err.camera == rel.split("/")[1]
    assert "corrupt or truncated image" in err.message


def test_truncated_png_end_chunk(seq):
    p = seq / "depth/0/0000.png"
    p.write_bytes(p.read_bytes()[:-5])
    (err,) = _only(check_sequence(seq))
    assert err.file == str(p)
    assert check_sequence(seq, decode=False).ok  # header-only mode cannot see it


def test_wrong_size(seq):
    write_depth_png(seq / "depth/1/0001.png", np.full((H, W + 2), 600, np.uint16))
    write_label_png(seq / "segmentation/0/0002.png", np.zeros((H // 2, W // 2), np.uint8))
    write_image(seq / "rgb/1/0002.png", np.zeros((H + 1, W, 3), np.uint8))
    errs = [(i.camera, i.frame, i.message) for i in _only(check_sequence(seq))]
    assert sorted(errs) == [
        ("0", "0002", f"segmentation is {W // 2}x{H // 2} but the colour images are {W}x{H}"),
        ("1", "0001", f"depth image is {W + 2}x{H} but the colour images are {W}x{H}"),
        ("1", "0002", f"colour image is {W}x{H + 1}, other frames of this camera are {W}x{H}"),
    ]


@pytest.mark.parametrize("name", ["cam_1_intrinsics.txt", "cam_0_depth_scale.txt", "trans_1.txt"])
def test_missing_calibration(seq, name):
    (seq / "calibration" / name).unlink()
    (err,) = _only(check_sequence(seq))
    assert err.file == str(seq / "calibration" / name)
    assert err.message.startswith("missing calibration")


def test_single_camera_trans_optional(tmp_path):
    write_sequence(tmp_path / "s", _cameras(1), {0: {"0": _frame(0)}}, meta={"object": "cup"},
                   write_trans=False)
    assert check_sequence(tmp_path / "s").issues == []


def test_millimetre_depth_scale_given_as_metres(seq):
    (seq / "calibration/cam_1_depth_scale.txt").write_text("1.0\n")
    report = check_sequence(seq)
    (err,) = _only(report)
    assert err.camera == "1" and err.file.endswith("cam_1_depth_scale.txt")
    assert "millimetre" in err.message and "set depth_scale 0.001" in err.message
    assert report.median_depth_m["1"] > 100


def test_depth_scale_too_small(seq):
    (seq / "calibration/cam_0_depth_scale.txt").write_text("0.000001\n")
    (err,) = _only(check_sequence(seq))
    assert "outside 0.1..5 m" in err.message or "set depth_scale" in err.message


def test_implausible_intrinsics(seq):
    (seq / "calibration/cam_0_intrinsics.txt").write_text("fx: 0.9, fy: 0.9, ppx: 0.5, ppy: 0.5\n")
    (seq / "calibration/cam_1_intrinsics.txt").write_text("fx: 600, fy: 600, ppx: 320, ppy: 240, width: 640, height: 480\n")
    msgs: dict[str, list[str]] = {"0": [], "1": []}
    for i in _only(check_sequence(seq)):
        msgs[i.camera].append(i.message)
    assert any("implausible focal length" in m for m in msgs["0"])
    assert any("principal point (320, 240) px lies outside the 64x48 image" in m for m in msgs["1"])
    assert any("intrinsics are for a 640x480 image" in m for m in msgs["1"])


def test_non_rigid_trans(seq):
    T = np.loadtxt(seq / "calibration/trans_1.txt")
    T[:3, :3] *= 1000.0  # a matrix mixing mm and m
    np.savetxt(seq / "calibration/trans_1.txt", T)
    (err,) = _only(check_sequence(seq))
    assert "not rigid" in err.message and err.camera == "1"


def test_bad_cues(seq):
    lab = np.zeros((H, W), np.uint8)
    lab[5, 5] = 4
    write_label_png(seq / "segmentation/1/0000.png", lab)
    (seq / "keypoints2d/0/0001.json").write_text(json.dumps({"keypoints": [[1, 1, 1]] * 20}))
    kp = np.tile([[10.0, 10.0, 1.0]], (21, 1))
    kp[7] = [200.0, 10.0, 0.9]
    kp[8] = [300.0, 10.0, 0.0]  # outside but not detected: fine
    (seq / "keypoints2d/1/0002.json").write_text(json.dumps({"keypoints": kp.tolist()}))
    errs = {(i.camera, i.frame): i.message for i in _only(check_sequence(seq))}
    assert "found [4]" in errs[("1", "0000")]
    assert "shape (20, 3)" in errs[("0", "0001")]
    assert errs[("1", "0002")] == "keypoints [7] lie outside the 64x48 image"


def test_normalised_keypoints_flagged(seq):
    kp = np.random.default_rng(0).uniform(0, 1, (21, 3))
    (seq / "keypoints2d/0/0000.json").write_text(json.dumps(kp.tolist()))
    (err,) = _only(check_sequence(seq))
    assert "normalised" in err.message


def test_meta_problems(seq):
    (seq / "meta.yaml").unlink()
    (err,) = _only(check_sequence(seq))
    assert err.file.endswith("meta.yaml") and "missing" in err.message
    (seq / "meta.yaml").write_text("object: meshes/cup.obj\nhand_side: up\n")
    (err,) = _only(check_sequence(seq))
    assert "key 'hand_side'" in err.message
    (seq / "meta.yaml").write_text("object: meshes/cup.obj\n")
    (err,) = _only(check_sequence(seq))
    assert "object mesh" in err.message and err.file.endswith("meshes/cup.obj")


def test_extra_frames_and_camera_without_depth(seq):
    write_image(seq / "rgb/1/0003.png", np.zeros((H, W, 3), np.uint8))
    report = check_sequence(seq)
    assert report.ok and len(report.warnings) == 1 and "not in the frame list" in report.warnings[0].message
    import shutil

    shutil.rmtree(seq / "depth/1")
    (err,) = _only(check_sequence(seq))
    assert err.message == "no depth frames for camera 1"


def test_not_a_sequence(tmp_path):
    report = check_sequence(tmp_path / "nothing")
    assert not report.ok and "no such sequence folder" in report.errors[0].message
    (tmp_path / "x/rgb").mkdir(parents=True)
    assert "no camera folders" in check_sequence(tmp_path / "x").errors[0].message


def test_cli_exit_codes(seq):
    runner = CliRunner()
    ok = runner.invoke(app, ["check", str(seq)])
    assert ok.exit_code == 0, ok.output
    assert "OK" in ok.output and "0 error(s)" in ok.output
    (seq / "keypoints2d/0/0000.json").unlink()
    assert runner.invoke(app, ["check", str(seq)]).exit_code == 0
    assert runner.invoke(app, ["check", str(seq), "--strict"]).exit_code == 1
    p = seq / "rgb/0/0001.png"
    p.write_bytes(p.read_bytes()[:100])
    bad = runner.invoke(app, ["check", str(seq)])
    assert bad.exit_code == 1 and "FAILED" in bad.output
    js = runner.invoke(app, ["check", str(seq), "--json"])
    assert js.exit_code == 1
    doc = json.loads(js.stdout)
    assert doc["ok"] is False and any(i["file"] == str(p) for i in doc["issues"])
