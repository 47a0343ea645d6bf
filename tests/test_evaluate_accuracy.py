"""Annotation accuracy: MPJPE, ADD / ADD-S, summaries, per-sequence tables."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from honnotate.evaluate.accuracy import (
    annotation_accuracy,
    hand_joint_errors,
    object_add,
    object_adds,
    pose_object_points,
    summarize_errors,
)
from honnotate.evaluate.io import AnnotationSet


def _set(joints, seqs, rotmat=None, trans=None, obj=None, verts=None):
    n = len(joints)
    frames = np.array([f"{i:04d}" for i in range(n)])
    return AnnotationSet(np.asarray(seqs), frames, joints, verts, rotmat, trans, obj, source="test")


class TestHandErrors:
    def test_hand_computed(self):
        gt = np.zeros((1, 21, 3))
        pred = gt.copy()
        pred[0, :, 0] = 0.01  # every joint 1 cm off along x -> root-relative error 0
        pred[0, 5, 1] = 0.02  # joint 5 additionally 2 cm along y
        abs_err = hand_joint_errors(gt, pred)
        assert abs_err.shape == (1, 21)
        assert abs_err[0, 0] == pytest.approx(0.01)
        assert abs_err[0, 5] == pytest.approx(np.sqrt(0.01**2 + 0.02**2))
        rr = hand_joint_errors(gt, pred, root_relative=True)
        assert rr[0, 0] == 0.0 and rr[0, 5] == pytest.approx(0.02)

    @pytest.mark.parametrize("n", [1, 2, 5])
    def test_shapes_and_errors(self, n):
        x = np.zeros((n, 21, 3))
        assert hand_joint_errors(x, x).shape == (n, 21)
        bad = x.copy()
        bad[-1, 3, 2] = np.nan
        with pytest.raises(ValueError, match=f"frame index {n - 1}"):
            hand_joint_errors(x, bad)
        with pytest.raises(ValueError, match=r"\(N, 21, 3\)|expected shape"):
            hand_joint_errors(x, x[:, :20])


class TestObject:
    def test_add_adds_hand_computed(self):
        # Two vertices at +-1 cm on x; prediction rotated 180 deg about z (a symmetric flip):
        # ADD = 2 cm, ADD-S = 0.
        obj = np.array([[0.01, 0.0, 0.0], [-0.01, 0.0, 0.0]])
        r_gt = np.eye(3)[None]
        r_pr = Rotation.from_rotvec([0, 0, np.pi]).as_matrix()[None]
        t = np.array([[0.0, 0.0, 0.5]])
        assert object_add(r_gt, t, r_pr, t, obj)[0] == pytest.approx(0.02)
        assert object_adds(r_gt, t, r_pr, t, obj)[0] == pytest.approx(0.0, abs=1e-12)
        # pure translation of 3 mm: both equal 3 mm (nearest = corresponding for this spacing)
        t2 = t + [0.0, 0.003, 0.0]
        assert object_add(r_gt, t, r_gt, t2, obj)[0] == pytest.approx(0.003)
        assert object_adds(r_gt, t, r_gt, t2, obj)[0] == pytest.approx(0.003)

    def test_pose_points_and_adds_bound(self):
        rng = np.random.default_rng(0)
        obj = rng.normal(size=(200, 3)) * 0.05
        r = Rotation.random(5, random_state=1).as_matrix()
        t = rng.normal(size=(5, 3))
        posed = pose_object_points(r, t, obj)
        np.testing.assert_allclose(posed[2], obj @ r[2].T + t[2])
        r2 = Rotation.random(5, random_state=2).as_matrix()
        add, adds = object_add(r, t, r2, t, obj), object_adds(r, t, r2, t, obj)
        assert np.all(adds <= add + 1e-12)
        with pytest.raises(ValueError, match=r"\(V, 3\)"):
            pose_object_points(r, t, obj[:, :2])


def test_summarize_errors_hand_computed():
    s = summarize_errors(np.array([0.001, 0.002, 0.003, 0.004]))
    assert s["mean_mm"] == pytest.approx(2.5) and s["p50_mm"] == pytest.approx(2.5)
    assert s["max_mm"] == pytest.approx(4.0) and s["n"] == 4
    assert summarize_errors(np.zeros(3))["auc"] == 1.0
    with pytest.raises(ValueError):
        summarize_errors(np.zeros(0))


def test_annotation_accuracy_per_sequence():
    rng = np.random.default_rng(0)
    n = 6
    gt_j = rng.normal(size=(n, 21, 3)) * 0.05
    pred_j = gt_j.copy()
    pred_j[:3] += [0.002, 0, 0]  # sequence A: 2 mm everywhere
    pred_j[3:] += [0, 0.004, 0]  # sequence B: 4 mm
    seqs = ["A"] * 3 + ["B"] * 3
    obj = rng.normal(size=(50, 3)) * 0.03
    rot = Rotation.random(n, random_state=3).as_matrix()
    trans = rng.normal(size=(n, 3))
    rep = annotation_accuracy(_set(gt_j, seqs, rot, trans, obj), _set(pred_j, seqs, rot, trans + [0, 0, 0.001]))
    rows = {(r["sequence"], r["metric"]): r for r in rep.table}
    assert rows[("A", "hand_mpjpe")]["mean_mm"] == pytest.approx(2.0)
    assert rows[("B", "hand_mpjpe")]["mean_mm"] == pytest.approx(4.0)
    assert rows[("overall", "hand_mpjpe")]["mean_mm"] == pytest.approx(3.0)
    assert rows[("overall", "hand_rr_mpjpe")]["mean_mm"] == pytest.approx(0.0, abs=1e-9)
    assert rows[("overall", "obj_add")]["mean_mm"] == pytest.approx(1.0)
    assert rep.per_joint_mm.shape == (n, 21) and rep.per_frame_mm["obj_adds"].shape == (n,)
    assert rep.pck["hand_mpjpe"].pck.shape == (100,)
    assert "hand_mesh" not in rep.per_frame_mm
