"""Tests of honnotate.models.lbs (pure LBS functions)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import roma
import torch

from honnotate.models.hand_data import MANO_PARENTS
from honnotate.models.lbs import (
    batch_rigid_transform,
    batch_rodrigues,
    blend_shapes,
    lbs,
    skin_vertices,
    vertices2joints,
)


def _naive_rigid(rot_mats, joints, parents):
    """Per-joint 4x4 chain, the textbook way (reference twin of batch_rigid_transform)."""
    B, J = joints.shape[:2]
    G = [None] * J
    for j in range(J):
        T = torch.eye(4, dtype=joints.dtype).repeat(B, 1, 1)
        T[:, :3, :3] = rot_mats[:, j]
        p = parents[j]
        T[:, :3, 3] = joints[:, j] - (joints[:, p] if p >= 0 else 0)
        G[j] = T if p < 0 else G[p] @ T
    G = torch.stack(G, 1)
    A = G.clone()
    A[..., :3, 3] = G[..., :3, 3] - (G[..., :3, :3] @ joints[..., None])[..., 0]
    return G[..., :3, 3], A


class TestRodrigues:
    @pytest.mark.parametrize("shape", [(1,), (2,), (5,), (2, 3)])
    def test_matches_roma(self, shape):
        g = torch.Generator().manual_seed(0)
        r = torch.randn(*shape, 3, generator=g, dtype=torch.float64) * 2
        R = batch_rodrigues(r)
        assert R.shape == (*shape, 3, 3)
        torch.testing.assert_close(R, roma.rotvec_to_rotmat(r), atol=1e-12, rtol=0)

    def test_golden(self):
        R = batch_rodrigues(torch.tensor([[0.0, 0.0, math.pi / 2]]))
        expected = torch.tensor([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
        torch.testing.assert_close(R[0], expected, atol=1e-6, rtol=0)
        assert batch_rodrigues(torch.zeros(1, 3)).equal(torch.eye(3)[None])

    @pytest.mark.parametrize("angle", [0.0, 1e-7, 1e-3, 0.7, math.pi])
    def test_gradcheck(self, angle):
        axis = torch.tensor([0.3, -0.5, 0.8], dtype=torch.float64)
        r = (axis / axis.norm() * angle).reshape(1, 3).requires_grad_(True)
        assert torch.autograd.gradcheck(batch_rodrigues, (r,), eps=1e-6, atol=1e-7)
        (g,) = torch.autograd.grad(batch_rodrigues(r).sum(), r)
        assert torch.isfinite(g).all()

    @pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
    def test_finite_grad_at_zero(self, dtype):
        r = torch.zeros(4, 3, dtype=dtype, requires_grad=True)
        R = batch_rodrigues(r)
        (g,) = torch.autograd.grad((R * torch.randn(4, 3, 3, dtype=dtype)).sum(), r)
        assert torch.isfinite(g).all() and R.dtype == dtype

    def test_bad_shape(self):
        with pytest.raises(ValueError, match=r"\(\.\.\., 3\)"):
            batch_rodrigues(torch.zeros(2, 4))


class TestBlendAndRegress:
    def test_blend_shapes_golden(self):
        dirs = torch.zeros(2, 3, 2)
        dirs[0, 0, 0] = 1.0
        dirs[1, 2, 1] = 2.0
        out = blend_shapes(torch.tensor([[3.0, 0.5]]), dirs)
        torch.testing.assert_close(out, torch.tensor([[[3.0, 0, 0], [0, 0, 1.0]]]))

    def test_vertices2joints_golden(self):
        v = torch.arange(12, dtype=torch.float32).reshape(1, 4, 3)
        reg = torch.tensor([[0.5, 0.5, 0, 0], [0, 0, 0, 1.0]])
        torch.testing.assert_close(vertices2joints(reg, v), torch.tensor([[[1.5, 2.5, 3.5], [9.0, 10, 11]]]))

    def test_bad_shapes(self):
        with pytest.raises(ValueError, match="shape_disps"):
            blend_shapes(torch.zeros(1, 3), torch.zeros(4, 3, 2))
        with pytest.raises(ValueError, match="j_regressor"):
            vertices2joints(torch.zeros(2, 5), torch.zeros(1, 4, 3))


class TestRigidTransform:
    @pytest.mark.parametrize("B", [1, 2, 5])
    def test_matches_naive_chain(self, B):
        g = torch.Generator().manual_seed(B)
        rot = roma.rotvec_to_rotmat(torch.randn(B, 16, 3, generator=g, dtype=torch.float64))
        joints = torch.randn(B, 16, 3, generator=g, dtype=torch.float64)
        pj, A = batch_rigid_transform(rot, joints, MANO_PARENTS)
        pj_ref, A_ref = _naive_rigid(rot, joints, MANO_PARENTS)
        assert pj.shape == (B, 16, 3) and A.shape == (B, 16, 4, 4)
        torch.testing.assert_close(pj, pj_ref, atol=1e-12, rtol=0)
        torch.testing.assert_close(A, A_ref, atol=1e-12, rtol=0)

    def test_identity_rotations_keep_joints(self):
        joints = torch.randn(2, 16, 3)
        pj, A = batch_rigid_transform(torch.eye(3).expand(2, 16, 3, 3), joints, torch.tensor(MANO_PARENTS))
        torch.testing.assert_close(pj, joints)
        torch.testing.assert_close(A, torch.eye(4).expand(2, 16, 4, 4))

    def test_bad_parents(self):
        with pytest.raises(ValueError, match="parents must precede"):
            batch_rigid_transform(torch.eye(3).expand(1, 3, 3, 3), torch.zeros(1, 3, 3), [-1, 2, 0])
        with pytest.raises(ValueError, match="expected 16 entries"):
            batch_rigid_transform(torch.eye(3).expand(1, 16, 3, 3), torch.zeros(1, 16, 3), [-1, 0])


def _small_model(V=30, S=4, with_posedirs=True, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    w = torch.rand(V, 16, generator=g, dtype=dtype)
    reg = torch.rand(16, V, generator=g, dtype=dtype)
    return dict(
        v_template=torch.randn(V, 3, generator=g, dtype=dtype) * 0.05,
        shapedirs=torch.randn(V, 3, S, generator=g, dtype=dtype) * 1e-2,
        posedirs=torch.randn(135, V * 3, generator=g, dtype=dtype) * 1e-2 if with_posedirs else None,
        j_regressor=reg / reg.sum(1, keepdim=True),
        parents=MANO_PARENTS,
        weights=w / w.sum(1, keepdim=True),
    )


class TestLBS:
    @pytest.mark.parametrize("B", [1, 2, 5])
    @pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
    def test_shapes_dtype(self, B, dtype):
        m = _small_model(dtype=dtype)
        res = lbs(torch.zeros(B, 4, dtype=dtype), torch.rand(B, 48, dtype=dtype), **m)
        assert res.vertices.shape == (B, 30, 3) and res.joints.shape == (B, 16, 3)
        assert res.transforms.shape == (B, 16, 4, 4) and res.rest_joints.shape == (B, 16, 3)
        assert res.vertices.dtype == dtype

    def test_zero_pose_is_shaped_template(self):
        m = _small_model()
        betas = torch.randn(2, 4, dtype=torch.float64)
        res = lbs(betas, torch.zeros(2, 48, dtype=torch.float64), **m)
        v_shaped = m["v_template"] + blend_shapes(betas, m["shapedirs"])
        torch.testing.assert_close(res.vertices, v_shaped)
        torch.testing.assert_close(res.joints, vertices2joints(m["j_regressor"], v_shaped))

    def test_rotmat_input_equals_axis_angle(self):
        m = _small_model()
        pose = torch.randn(3, 48, dtype=torch.float64)
        a = lbs(torch.zeros(3, 2, dtype=torch.float64), pose, **m)
        b = lbs(torch.zeros(3, 2, dtype=torch.float64), roma.rotvec_to_rotmat(pose.reshape(3, 16, 3)),
                pose2rot=False, **m)
        torch.testing.assert_close(a.vertices, b.vertices)

    def test_rigid_global_rotation(self):
        """Only a root rotation, no correctives: vertices rotate rigidly about the root joint."""
        m = _small_model(with_posedirs=False)
        pose = torch.zeros(1, 48, dtype=torch.float64)
        pose[0, :3] = torch.tensor([0.2, -1.0, 0.5])
        res = lbs(torch.zeros(1, 0, dtype=torch.float64), pose, **m)
        R = roma.rotvec_to_rotmat(pose[0, :3])
        j0 = res.rest_joints[0, 0]
        expected = (m["v_template"] - j0) @ R.T + j0
        torch.testing.assert_close(res.vertices[0], expected)

    def test_skinning_with_transforms_reproduces_vertices(self):
        m = _small_model(with_posedirs=False)
        res = lbs(torch.zeros(2, 4, dtype=torch.float64), torch.randn(2, 48, dtype=torch.float64), **m)
        again = skin_vertices(m["v_template"].expand(2, -1, -1), m["weights"], res.transforms)
        torch.testing.assert_close(again, res.vertices)

    def test_bad_inputs(self):
        m = _small_model()
        with pytest.raises(ValueError, match=r"pose: expected \(B, 48\)"):
            lbs(torch.zeros(1, 4, dtype=torch.float64), torch.zeros(1, 45, dtype=torch.float64), **m)
        with pytest.raises(ValueError, match="betas"):
            lbs(torch.zeros(1, 9, dtype=torch.float64), torch.zeros(1, 48, dtype=torch.float64), **m)

    @pytest.mark.parametrize("scale", [0.0, 1e-7, 1.0])
    def test_gradcheck(self, scale):
        m = _small_model(V=12, S=2)
        g = torch.Generator().manual_seed(1)
        pose = (torch.randn(1, 48, generator=g, dtype=torch.float64) * scale).requires_grad_(True)
        betas = torch.randn(1, 2, generator=g, dtype=torch.float64).requires_grad_(True)

        def fn(b, p):
            r = lbs(b, p, **m)
            return r.vertices, r.joints

        assert torch.autograd.gradcheck(fn, (betas, pose), eps=1e-6, atol=1e-6)


def test_numpy_parents_accepted():
    m = _small_model()
    m["parents"] = np.array(MANO_PARENTS)
    res = lbs(torch.zeros(1, 4, dtype=torch.float64), torch.zeros(1, 48, dtype=torch.float64), **m)
    assert res.vertices.shape == (1, 30, 3)
