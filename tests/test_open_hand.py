"""The open hand against anny's own skinning, its shape space, frames, limits and cache."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from honnotate.models import open_hand as oh
from honnotate.models.hand import HandModel
from honnotate.models.hand_data import HandModelData

SIDES = ("right", "left")


@pytest.fixture(scope="module", params=SIDES)
def hand(request, tmp_path_factory):
    side = request.param
    model = oh.anny_hand_model(side)
    data = oh.build_open_hand(side, model=model)
    return side, model, data


def _anny_pose_metacarpals_at_rest(model, side, rng, scale=0.5, phenotypes=None):
    """anny local-bone deltas (1, 21, 4, 4) with random finger rotations and the root, wrist and
    metacarpals at rest; also the rest bone orientations and the phenotype batch."""
    ph = oh._phenotype_batch(model, phenotypes, 1)
    P = model(pose_parameters=None, phenotype_kwargs=ph)["rest_bone_poses"][0]
    delta = oh.anny_finger_pose(model, side, P, torch.as_tensor(rng.normal(0, scale, (15, 3))))
    return delta, P[:, :3, :3], ph


def test_rest_orientation_like_mano(hand):
    side, _, data = hand
    v, tips = data.v_template, data.v_template[data.tip_vertex_ids]
    j = data.j_regressor @ v
    assert np.allclose(j[0], 0, atol=1e-9), "wrist joint at the origin"
    sign = -1 if side == "right" else 1
    middle_tip = tips[2]
    assert sign * middle_tip[0] > 0.15, "fingers along -x (right) / +x (left)"
    assert abs(middle_tip[1]) < 0.05 and abs(middle_tip[2]) < 0.03
    assert tips[0][2] > 0.05, "thumb toward +z"
    # Flexing the index MCP (anatomical +x) moves the tip toward the palm (-y).
    model = HandModel(data, flat_hand_mean=True, dtype=torch.float64)
    r = torch.zeros(1, 15, 3, dtype=torch.float64)
    r[0, 0, 0] = 0.8
    pose = model.anatomical_to_pose(r)
    out = model(torch.zeros(1, 3, dtype=torch.float64), pose)
    d = out.vertices[0, data.tip_vertex_ids[1]] - torch.as_tensor(v[data.tip_vertex_ids[1]])
    assert d[1] < -0.02


def test_exact_skinning_equivalence_with_anny(hand):
    """With the exact rest mesh of a phenotype, our LBS equals anny's skinning to float64 precision."""
    side, model, data = hand
    rng = np.random.default_rng(1 if side == "right" else 2)
    ref = oh.anny_rest_in_mano_frame(model, side, align=data.extras["align"])
    # Exact arrays for the default phenotype: zero shape space, regressor exact on this mesh.
    empty = np.zeros((data.num_vertices, 3, 1))
    reg = oh._fit_joint_regressor(ref["vertices"][0], empty, ref["joints"][0], np.zeros((16, 3, 1)))
    exact = dataclasses.replace(data, v_template=ref["vertices"][0], shapedirs=empty, j_regressor=reg)
    hm = HandModel(exact, flat_hand_mean=True, dtype=torch.float64)
    for _ in range(3):
        delta, R, ph = _anny_pose_metacarpals_at_rest(model, side, rng)
        va = model(pose_parameters=delta, phenotype_kwargs=ph)["vertices"][0].numpy()
        va = va @ ref["map_rot"][0].T + ref["map_trans"][0]
        pose = oh.anny_local_bone_to_pose(model, side, delta[:, :, :3, :3], ref["map_rot"][0], R)
        out = hm(torch.zeros(1, 3, dtype=torch.float64), pose)
        assert np.abs(out.vertices[0].numpy() - va).max() < 1e-9


def test_betas_reproduce_anny_phenotype_and_pose(hand):
    """End to end through the shape space: fit betas to a held-out phenotype, pose both models."""
    side, model, data = hand
    rng = np.random.default_rng(7)
    phen = {"gender": 0.2, "age": 0.9, "muscle": 0.7, "weight": 0.3, "height": 0.8, "proportions": 0.4}
    ref = oh.anny_rest_in_mano_frame(model, side, phen, align=data.extras["align"])
    betas = oh.fit_betas(data, ref["vertices"][0])
    hm = HandModel(data, flat_hand_mean=True, dtype=torch.float64)
    delta, R, ph = _anny_pose_metacarpals_at_rest(model, side, rng, phenotypes=phen)
    va = model(pose_parameters=delta, phenotype_kwargs=ph)["vertices"][0].numpy()
    va = va @ ref["map_rot"][0].T + ref["map_trans"][0]
    pose = oh.anny_local_bone_to_pose(model, side, delta[:, :, :3, :3], ref["map_rot"][0], R)
    out = hm(torch.zeros(1, 3, dtype=torch.float64), pose, torch.as_tensor(betas[None]))
    err = np.linalg.norm(out.vertices[0].numpy() - va, axis=1)
    assert err.mean() < 0.5e-3, err.mean()
    assert err.max() < 3e-3, err.max()


def test_shape_space_held_out_phenotypes(hand):
    side, model, data = hand
    assert data.num_betas >= 8
    rng = np.random.default_rng(123)
    n = 60
    phen = {k: rng.uniform(lo, hi, n) for k, (lo, hi) in oh._PHENOTYPE_RANGES.items()}
    s = oh.anny_rest_in_mano_frame(model, side, phen, batch=n, align=data.extras["align"])
    errs = []
    for i in range(n):
        betas = oh.fit_betas(data, s["vertices"][i])
        rec = data.v_template + data.shapedirs @ betas
        errs.append(np.linalg.norm(rec - s["vertices"][i], axis=1).mean())
        joints = data.j_regressor @ rec
        assert np.linalg.norm(joints - s["joints"][i], axis=1).max() < 2e-3
    assert np.mean(errs) < 1e-3, f"held-out mean vertex error {np.mean(errs) * 1e3:.3f} mm"
    assert np.max(errs) < 1e-3


def test_frames_limits_and_pose_pca(hand):
    _, _, data = hand
    A = data.joint_frames
    assert A.shape == (15, 3, 3)
    assert np.allclose(A @ np.swapaxes(A, 1, 2), np.eye(3), atol=1e-9)
    assert np.allclose(np.linalg.det(A), 1.0)
    lim = data.joint_limits
    assert lim.shape == (15, 3, 2) and np.all(lim[..., 0] < lim[..., 1])
    # The rest pose (anatomical angles 0) lies within the limits.
    assert np.all(lim[..., 0] <= 0) and np.all(lim[..., 1] >= 0)
    C = data.hands_components
    assert np.allclose(C @ C.T, np.eye(45), atol=1e-8)
    assert np.isfinite(data.hands_mean).all()


def test_cache_roundtrip_and_version(tmp_path, monkeypatch):
    path = oh.cached_path("right", tmp_path)
    assert not path.exists()
    calls = []
    real = oh.build_open_hand

    def counting(side, **kw):
        calls.append(side)
        return real(side, **kw)

    monkeypatch.setattr(oh, "build_open_hand", counting)
    d1 = oh.load_open_hand("right", cache_dir=tmp_path)
    assert path.exists() and calls == ["right"]
    d2 = oh.load_open_hand("right", cache_dir=tmp_path)
    assert calls == ["right"], "second load comes from the cache"
    assert isinstance(d2, HandModelData)
    np.testing.assert_array_equal(d1.faces, d2.faces)
    np.testing.assert_allclose(d1.shapedirs, d2.shapedirs)
    assert d2.source == "open" and "anny" in d2.source_version
    # Another version of the conversion gets another cache file (rebuilt).
    monkeypatch.setattr(oh, "OPEN_HAND_VERSION", oh.OPEN_HAND_VERSION + 1)
    assert oh.cached_path("right", tmp_path) != path
    # A corrupt cache file is rebuilt, not fatal.
    monkeypatch.setattr(oh, "OPEN_HAND_VERSION", oh.OPEN_HAND_VERSION - 1)
    path.write_bytes(b"not an npz")
    oh.load_open_hand("right", cache_dir=tmp_path)
    assert calls == ["right", "right"]


def test_bad_side():
    with pytest.raises(ValueError, match="side"):
        oh.cached_path("middle")
