"""honnotate.io.sequence: capture layout writing / lazy reading, meta.yaml."""

from __future__ import annotations

import numpy as np
import pytest
import roma
import torch

import honnotate.io.sequence as seq_mod
from honnotate.geometry import Camera
from honnotate.io.files import CaptureFormatError
from honnotate.io.sequence import (
    CaptureSequence,
    SequenceMeta,
    SequenceWriter,
    natural_sort_key,
    open_sequence,
    read_meta,
    write_meta,
    write_sequence,
)

W, H = 64, 48
META = {"object": "006_mustard_bottle", "hand_side": "right", "betas": [0.1] * 10}


def make_cameras(n: int) -> list[Camera]:
    cams = []
    for i in range(n):
        T = torch.eye(4)
        if i:
            T[:3, :3] = roma.rotvec_to_rotmat(torch.tensor([0.0, 0.3 * i, 0.05]))
            T[:3, 3] = torch.tensor([0.2 * i, 0.0, 0.05])
        cams.append(Camera.from_intrinsics(600.0 + i, 601.0 + i, 31.5, 23.5, W, H, cam_to_world=T, name=str(i)))
    return cams


def frame_data(seed: int) -> dict:
    rng = np.random.default_rng(seed)
    depth = rng.uniform(0.4, 0.8, (H, W))
    depth[:3] = 0.0
    kp = np.stack([rng.uniform(0, W - 1, 21), rng.uniform(0, H - 1, 21), rng.uniform(0, 1, 21)], 1)
    return {"rgb": rng.integers(0, 256, (H, W, 3), dtype=np.uint8), "depth": depth,
            "segmentation": rng.integers(0, 3, (H, W)), "keypoints2d": kp.astype(np.float32)}


def make_sequence(root, n_cams=2, n_frames=3, meta=META, **kw) -> tuple[CaptureSequence, dict]:
    data = {f: {str(c): frame_data(10 * f + c) for c in range(n_cams)} for f in range(n_frames)}
    seq = write_sequence(root, make_cameras(n_cams), data, depth_scale=0.001, meta=meta, **kw)
    return seq, data


@pytest.mark.parametrize("n_cams", [1, 2, 5])
def test_write_read_round_trip(tmp_path, n_cams):
    seq, data = make_sequence(tmp_path / "seq", n_cams=n_cams, n_frames=2)
    assert seq.camera_ids == [str(c) for c in range(n_cams)]
    assert seq.frame_ids == ["0000", "0001"] and len(seq) == 2
    assert seq.has_cues()
    for f, per_cam in data.items():
        for c, d in per_cam.items():
            np.testing.assert_array_equal(seq.rgb(c, f), d["rgb"])
            depth = seq.depth(c, f)
            assert depth.dtype == np.float32 and depth.shape == (H, W)
            assert np.abs(depth - d["depth"]).max() <= 0.0005 + 1e-6
            assert (depth[:3] == 0).all()
            np.testing.assert_array_equal(seq.segmentation(c, f), d["segmentation"])
            np.testing.assert_array_equal(seq.keypoints2d(c, f), d["keypoints2d"])
    for cam, ref in zip(seq.cameras.values(), make_cameras(n_cams), strict=True):
        assert (cam.name, cam.width, cam.height) == (ref.name, W, H)
        torch.testing.assert_close(cam.K, ref.K)
        torch.testing.assert_close(cam.cam_to_world, ref.cam_to_world, atol=1e-6, rtol=0)
    assert seq.meta == SequenceMeta(**META)
    assert seq.depth_scale("0") == 0.001


def test_frame_access_by_index_and_id(tmp_path):
    seq, data = make_sequence(tmp_path / "s", n_cams=1, n_frames=3)
    np.testing.assert_array_equal(seq.rgb("0", 2), seq.rgb("0", "0002"))
    np.testing.assert_array_equal(seq.rgb("0", -1), data[2]["0"]["rgb"])
    with pytest.raises(IndexError, match="frame index 3 out of range"):
        seq.rgb("0", 3)
    with pytest.raises(KeyError, match="no camera '7'"):
        seq.rgb("7", 0)


def test_open_is_lazy(tmp_path, monkeypatch):
    make_sequence(tmp_path / "s")

    def no_decode(*a, **k):
        raise AssertionError("decoded an image")

    for name in ("read_image", "read_depth_png", "read_segmentation", "read_keypoints2d"):
        monkeypatch.setattr(seq_mod, name, no_decode)
    seq = open_sequence(tmp_path / "s")
    assert len(seq.frame_ids) == 3
    assert set(seq.cameras) == {"0", "1"}  # sizes from image headers only
    assert seq.has_cues()
    with pytest.raises(AssertionError, match="decoded"):
        seq.rgb("0", 0)


def test_natural_sort_of_frames_and_cameras(tmp_path):
    cam = make_cameras(1)[0]
    w = SequenceWriter(tmp_path / "s", {"10": cam, "2": cam}, 0.001)
    for f in ("10", "9", "100", "0"):
        for c in ("10", "2"):
            w.write_frame(f, c, rgb=np.zeros((H, W, 3), np.uint8))
    seq = open_sequence(tmp_path / "s")
    assert seq.camera_ids == ["2", "10"]
    assert seq.frame_ids == ["0", "9", "10", "100"]
    assert sorted(["cam10", "cam2", "cam1"], key=natural_sort_key) == ["cam1", "cam2", "cam10"]


def test_missing_files_and_optional_cues(tmp_path):
    seq, _ = make_sequence(tmp_path / "s")
    (tmp_path / "s/segmentation/1/0001.png").unlink()
    (tmp_path / "s/depth/1/0002.png").unlink()
    seq = open_sequence(tmp_path / "s")
    assert seq.segmentation("1", 1) is None
    assert not seq.has_cues()
    assert seq.has_cues(cues=("keypoints2d",))
    with pytest.raises(FileNotFoundError, match=r"depth/1/0002.png.*camera 1, frame 0002"):
        seq.depth("1", 2)


def test_hidden_and_foreign_files_ignored(tmp_path):
    make_sequence(tmp_path / "s", n_cams=1)
    (tmp_path / "s/rgb/0/.0003.png.abc.tmp").write_bytes(b"partial")
    (tmp_path / "s/rgb/0/notes.txt").write_text("x")
    assert open_sequence(tmp_path / "s").frame_ids == ["0000", "0001", "0002"]


def test_jpg_colour_and_single_camera_without_trans(tmp_path):
    cams = make_cameras(1)
    w = SequenceWriter(tmp_path / "s", cams, 0.001, image_format="jpg", write_trans=False)
    w.write_frame(0, "0", rgb=np.full((H, W, 3), 128, np.uint8))
    seq = open_sequence(tmp_path / "s")
    assert not (tmp_path / "s/calibration/trans_0.txt").exists()
    assert seq.path("rgb", "0", 0).suffix == ".jpg"
    assert np.abs(seq.rgb("0", 0).astype(int) - 128).max() <= 2
    torch.testing.assert_close(seq.cameras["0"].cam_to_world, torch.eye(4))
    with pytest.raises(FileNotFoundError, match="meta.yaml"):
        _ = seq.meta


def test_multi_camera_requires_trans(tmp_path):
    make_sequence(tmp_path / "s")
    (tmp_path / "s/calibration/trans_1.txt").unlink()
    with pytest.raises(FileNotFoundError, match="trans_1.txt.*required with 2 cameras"):
        open_sequence(tmp_path / "s").calibration("1")


def test_open_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such sequence folder"):
        open_sequence(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="empty/rgb"):
        open_sequence(tmp_path / "empty")


def test_writer_validation(tmp_path):
    w = SequenceWriter(tmp_path / "s", make_cameras(2), {"0": 0.001, "1": 0.0001})
    assert open_sequence(tmp_path / "s").depth_scale("1") == 0.0001
    with pytest.raises(ValueError, match=r"camera '0' frame 0000: rgb has shape \(10, 10, 3\)"):
        w.write_frame(0, "0", rgb=np.zeros((10, 10, 3), np.uint8))
    with pytest.raises(ValueError, match="camera '1' frame 0000.*uint16 range"):
        w.write_frame(0, "1", depth=np.full((H, W), 7.0))  # > 65535 * 0.0001 m
    with pytest.raises(KeyError, match="no camera '5'"):
        w.write_frame(0, "5", rgb=np.zeros((H, W, 3), np.uint8))
    with pytest.raises(ValueError, match="invalid frame id"):
        w.write_frame("../x", "0", rgb=np.zeros((H, W, 3), np.uint8))
    with pytest.raises(ValueError, match="not both"):
        w.write_frame(0, "0", depth=np.zeros((H, W)), depth_units=np.zeros((H, W), np.uint16))
    with pytest.raises(ValueError, match="depth_scale"):
        SequenceWriter(tmp_path / "t", make_cameras(1), -1.0)
    with pytest.raises(TypeError, match="expected a honnotate.geometry.Camera"):
        SequenceWriter(tmp_path / "t", {"0": object()}, 0.001)


def test_writer_accepts_torch_and_raw_units(tmp_path):
    w = SequenceWriter(tmp_path / "s", make_cameras(1), 0.001)
    rgb = torch.randint(0, 256, (H, W, 3), dtype=torch.uint8)
    units = np.arange(H * W, dtype=np.uint16).reshape(H, W)
    out = w.write_frame(3, "0", rgb=rgb, depth_units=units, keypoints2d=torch.zeros(21, 3))
    assert sorted(out) == ["depth", "keypoints2d", "rgb"]
    seq = open_sequence(tmp_path / "s")
    np.testing.assert_array_equal(seq.rgb("0", "0003"), rgb.numpy())
    np.testing.assert_array_equal(seq.depth_units("0", "0003"), units)


def test_meta_round_trip_and_mesh_path(tmp_path):
    meta = SequenceMeta(object="meshes/cup.obj", hand_side="left", hand_model="mano", shape_file="subj.npy",
                        object_rotvec_init=(0.0, 0.1, 0.2), object_trans_init=(0.0, 0.0, 0.5))
    p = write_meta(tmp_path / "meta.yaml", meta)
    assert read_meta(p) == meta
    assert meta.object_mesh_path(tmp_path) == tmp_path / "meshes/cup.obj"
    assert SequenceMeta(object="006_mustard_bottle").object_mesh_path(tmp_path) is None


@pytest.mark.parametrize("text,match", [
    ("object: [unclosed", "invalid YAML"),
    ("- a\n- b\n", "expected a mapping"),
    ("hand_side: right\n", "key 'object'"),
    ("object: cup\nhand_side: both\n", "key 'hand_side'.*'right' or 'left'"),
    ("object: cup\ncolour: red\n", "key 'colour'"),
    ("object: cup\nbetas: [0.1, .nan]\n", "key 'betas'"),
    ("object: cup\nbetas: [0.1]\nshape_file: s.npy\n", "either 'betas' or 'shape_file'"),
    ("object: cup\nobject_trans_init: [0, 0, 0.5]\n", "both 'object_rotvec_init'"),
    ("object: cup\nobject_trans_init: [0, 0]\nobject_rotvec_init: [0, 0, 0]\n", "key 'object_trans_init"),
])
def test_meta_errors_name_file_and_key(tmp_path, text, match):
    p = tmp_path / "meta.yaml"
    p.write_text(text)
    with pytest.raises(CaptureFormatError, match=f"meta.yaml: .*{match}"):
        read_meta(p)
