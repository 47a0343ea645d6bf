"""honnotate.io.cues: segmentation PNGs and 2D keypoint JSON."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from honnotate.io.cues import (
    BACKGROUND,
    HAND,
    OBJECT,
    read_keypoints2d,
    read_segmentation,
    write_keypoints2d,
    write_segmentation,
)
from honnotate.io.files import CaptureFormatError
from honnotate.io.images import write_image, write_label_png

RNG = np.random.default_rng(1)


def _keypoints():
    kp = np.zeros((21, 3), np.float32)
    kp[:, 0] = RNG.uniform(0, 63, 21)
    kp[:, 1] = RNG.uniform(0, 47, 21)
    kp[:, 2] = RNG.uniform(0, 1, 21)
    return kp


def test_label_constants():
    assert (BACKGROUND, OBJECT, HAND) == (0, 1, 2)


@pytest.mark.parametrize("dtype", [np.uint8, np.int64])
def test_segmentation_round_trip(tmp_path, dtype):
    seg = RNG.integers(0, 3, (48, 64)).astype(dtype)
    out = read_segmentation(write_segmentation(tmp_path / "s.png", seg))
    assert out.dtype == np.uint8 and out.shape == (48, 64)
    np.testing.assert_array_equal(out, seg)


def test_segmentation_other_values_rejected(tmp_path):
    lab = np.zeros((4, 4), np.uint8)
    lab[1, 1] = 7
    p = write_label_png(tmp_path / "bad_seg.png", lab)
    with pytest.raises(CaptureFormatError, match=r"bad_seg.png.*\[7\]"):
        read_segmentation(p)
    with pytest.raises(ValueError, match="w.png"):
        write_segmentation(tmp_path / "w.png", lab)
    with pytest.raises(ValueError, match="w.png"):
        write_segmentation(tmp_path / "w.png", np.full((2, 2), 300))
    with pytest.raises(ValueError, match=r"\(H, W\)"):
        write_segmentation(tmp_path / "w.png", np.zeros((2, 2, 3), np.uint8))
    assert not (tmp_path / "w.png").exists()


def test_segmentation_rgb_png_rejected(tmp_path):
    p = write_image(tmp_path / "rgbseg.png", np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(CaptureFormatError, match="rgbseg.png"):
        read_segmentation(p)


def test_keypoints_round_trip_exact_float32(tmp_path):
    kp = _keypoints()
    p = write_keypoints2d(tmp_path / "k.json", kp)
    doc = json.loads(p.read_text())
    assert doc["order"] == "mano" and len(doc["keypoints"]) == 21
    out = read_keypoints2d(p)
    assert out.dtype == np.float32 and out.shape == (21, 3)
    np.testing.assert_array_equal(out, kp)


def test_keypoints_torch_input(tmp_path):
    kp = _keypoints()
    out = read_keypoints2d(write_keypoints2d(tmp_path / "k.json", torch.from_numpy(kp)))
    np.testing.assert_array_equal(out, kp)


def test_keypoints_bare_list_accepted(tmp_path):
    kp = _keypoints()
    p = tmp_path / "bare.json"
    p.write_text(json.dumps(kp.tolist()))
    np.testing.assert_allclose(read_keypoints2d(p), kp)


@pytest.mark.parametrize("content,match", [
    ("{not json", "not valid JSON"),
    (json.dumps({"keypoints": [[1, 2, 1]] * 20}), r"shape \(20, 3\)"),
    (json.dumps([[1, 2]] * 21), r"shape \(21, 2\)"),
    (json.dumps({"keypoints": [[1, 2, 1]] * 20 + [[None, 2, 1]]}), "non-finite"),
    (json.dumps({"keypoints": [[1, 2, 1]] * 20 + [[1, 2, -1]]}), "negative confidence"),
    (json.dumps({"keypoints": [[1, 2, 1]] * 21, "order": "openpose"}), "openpose"),
    (json.dumps({"points": []}), "missing key 'keypoints'"),
    (json.dumps({"keypoints": [["a", "b", "c"]] * 21}), "list of numbers"),
])
def test_keypoints_malformed_error_names_file(tmp_path, content, match):
    p = tmp_path / "kp_bad.json"
    p.write_text(content)
    with pytest.raises(CaptureFormatError, match=f"kp_bad.json.*{match}"):
        read_keypoints2d(p)


def test_keypoints_writer_validates(tmp_path):
    with pytest.raises(ValueError, match=r"k.json.*\(21, 3\)"):
        write_keypoints2d(tmp_path / "k.json", np.zeros((20, 3)))
    kp = _keypoints()
    kp[3, 0] = np.nan
    with pytest.raises(ValueError, match=r"joints \[3\]"):
        write_keypoints2d(tmp_path / "k.json", kp)
    assert not (tmp_path / "k.json").exists()


def test_missing_cue_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.json"):
        read_keypoints2d(tmp_path / "nope.json")
    with pytest.raises(FileNotFoundError, match="nope.png"):
        read_segmentation(tmp_path / "nope.png")
