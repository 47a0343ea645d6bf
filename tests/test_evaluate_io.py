"""Evaluation I/O: HO-3D JSON, pred.json writer, annotation pickles, consolidated npz."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest

from honnotate.evaluate.io import (
    axis_angle_to_rotmat,
    load_annotation_dir,
    load_consolidated_npz,
    load_ho3d_eval_inputs,
    load_ho3d_eval_json,
    match_annotation_sets,
    opengl_to_opencv_points,
    write_consolidated_npz,
    write_pred_json,
)


def _frames(rng, n, k):
    return rng.normal(size=(n, k, 3)) * 0.05 + np.array([0.0, 0.0, -0.5])


def _write_meta(path, joints, rot=None, trans=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {"handJoints3D": joints, "objName": "006_mustard_bottle", "objLabel": 5}
    if rot is not None:
        meta["objRot"] = rot.reshape(3, 1)  # HO-3D stores (3, 1) in places
        meta["objTrans"] = trans
    with open(path, "wb") as f:
        pickle.dump(meta, f, protocol=2)


class TestHo3dJson:
    @pytest.mark.parametrize("n", [1, 2, 5])
    def test_pred_json_round_trip(self, tmp_path, n):
        rng = np.random.default_rng(n)
        xyz, verts = _frames(rng, n, 21), _frames(rng, n, 778)
        path = write_pred_json(tmp_path / "pred.json", list(xyz), verts)
        data = json.loads(path.read_text())
        assert len(data) == 2 and len(data[0]) == n and len(data[1][0]) == 778
        x2, v2 = load_ho3d_eval_json(path)
        np.testing.assert_array_equal(x2, xyz)
        np.testing.assert_array_equal(v2, verts)

    def test_separate_gt_files_and_dir(self, tmp_path):
        rng = np.random.default_rng(0)
        xyz, verts = _frames(rng, 2, 21), _frames(rng, 2, 778)
        (tmp_path / "evaluation_xyz.json").write_text(json.dumps(xyz.tolist()))
        (tmp_path / "evaluation_verts.json").write_text(json.dumps(verts.tolist()))
        x2, v2 = load_ho3d_eval_inputs(tmp_path)
        np.testing.assert_array_equal(x2, xyz)
        np.testing.assert_array_equal(v2, verts)
        x3, v3 = load_ho3d_eval_json(tmp_path / "evaluation_xyz.json")
        assert v3 is None and x3.shape == (2, 21, 3)

    def test_errors_name_frame_and_file(self, tmp_path):
        rng = np.random.default_rng(1)
        xyz = _frames(rng, 3, 21).tolist()
        xyz[1] = xyz[1][:20]
        with pytest.raises(ValueError, match=r"pred.json: xyz_list: frame index 1 has shape \(20, 3\)"):
            write_pred_json(tmp_path / "pred.json", xyz, _frames(rng, 3, 778))
        good = _frames(rng, 3, 21)
        with pytest.raises(ValueError, match="frame index 2 on"):
            write_pred_json(tmp_path / "pred.json", good, _frames(rng, 2, 778))
        bad = _frames(rng, 3, 778)
        bad[2, 5, 0] = np.nan
        with pytest.raises(ValueError, match="verts_list: frame index 2 contains NaN"):
            write_pred_json(tmp_path / "pred.json", good, bad)
        p = tmp_path / "gt.json"
        p.write_text(json.dumps([good.tolist(), _frames(rng, 2, 778).tolist()]))
        with pytest.raises(ValueError, match="gt.json: 3 joint frames but 2 vertex frames"):
            load_ho3d_eval_json(p)


class TestAnnotationDir:
    def test_reads_sequences_in_opencv(self, tmp_path):
        rng = np.random.default_rng(2)
        joints = _frames(rng, 3, 21)
        rot = rng.normal(size=(3, 3))
        trans = rng.normal(size=(3, 3))
        for i in range(2):
            _write_meta(tmp_path / "SEQ_A" / "meta" / f"{i:04d}.pkl", joints[i], rot[i], trans[i])
        _write_meta(tmp_path / "SEQ_B" / "meta" / "0000.pkl", joints[2], rot[2], trans[2])
        obj = rng.normal(size=(10, 3)) * 0.05
        s = load_annotation_dir(tmp_path, object_vertices=obj)
        assert s.sequence_ids.tolist() == ["SEQ_A", "SEQ_A", "SEQ_B"]
        assert s.frame_ids.tolist() == ["0000", "0001", "0000"]
        np.testing.assert_allclose(s.hand_joints, joints * [1, -1, -1])
        # Posed object points must be the OpenGL ones with y and z negated.
        posed_gl = obj @ axis_angle_to_rotmat(rot[0]).T + trans[0]
        posed_cv = obj @ s.obj_rotmat[0].T + s.obj_trans[0]
        np.testing.assert_allclose(posed_cv, opengl_to_opencv_points(posed_gl), atol=1e-12)
        assert s.hand_verts is None and "verts_fn" in s.notes[0]
        s2 = load_annotation_dir(tmp_path, verts_fn=lambda m: np.repeat(m["handJoints3D"][:1], 5, axis=0))
        assert s2.hand_verts.shape == (3, 5, 3)

    def test_missing_joints_names_file(self, tmp_path):
        p = tmp_path / "meta" / "0007.pkl"
        p.parent.mkdir(parents=True)
        with open(p, "wb") as f:
            pickle.dump({"handJoints3D": None}, f)
        with pytest.raises(ValueError, match="0007.pkl: key 'handJoints3D'"):
            load_annotation_dir(tmp_path)
        with pytest.raises(FileNotFoundError):
            load_annotation_dir(tmp_path / "meta" / "nothing")


class TestConsolidatedNpz:
    def test_round_trip_and_matching(self, tmp_path):
        rng = np.random.default_rng(3)
        n = 4
        joints, rot, trans = _frames(rng, n, 21), rng.normal(size=(n, 3)), rng.normal(size=(n, 3))
        ids = [f"{i:04d}" for i in range(n)]
        gt = load_consolidated_npz(write_consolidated_npz(tmp_path / "gt.npz", ids, joints, obj_rot=rot, obj_trans=trans,
                                                          object_vertices=np.ones((5, 3))))
        assert gt.n_frames == n and gt.obj_rotmat.shape == (n, 3, 3) and gt.sequence_ids[0] == "gt"
        np.testing.assert_allclose(gt.hand_joints, joints, atol=1e-6)
        pred = load_consolidated_npz(write_consolidated_npz(tmp_path / "pred.npz", ids[::-1], joints[::-1]))
        matched = match_annotation_sets(gt, pred)
        np.testing.assert_allclose(matched.hand_joints, gt.hand_joints)
        short = load_consolidated_npz(write_consolidated_npz(tmp_path / "short.npz", ids[:3], joints[:3]))
        with pytest.raises(ValueError, match="ground-truth frame index 3"):
            match_annotation_sets(gt, short)

    def test_bad_arrays(self, tmp_path):
        rng = np.random.default_rng(4)
        joints = _frames(rng, 3, 21)
        joints[1, 0, 0] = np.nan
        with pytest.raises(ValueError, match="'hand_joints' frame index 1"):
            write_consolidated_npz(tmp_path / "a.npz", ["0", "1", "2"], joints)
        np.savez(tmp_path / "b.npz", frame_ids=np.array(["0", "1"]), hand_joints=np.zeros((2, 20, 3)))
        with pytest.raises(ValueError, match=r"b.npz: 'hand_joints' has shape \(2, 20, 3\)"):
            load_consolidated_npz(tmp_path / "b.npz")
