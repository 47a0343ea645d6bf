"""HO-3D metrics against their definitions, hand-computed cases and a per-frame reference twin."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.linalg import orthogonal_procrustes
from scipy.spatial.transform import Rotation

from honnotate.evaluate.ho3d_metrics import (
    HO3D_SCORE_KEYS,
    PCK_THRESHOLDS_M,
    auc_from_pck,
    evaluate_ho3d,
    f_score,
    nearest_neighbour_distances,
    pck_curve,
    point_distances,
    procrustes_align,
    scale_translation_align,
)

# ----------------------------------------------------------------------------- reference twin
# A plain per-frame transcription of the official HO-3D eval.py logic (EvalUtil, align_w_scale,
# align_sc_tr, align_by_trafo, calculate_fscore with brute-force nearest neighbours).


def _ref_align_w_scale(mtx1, mtx2, return_trafo=False):
    t1, t2 = mtx1.mean(0), mtx2.mean(0)
    m1, m2 = mtx1 - t1, mtx2 - t2
    s1 = np.linalg.norm(m1) + 1e-8
    m1 = m1 / s1
    s2 = np.linalg.norm(m2) + 1e-8
    m2 = m2 / s2
    r, s = orthogonal_procrustes(m1, m2)
    if return_trafo:
        return r, s, s1, t1 - t2
    return np.dot(m2, r.T) * s * s1 + t1


def _ref_align_by_trafo(mtx, trafo):
    t2 = mtx.mean(0)
    r, s, s1, t1 = trafo
    return np.dot(mtx - t2, r.T) * s * s1 + t1 + t2


def _ref_align_sc_tr(mtx1, mtx2):
    p = mtx2.copy()
    s = np.sqrt(np.sum(np.square(p[4] - p[0])))
    if s > 0:
        p = p / s
    p = p * np.sqrt(np.sum(np.square(mtx1[4] - mtx1[0])))
    return p - p[0:1] + mtx1[0:1]


def _ref_fscore(gt, pr, th):
    d = np.linalg.norm(gt[:, None] - pr[None], axis=2)
    d1, d2 = d.min(1), d.min(0)
    recall = float(np.sum(d2 < th)) / len(d2)
    precision = float(np.sum(d1 < th)) / len(d1)
    return 2 * recall * precision / (recall + precision) if recall + precision > 0 else 0.0


def _ref_measures(dists):  # dists: list over frames of (K,)
    data = np.array(dists)
    t = np.linspace(0.0, 0.05, 100)
    norm = np.trapezoid(np.ones_like(t), t)
    means, aucs, curves = [], [], []
    for k in range(data.shape[1]):
        means.append(np.mean(data[:, k]))
        pck = np.array([np.mean((data[:, k] <= th).astype(float)) for th in t])
        curves.append(pck)
        aucs.append(np.trapezoid(pck, t) / norm)
    return np.mean(means), np.mean(aucs), np.mean(curves, 0)


def _ref_eval(xyz_gt, verts_gt, xyz_pr, verts_pr):
    e = {k: [] for k in ("xyz", "pa", "st", "mesh", "mesh_al")}
    f, fa = [], []
    mano = verts_pr.shape[1] == verts_gt.shape[1]
    for i in range(len(xyz_gt)):
        xyz, verts, xp, vp = xyz_gt[i], verts_gt[i], xyz_pr[i], verts_pr[i]
        e["xyz"].append(np.linalg.norm(xyz - xp, axis=1))
        if mano:
            e["mesh"].append(np.linalg.norm(verts - vp, axis=1))
        e["st"].append(np.linalg.norm(xyz - _ref_align_sc_tr(xyz, xp), axis=1))
        e["pa"].append(np.linalg.norm(xyz - _ref_align_w_scale(xyz, xp), axis=1))
        if mano:
            vpa = _ref_align_w_scale(verts, vp)
            e["mesh_al"].append(np.linalg.norm(verts - vpa, axis=1))
        else:
            vpa = _ref_align_by_trafo(vp, _ref_align_w_scale(xyz, xp, return_trafo=True))
        f.append([_ref_fscore(verts, vp, t) for t in (0.005, 0.015)])
        fa.append([_ref_fscore(verts, vpa, t) for t in (0.005, 0.015)])
    out = {}
    names = {"xyz": "xyz", "pa": "xyz_procrustes_al", "st": "xyz_scale_trans_al", "mesh": "mesh", "mesh_al": "mesh_al"}
    for k, name in names.items():
        if e[k]:
            m, a, _ = _ref_measures(e[k])
            out[f"{name}_mean3d" if k != "pa" else "xyz_procrustes_al_mean3d"] = m * 100
            out[f"{name}_auc3d"] = a
        else:
            out[f"{name}_mean3d"], out[f"{name}_auc3d"] = -1.0, -1.0
    f, fa = np.array(f), np.array(fa)
    out["f_score_5"], out["f_score_15"] = f.mean(0)
    out["f_al_score_5"], out["f_al_score_15"] = fa.mean(0)
    return out


# ----------------------------------------------------------------------------- fixtures


def _hand_like(rng, n, k, spread=0.04):
    """Random hand-sized point sets: (n, k, 3) metres around z = 0.5 m."""
    centre = rng.normal(size=(n, 1, 3)) * 0.05 + np.array([0.0, 0.0, 0.5])
    return centre + rng.normal(size=(n, k, 3)) * spread


def _similarity(rng, pts):
    r = Rotation.random(len(pts), random_state=rng.integers(1 << 31)).as_matrix()
    s = rng.uniform(0.5, 2.0, size=(len(pts), 1, 1))
    t = rng.normal(size=(len(pts), 1, 3))
    return np.einsum("nkj,nij->nki", pts, r) * s + t


# ----------------------------------------------------------------------------- alignment


class TestProcrustes:
    @pytest.mark.parametrize("n", [1, 2, 5])
    def test_similarity_copy_aligns_to_zero(self, n):
        rng = np.random.default_rng(n)
        gt = _hand_like(rng, n, 21)
        aligned = procrustes_align(gt, _similarity(rng, gt))
        assert aligned.shape == (n, 21, 3)
        np.testing.assert_allclose(aligned, gt, atol=1e-8)

    def test_reflection_aligns_to_zero_without_check(self):
        # The definition has no reflection check: orthogonal Procrustes returns the reflection.
        rng = np.random.default_rng(3)
        gt = _hand_like(rng, 4, 21)
        mirrored = gt * np.array([-1.0, 1.0, 1.0])
        np.testing.assert_allclose(procrustes_align(gt, mirrored), gt, atol=1e-8)
        # ... the proper-rotation variant cannot undo a mirror.
        err = point_distances(gt, procrustes_align(gt, mirrored, allow_reflection=False))
        assert np.all(err.mean(axis=1) > 1e-3)
        # ... and agrees with the default on non-mirrored copies.
        sim = _similarity(rng, gt)
        np.testing.assert_allclose(procrustes_align(gt, sim, allow_reflection=False), gt, atol=1e-8)

    def test_matches_reference_twin(self):
        rng = np.random.default_rng(4)
        gt = _hand_like(rng, 5, 21)
        pred = gt + rng.normal(size=gt.shape) * 0.01
        ours = procrustes_align(gt, pred)
        for i in range(5):
            np.testing.assert_allclose(ours[i], _ref_align_w_scale(gt[i], pred[i]), atol=1e-12)

    def test_zero_predictor_collapses_to_gt_centroid(self):
        # pred = 0: normalised prediction is 0, scale 0, result = gt mean for every point.
        rng = np.random.default_rng(5)
        gt = _hand_like(rng, 2, 21)
        aligned = procrustes_align(gt, np.zeros_like(gt))
        np.testing.assert_allclose(aligned, np.broadcast_to(gt.mean(axis=1, keepdims=True), gt.shape), atol=1e-12)


class TestScaleTranslation:
    def test_hand_computed(self):
        gt = np.zeros((1, 21, 3))
        gt[0, 4] = [0.0, 0.1, 0.0]  # |g4 - g0| = 0.1
        gt[0, :, 2] += 0.5
        pred = np.zeros((1, 21, 3))
        pred[0, 4] = [0.2, 0.0, 0.0]  # |p4 - p0| = 0.2 -> scaled by 0.5
        pred[0, 7] = [0.0, 0.0, 0.4]
        out = scale_translation_align(gt, pred)
        np.testing.assert_allclose(out[0, 0], [0.0, 0.0, 0.5])
        np.testing.assert_allclose(out[0, 4], [0.1, 0.0, 0.5])
        np.testing.assert_allclose(out[0, 7], [0.0, 0.0, 0.7])

    @pytest.mark.parametrize("n", [1, 2, 5])
    def test_scaled_translated_copy_is_exact(self, n):
        rng = np.random.default_rng(n)
        gt = _hand_like(rng, n, 21)
        pred = gt * rng.uniform(0.5, 2, size=(n, 1, 1)) + rng.normal(size=(n, 1, 3))
        np.testing.assert_allclose(scale_translation_align(gt, pred), gt, atol=1e-12)

    def test_zero_predictor_maps_to_wrist(self):
        rng = np.random.default_rng(0)
        gt = _hand_like(rng, 3, 21)
        out = scale_translation_align(gt, np.zeros_like(gt))
        np.testing.assert_allclose(out, np.broadcast_to(gt[:, :1], gt.shape))

    def test_bad_shape(self):
        with pytest.raises(ValueError, match=r"\(N, 21, 3\)"):
            scale_translation_align(np.zeros((2, 20, 3)), np.zeros((2, 20, 3)))


# ----------------------------------------------------------------------------- PCK, AUC, F-score


class TestPckAuc:
    def test_hand_computed(self):
        # distances 0, 0.01, 0.05, 0.06 m; thresholds 0, 0.025, 0.05 (d <= t counts).
        d = np.array([[0.0], [0.01], [0.05], [0.06]])
        t = np.array([0.0, 0.025, 0.05])
        pck = pck_curve(d, t)
        np.testing.assert_allclose(pck, [[0.25, 0.5, 0.75]])
        # trapezoid: 0.025 * (0.25 + 0.5) / 2 + 0.025 * (0.5 + 0.75) / 2 = 0.025; / 0.05 = 0.5
        np.testing.assert_allclose(auc_from_pck(pck, t), [0.5])

    def test_perfect_and_hopeless(self):
        assert auc_from_pck(pck_curve(np.zeros((3, 2)))).tolist() == [1.0, 1.0]
        assert auc_from_pck(pck_curve(np.full((3, 2), 0.051))).tolist() == [0.0, 0.0]

    def test_threshold_ties_match_comparisons(self):
        rng = np.random.default_rng(0)
        d = np.concatenate([PCK_THRESHOLDS_M, rng.uniform(0, 0.06, 500)])[:, None]
        expected = (d[:, :, None] <= PCK_THRESHOLDS_M).mean(axis=0)
        np.testing.assert_array_equal(pck_curve(d), expected)

    def test_bad_inputs(self):
        with pytest.raises(ValueError, match=r"\(N, K\)"):
            pck_curve(np.zeros(5))
        with pytest.raises(ValueError, match="increasing"):
            pck_curve(np.zeros((2, 2)), np.array([0.1, 0.0]))


class TestFScore:
    def test_identical_meshes_score_one(self):
        rng = np.random.default_rng(0)
        v = _hand_like(rng, 3, 778)
        f, p, r = f_score(v, v)
        assert f.shape == (3, 2)
        np.testing.assert_array_equal(f, 1.0)

    def test_hand_computed_strict_threshold(self):
        gt = np.array([[[0.0, 0, 0], [1.0, 0, 0]]])
        # pred point 0 at exactly 5 mm from gt 0 (not counted: strict <), point 1 at 1 mm.
        pred = np.array([[[0.005, 0, 0], [1.001, 0, 0], [0.5, 0, 0]]])
        f, p, r = f_score(gt, pred, (0.005, 0.015))
        # 5 mm: precision 1/3 (only 1.001), recall 1/2 (gt 1 -> 1 mm)
        np.testing.assert_allclose(p[0], [1 / 3, 2 / 3])
        np.testing.assert_allclose(r[0], [1 / 2, 1.0])
        np.testing.assert_allclose(f[0, 0], 2 * (1 / 3) * 0.5 / (1 / 3 + 0.5))

    def test_far_prediction_scores_zero(self):
        gt = np.zeros((1, 4, 3))
        pred = np.ones((1, 5, 3))
        assert f_score(gt, pred)[0].tolist() == [[0.0, 0.0]]

    def test_nearest_neighbours_match_brute_force(self):
        rng = np.random.default_rng(2)
        a, b = _hand_like(rng, 7, 50), _hand_like(rng, 7, 40)
        b[3] += 100.0  # a far-off frame takes the per-frame path
        brute = np.linalg.norm(a[:, :, None] - b[:, None], axis=3).min(axis=2)
        np.testing.assert_allclose(nearest_neighbour_distances(a, b, chunk_size=3), brute, rtol=1e-12, atol=1e-12)
        bounded = nearest_neighbour_distances(a, b, upper_bound=0.01)
        np.testing.assert_allclose(bounded[brute < 0.0099], brute[brute < 0.0099])
        assert np.all(np.isinf(bounded[brute > 0.0101]))


# ----------------------------------------------------------------------------- the 14 scores


class TestEvaluateHo3d:
    def test_identical_predictions(self):
        rng = np.random.default_rng(0)
        xyz, verts = _hand_like(rng, 5, 21), _hand_like(rng, 5, 778)
        res = evaluate_ho3d(xyz, xyz, verts, verts)
        assert tuple(res.scores) == HO3D_SCORE_KEYS
        for k in HO3D_SCORE_KEYS:
            expected = 0.0 if "mean3d" in k else 1.0
            # After Procrustes the error is ~1e-17, not 0, so PCK at the threshold 0 (d <= 0)
            # fails, as in the official script: AUC = 1 - (0.5 / 99).
            # The 1e-8 added to the norms leaves ~1e-9 m after alignment (1e-7 cm).
            tol = 1e-9
            if "al" in k:
                tol = 0.5 / 99 + 1e-9 if "auc" in k else 1e-6
            assert res.scores[k] == pytest.approx(expected, abs=tol), k
        assert res.scores["xyz_auc3d"] == 1.0 and res.scores["mesh_auc3d"] == 1.0
        assert res.per_frame["xyz_err"].shape == (5,)

    @pytest.mark.parametrize("n_pred_verts", [778, 500])
    def test_matches_reference_twin(self, n_pred_verts):
        rng = np.random.default_rng(n_pred_verts)
        n = 12
        xyz, verts = _hand_like(rng, n, 21), _hand_like(rng, n, 778, spread=0.03)
        xyz_p = xyz + rng.normal(size=xyz.shape) * 0.01
        xyz_p[0] *= np.array([1.0, -1.0, 1.0])  # a mirrored frame
        if n_pred_verts == 778:
            verts_p = verts + rng.normal(size=verts.shape) * 0.006
        else:
            verts_p = _hand_like(rng, n, n_pred_verts, spread=0.03)
        res = evaluate_ho3d(xyz, xyz_p, verts, verts_p, chunk_size=5)
        ref = _ref_eval(xyz, verts, xyz_p, verts_p)
        for k in HO3D_SCORE_KEYS:
            assert res.scores[k] == pytest.approx(ref[k], rel=1e-9, abs=1e-12), k
        if n_pred_verts != 778:
            assert res.scores["mesh_mean3d"] == -1.0 and res.notes

    def test_zero_predictor(self):
        # Unaligned: error = |gt| per joint. Procrustes: every point -> gt centroid.
        # Scale-translation: every point -> gt wrist. F-score unaligned: all points far -> 0.
        rng = np.random.default_rng(1)
        xyz, verts = _hand_like(rng, 4, 21), _hand_like(rng, 4, 778)
        zx, zv = np.zeros_like(xyz), np.zeros_like(verts)
        res = evaluate_ho3d(xyz, zx, verts, zv)
        s = res.scores
        assert s["xyz_mean3d"] == pytest.approx(np.linalg.norm(xyz, axis=2).mean() * 100)
        assert s["xyz_auc3d"] == 0.0
        centroid_err = np.linalg.norm(xyz - xyz.mean(axis=1, keepdims=True), axis=2).mean()
        assert s["xyz_procrustes_al_mean3d"] == pytest.approx(centroid_err * 100)
        wrist_err = np.linalg.norm(xyz - xyz[:, :1], axis=2).mean()
        assert s["xyz_scale_trans_al_mean3d"] == pytest.approx(wrist_err * 100)
        assert s["f_score_5"] == 0.0 and s["f_score_15"] == 0.0
        # aligned F: recall = share of gt vertices within t of the centroid; precision 1 or 0.
        d = np.linalg.norm(verts - verts.mean(axis=1, keepdims=True), axis=2)
        for t, key in ((0.005, "f_al_score_5"), (0.015, "f_al_score_15")):
            r = (d < t).mean(axis=1)
            p = (d.min(axis=1) < t).astype(float)
            f = np.where(p + r > 0, 2 * p * r / np.where(p + r > 0, p + r, 1), 0)
            assert s[key] == pytest.approx(f.mean())

    def test_without_vertices(self):
        rng = np.random.default_rng(2)
        xyz = _hand_like(rng, 2, 21)
        res = evaluate_ho3d(xyz, xyz + 0.001)
        assert res.scores["mesh_mean3d"] == -1.0 and res.scores["f_score_5"] == -1.0
        assert res.scores["xyz_mean3d"] == pytest.approx(np.sqrt(3) * 0.1)
        assert "no vertices" in res.notes[0]

    def test_progress_reports_every_chunk(self):
        rng = np.random.default_rng(3)
        xyz = _hand_like(rng, 5, 21)
        calls = []
        evaluate_ho3d(xyz, xyz, progress=lambda done, total: calls.append((done, total)), chunk_size=2)
        assert calls == [(2, 5), (4, 5), (5, 5)]

    def test_errors_name_the_frame(self):
        rng = np.random.default_rng(4)
        xyz, verts = _hand_like(rng, 4, 21), _hand_like(rng, 4, 30)
        bad = xyz.copy()
        bad[2, 5, 1] = np.nan
        with pytest.raises(ValueError, match="frame index 2"):
            evaluate_ho3d(xyz, bad)
        with pytest.raises(ValueError, match="frame index 3"):
            evaluate_ho3d(xyz, xyz[:3])
        with pytest.raises(ValueError, match=r"\(N, 21, 3\)"):
            evaluate_ho3d(xyz[:, :20], xyz[:, :20])
        badv = verts.copy()
        badv[1, 0, 0] = np.inf
        with pytest.raises(ValueError, match="pred verts: frame index 1"):
            evaluate_ho3d(xyz, xyz, verts, badv)
        with pytest.raises(ValueError, match="together"):
            evaluate_ho3d(xyz, xyz, verts, None)
