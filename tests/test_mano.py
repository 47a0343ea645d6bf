"""Tests of honnotate.models.mano (safe MANO loader), models.hand (HandModel) and models.registry.

The reference twin is smplx's MANO layer on a random model written in the MANO pickle layout.
"""

from __future__ import annotations

import builtins
import math
import os
import pickle
import sys
import types

import numpy as np
import pytest
import torch

from honnotate.io.safe_pickle import UnsafePickleError
from honnotate.models.hand import HandModel, HandOutput
from honnotate.models.hand_data import MANO_PARENTS, HandModelData
from honnotate.models.mano import HO3D_TIPS, load_mano, mano_data_from_dict, random_mano_dict
from honnotate.models.registry import available_hand_models, load_hand_model

F64 = torch.float64


def _write(path, obj, protocol=2):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=protocol)


@pytest.fixture(scope="module")
def mano_root(tmp_path_factory):
    """<root>/mano/MANO_{RIGHT,LEFT}.pkl in the MANO layout (plain numpy + scipy csc)."""
    root = tmp_path_factory.mktemp("models")
    _write(root / "mano" / "MANO_RIGHT.pkl", random_mano_dict(seed=1))
    _write(root / "mano" / "MANO_LEFT.pkl", random_mano_dict(seed=2))
    return root


@pytest.fixture(scope="module")
def small_data():
    d = random_mano_dict(num_vertices=50, num_faces=40, num_betas=3, seed=3)
    return mano_data_from_dict(d, "right", tip_vertex_ids=(1, 2, 3, 4, 5))


# --------------------------------------------------------------------------- loader
class TestLoadMano:
    def test_plain_layout(self, mano_root):
        ref = random_mano_dict(seed=1)
        data = load_mano(mano_root / "mano", "right")
        assert isinstance(data, HandModelData) and data.side == "right" and data.source == "mano"
        assert data.num_vertices == 778 and data.num_betas == 10 and data.faces.shape == (1538, 3)
        assert data.posedirs.shape == (135, 778 * 3)
        np.testing.assert_array_equal(data.parents, MANO_PARENTS)
        np.testing.assert_array_equal(data.tip_vertex_ids, HO3D_TIPS)
        np.testing.assert_allclose(data.j_regressor, ref["J_regressor"].toarray())
        # smplx's posedirs layout: (V, 3, P) -> (P, V*3)
        np.testing.assert_allclose(data.posedirs[7].reshape(778, 3), ref["posedirs"][:, :, 7])

    def test_dir_layouts_and_tips(self, mano_root):
        a = load_mano(mano_root, "left", tip_vertex_ids=(1, 2, 3, 4, 5))  # finds <root>/mano/
        b = load_mano(mano_root / "mano" / "MANO_LEFT.pkl", "left")
        assert a.side == "left"
        np.testing.assert_array_equal(a.tip_vertex_ids, [1, 2, 3, 4, 5])
        np.testing.assert_array_equal(a.v_template, b.v_template)

    @pytest.mark.parametrize("protocol", [
        2,  # what MANO v1.2 uses (NEWOBJ)
        0,  # Python-2 style: copy_reg._reconstructor with __builtin__.object
    ])
    def test_chumpy_objects_without_chumpy(self, tmp_path, protocol):
        ref = random_mano_dict(num_vertices=60, num_faces=30, seed=4)
        ch_mod = types.ModuleType("chumpy.ch")
        pkg = types.ModuleType("chumpy")

        class Ch:
            def __init__(self, x):
                self.x = x

            def __getstate__(self):
                return {"x": self.x}

        Ch.__module__, Ch.__qualname__ = "chumpy.ch", "Ch"
        ch_mod.Ch, pkg.ch = Ch, ch_mod
        sys.modules["chumpy"], sys.modules["chumpy.ch"] = pkg, ch_mod
        try:
            wrapped = dict(ref)
            for k in ("v_template", "shapedirs", "posedirs", "weights", "hands_components", "hands_mean"):
                wrapped[k] = Ch(ref[k])
            _write(tmp_path / "MANO_RIGHT.pkl", wrapped, protocol=protocol)
        finally:
            del sys.modules["chumpy"], sys.modules["chumpy.ch"]
        assert "chumpy" not in sys.modules
        data = load_mano(tmp_path, "right", tip_vertex_ids=(0, 1, 2, 3, 4))
        np.testing.assert_array_equal(data.v_template, ref["v_template"])
        np.testing.assert_array_equal(data.shapedirs, ref["shapedirs"])
        np.testing.assert_array_equal(data.hands_mean, ref["hands_mean"])

    @pytest.mark.parametrize("attack", ["system", "eval"])
    def test_malicious_pickle_refused_and_not_run(self, tmp_path, attack):
        marker = tmp_path / "pwned"

        class Evil:
            def __reduce__(self):
                if attack == "system":
                    return (os.system, (f"touch {marker}",))
                return (builtins.eval, (f"open({str(marker)!r}, 'w').write('x')",))

        d = random_mano_dict(num_vertices=40, num_faces=10, seed=5)
        d["bs_style"] = Evil()
        _write(tmp_path / "MANO_RIGHT.pkl", d)
        with pytest.raises(UnsafePickleError, match="refused"):
            load_mano(tmp_path, "right")
        assert not marker.exists()

    def test_missing_file_explains(self, tmp_path):
        with pytest.raises(FileNotFoundError, match=r"mano\.is\.tue\.mpg\.de.*--hand open"):
            load_mano(tmp_path, "right")
        with pytest.raises(FileNotFoundError, match="MANO_LEFT.pkl"):
            load_mano(tmp_path / "nowhere", "left")

    def test_bad_files(self, tmp_path, mano_root):
        _write(tmp_path / "MANO_RIGHT.pkl", {"v_template": np.zeros((3, 3))})
        with pytest.raises(ValueError, match="missing keys"):
            load_mano(tmp_path, "right")
        (tmp_path / "MANO_LEFT.pkl").write_bytes(b"not a pickle")
        with pytest.raises(ValueError, match="MANO_LEFT.pkl"):
            load_mano(tmp_path, "left")
        with pytest.raises(ValueError, match="side='right'"):
            load_mano(mano_root / "mano" / "MANO_LEFT.pkl", "right")
        d = random_mano_dict(num_vertices=40, num_faces=10)
        d["kintree_table"] = d["kintree_table"][:, ::-1].copy()
        with pytest.raises(ValueError, match="kinematic tree"):
            mano_data_from_dict(d, "right", tip_vertex_ids=(0, 1, 2, 3, 4))
        with pytest.raises(ValueError, match="tip_vertex_ids"):
            mano_data_from_dict(random_mano_dict(num_vertices=40, num_faces=10), "right")


# --------------------------------------------------------------------------- HandModel vs smplx
def _smplx_model(root, side, use_pca, ncomps, flat):
    smplx = pytest.importorskip("smplx")
    return smplx.create(str(root), model_type="mano", is_rhand=side == "right", use_pca=use_pca,
                        num_pca_comps=ncomps, flat_hand_mean=flat, dtype=F64)


@pytest.mark.parametrize("side", ["right", "left"])
@pytest.mark.parametrize("use_pca", [False, True])
@pytest.mark.parametrize("flat", [True, False])
def test_equals_smplx(mano_root, side, use_pca, flat):
    ncomps = 12 if use_pca else 45
    ref = _smplx_model(mano_root, side, use_pca, ncomps, flat)
    model = HandModel(load_mano(mano_root, side), use_pca=use_pca, num_pca_comps=ncomps, flat_hand_mean=flat, dtype=F64)
    g = torch.Generator().manual_seed(7)
    B = 4
    go = torch.randn(B, 3, generator=g, dtype=F64)
    hp = torch.randn(B, ncomps, generator=g, dtype=F64) * (0.5 if use_pca else 0.8)
    betas = torch.randn(B, 10, generator=g, dtype=F64) * 2
    transl = torch.randn(B, 3, generator=g, dtype=F64) * 0.3
    out = model(go, hp, betas, transl)
    exp = ref(global_orient=go, hand_pose=hp, betas=betas, transl=transl, return_full_pose=True)
    assert (out.vertices - exp.vertices).abs().max() <= 1e-5
    assert (out.joints[:, :16] - exp.joints).abs().max() <= 1e-5
    ref.vertex_joint_selector.extra_joints_idxs = torch.tensor(HO3D_TIPS)
    with_tips = ref.vertex_joint_selector(exp.vertices, exp.joints)
    assert (out.joints - with_tips).abs().max() <= 1e-5
    torch.testing.assert_close(out.full_pose, exp.full_pose)


class TestHandModel:
    @pytest.mark.parametrize("B", [1, 2, 5])
    def test_shapes_defaults(self, small_data, B):
        model = HandModel(small_data)
        out = model(torch.zeros(B, 3), torch.zeros(B, 45))
        assert isinstance(out, HandOutput)
        assert out.vertices.shape == (B, 50, 3) and out.joints.shape == (B, 21, 3)
        assert out.joint_transforms.shape == (B, 16, 4, 4) and out.rest_joints.shape == (B, 16, 3)
        assert out.full_pose.shape == (B, 48) and out.vertices.dtype == torch.float32
        # zero pose, zero shape, flat hand: the template
        torch.testing.assert_close(out.vertices, model.v_template.expand(B, -1, -1))
        assert model.faces.shape == (40, 3) and model.side == "right" and model.num_betas == 3

    def test_transforms_include_translation(self, small_data):
        model = HandModel(small_data, dtype=F64)
        g = torch.Generator().manual_seed(0)
        go, hp = torch.randn(2, 3, generator=g, dtype=F64), torch.randn(2, 45, generator=g, dtype=F64)
        betas, transl = torch.randn(2, 2, generator=g, dtype=F64), torch.randn(2, 3, generator=g, dtype=F64)
        out = model(go, hp, betas, transl)
        T = out.joint_transforms
        # posed joint j = T_j applied to rest joint j
        posed = (T[..., :3, :3] @ out.rest_joints[..., None])[..., 0] + T[..., :3, 3]
        torch.testing.assert_close(posed, out.joints[:, :16])
        torch.testing.assert_close(out.joints[:, 16:], out.vertices[:, [1, 2, 3, 4, 5]])

    def test_anatomical_identity_for_mano(self, small_data):
        model = HandModel(small_data)
        r = torch.randn(3, 15, 3)
        torch.testing.assert_close(model.anatomical_to_pose(r), r.reshape(3, 45))
        torch.testing.assert_close(model.pose_to_anatomical(r.reshape(3, 45)), r)

    def test_anatomical_with_frames(self, small_data):
        from dataclasses import replace

        import roma

        frames = roma.rotvec_to_rotmat(torch.randn(15, 3, dtype=F64)).numpy()
        model = HandModel(replace(small_data, joint_frames=frames), dtype=F64)
        r_anat = torch.randn(2, 15, 3, dtype=F64)
        pose = model.anatomical_to_pose(r_anat)
        torch.testing.assert_close(pose.reshape(2, 15, 3)[:, 4], (torch.as_tensor(frames[4]) @ r_anat[:, 4].T).T)
        torch.testing.assert_close(model.pose_to_anatomical(pose), r_anat)

    def test_pca_and_mean(self, small_data):
        flat = HandModel(small_data, dtype=F64)
        pca = HandModel(small_data, use_pca=True, num_pca_comps=6, flat_hand_mean=False, dtype=F64)
        c = torch.randn(2, 6, dtype=F64)
        aa = c @ torch.as_tensor(small_data.hands_components[:6]) + torch.as_tensor(small_data.hands_mean)
        go = torch.randn(2, 3, dtype=F64)
        torch.testing.assert_close(pca(go, c).vertices, flat(go, aa).vertices)
        torch.testing.assert_close(pca(go, c).full_pose[:, 3:], aa)
        torch.testing.assert_close(pca.pca_to_axis_angle(c), c @ torch.as_tensor(small_data.hands_components[:6]))

    def test_bad_inputs(self, small_data):
        model = HandModel(small_data)
        with pytest.raises(ValueError, match=r"hand_pose: expected \(B, 45\) axis-angle .* got \(2, 44\)"):
            model(torch.zeros(2, 3), torch.zeros(2, 44))
        with pytest.raises(ValueError, match=r"global_orient: expected \(B, 3\)"):
            model(torch.zeros(2, 4), torch.zeros(2, 45))
        with pytest.raises(ValueError, match=r"betas: .*S <= 3"):
            model(torch.zeros(2, 3), torch.zeros(2, 45), torch.zeros(2, 4))
        with pytest.raises(ValueError, match=r"transl: expected \(B, 3\)"):
            model(torch.zeros(2, 3), torch.zeros(2, 45), None, torch.zeros(1, 3))
        with pytest.raises(ValueError, match="float64"):
            model(torch.zeros(2, 3, dtype=F64), torch.zeros(2, 45, dtype=F64))
        pca = HandModel(small_data, use_pca=True, num_pca_comps=30)
        with pytest.raises(ValueError, match=r"\(B, 30\) PCA coefficients"):
            pca(torch.zeros(2, 3), torch.zeros(2, 45))
        with pytest.raises(ValueError, match="num_pca_comps"):
            HandModel(small_data, num_pca_comps=0)

    @pytest.mark.parametrize("scale", [0.0, 1e-7])
    def test_gradcheck(self, small_data, scale):
        model = HandModel(small_data, flat_hand_mean=True, dtype=F64)
        g = torch.Generator().manual_seed(11)
        args = (
            torch.randn(1, 3, generator=g, dtype=F64) * scale,
            torch.randn(1, 45, generator=g, dtype=F64) * scale,
            torch.randn(1, 3, generator=g, dtype=F64),
            torch.randn(1, 3, generator=g, dtype=F64),
        )
        args = tuple(a.requires_grad_(True) for a in args)

        def fn(*a):
            out = model(*a)
            return out.vertices, out.joints, out.joint_transforms

        assert torch.autograd.gradcheck(fn, args, eps=1e-6, atol=1e-6)

    @pytest.mark.parametrize("angle", [0.0, 1e-7, math.pi])
    def test_finite_gradients(self, small_data, angle):
        model = HandModel(small_data)
        axis = torch.tensor([0.6, 0.0, 0.8])
        go = (axis * angle).expand(2, 3).clone().requires_grad_(True)
        hp = (axis * angle).repeat(2, 15).requires_grad_(True)
        betas = torch.zeros(2, 3, requires_grad=True)
        out = model(go, hp, betas, torch.zeros(2, 3))
        (out.vertices.square().sum() + out.joints.sum()).backward()
        for t in (go, hp, betas):
            assert torch.isfinite(t.grad).all()


# --------------------------------------------------------------------------- registry
class TestRegistry:
    def test_load_mano_via_env(self, mano_root, monkeypatch):
        monkeypatch.setenv("HONNOTATE_MANO_DIR", str(mano_root))
        model = load_hand_model("mano", "left", use_pca=True, num_pca_comps=6)
        assert model.side == "left" and model.use_pca and model.num_vertices == 778
        listed = {(m["name"], m["side"]): m for m in available_hand_models(cache_dir=mano_root / "cache")}
        assert listed[("mano", "right")]["status"] == "found"
        assert listed[("mano", "right")]["location"].endswith("MANO_RIGHT.pkl")
        assert set(listed) == {("open", "right"), ("open", "left"), ("mano", "right"), ("mano", "left")}

    def test_mano_not_configured(self, monkeypatch, tmp_path):
        monkeypatch.delenv("HONNOTATE_MANO_DIR", raising=False)
        with pytest.raises(FileNotFoundError, match="HONNOTATE_MANO_DIR.*--hand open"):
            load_hand_model("mano")
        listed = available_hand_models(cache_dir=tmp_path)
        assert [m["status"] for m in listed if m["name"] == "mano"] == ["not configured (set HONNOTATE_MANO_DIR)"] * 2
        assert all(m["status"].startswith(("not built", "unavailable")) for m in listed if m["name"] == "open")
        listed = available_hand_models(cache_dir=tmp_path, mano_dir=tmp_path)
        assert [m["status"] for m in listed if m["name"] == "mano"] == ["missing (MANO_RIGHT.pkl)", "missing (MANO_LEFT.pkl)"]

    def test_bad_kind(self):
        with pytest.raises(ValueError, match="kind"):
            load_hand_model("smpl")
        with pytest.raises(ValueError, match="side"):
            load_hand_model("mano", side="both")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu(small_data):
    cpu = HandModel(small_data, use_pca=True, num_pca_comps=6, flat_hand_mean=False, dtype=F64)
    gpu = HandModel(small_data, use_pca=True, num_pca_comps=6, flat_hand_mean=False, dtype=F64).to("cuda")
    args = [torch.randn(3, n, dtype=F64) for n in (3, 6, 3, 3)]
    a = cpu(*args)
    b = gpu(*[x.cuda().requires_grad_(True) for x in args])
    torch.testing.assert_close(b.vertices.cpu(), a.vertices)
    torch.testing.assert_close(b.joints.cpu(), a.joints)
    b.vertices.sum().backward()
