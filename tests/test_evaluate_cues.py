"""Cue accuracy against ground truth (honnotate.evaluate.cues): metrics against their definitions."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from honnotate.evaluate.cues import cue_accuracy, cue_accuracy_markdown, keypoint_hits, label_iou


@pytest.fixture(scope="module")
def capture(tmp_path_factory):
    """2 frames x 2 cameras at 128x96 with exact cues (the cue files equal the ground truth)."""
    from honnotate.synth.generator import SynthConfig, generate_sequence
    from honnotate.synth.noise import DepthNoiseConfig

    out = tmp_path_factory.mktemp("cueacc") / "seq"
    generate_sequence(out, SynthConfig(frames=2, cameras=2, object="sphere", width=128, height=96, seed=5,
                                       degraded_cues=False, depth_noise=DepthNoiseConfig(kind="none")),
                      contact_sheet=False)
    return out


def test_keypoint_hits_follow_the_definition():
    gt = np.zeros((2, 21, 3))
    pred = np.zeros((2, 21, 3))
    pred[..., 2] = 1.0
    pred[0, 0, :2] = [6.0, 8.0]  # 10 px: a hit (within, inclusive)
    pred[0, 1, :2] = [10.0, 0.1]  # just over 10 px: a miss
    pred[1, 2, 2] = 0.0  # not detected: a miss at any distance
    dist, hit = keypoint_hits(pred, gt, 10.0)
    assert dist[0, 0] == pytest.approx(10.0) and hit[0, 0]
    assert not hit[0, 1] and np.isinf(dist[1, 2]) and not hit[1, 2]
    assert hit.sum() == 2 * 21 - 2


def test_keypoint_hits_reject_bad_shapes_and_thresholds():
    with pytest.raises(ValueError, match="21, 3"):
        keypoint_hits(np.zeros((20, 3)), np.zeros((20, 3)), 10.0)
    with pytest.raises(ValueError, match="threshold_px"):
        keypoint_hits(np.zeros((21, 3)), np.zeros((21, 3)), 0.0)


def test_label_iou_follows_the_definition():
    a = np.zeros((2, 4, 4), np.uint8)
    b = np.zeros((2, 4, 4), np.uint8)
    a[0, :2, :2] = 2  # 4 pixels
    b[0, :2, :3] = 2  # 6 pixels, 4 shared
    a[1, 3, 3] = 2  # 1 more predicted pixel
    assert label_iou(a, b, 2) == pytest.approx(4 / 7)
    assert np.isnan(label_iou(a, b, 1))
    with pytest.raises(ValueError, match="shapes"):
        label_iou(a, b[:1], 2)


def test_exact_cues_score_perfectly_and_a_moved_keypoint_counts_once(capture, tmp_path):
    from honnotate.io.cues import read_keypoints2d, write_keypoints2d

    views = cue_accuracy(capture)
    assert [v.camera for v in views] == ["0", "1"]
    for v in views:
        assert v.frames == 2 and v.visible_joints > 0
        assert v.pck_visible == 1.0 and v.median_px_visible < 1e-3 and v.hand_iou == 1.0
        assert v.hidden_joints_given == 2 * 21 - v.visible_joints and (v.hidden_joints_given == 0 or v.pck_hidden == 1.0)

    seq = tmp_path / "seq"
    shutil.copytree(capture, seq)
    gt = np.load(seq / "ground_truth" / "sequence_gt.npz")
    j = int(np.flatnonzero(gt["keypoints_visible"][0, 1])[0])  # a visible joint of camera 1, frame 0
    frame = str(gt["frame_ids"][0])
    path = seq / "keypoints2d" / "1" / f"{frame}.json"
    kp = read_keypoints2d(path)
    kp[j, 0] += 25.0
    write_keypoints2d(path, kp)
    moved = cue_accuracy(seq)
    assert moved[0] == views[0]
    assert moved[1].pck_visible == pytest.approx(1.0 - 1.0 / views[1].visible_joints)
    assert "| 1 |" in cue_accuracy_markdown(moved)


def test_missing_ground_truth_or_cue_file_is_named(capture, tmp_path):
    seq = tmp_path / "seq"
    shutil.copytree(capture, seq)
    frame = sorted((seq / "keypoints2d" / "0").iterdir())[0]
    frame.unlink()
    with pytest.raises(FileNotFoundError, match=frame.name):
        cue_accuracy(seq)
    (seq / "ground_truth" / "sequence_gt.npz").unlink()
    with pytest.raises(FileNotFoundError, match="sequence_gt.npz"):
        cue_accuracy(seq)
