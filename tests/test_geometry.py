"""Tests of honnotate.geometry: transforms, conventions, projection functions, mesh utilities."""

from __future__ import annotations

import math

import numpy as np
import pytest
import roma
import torch

from honnotate.geometry import (
    Camera,
    apply_rotvec,
    axis_angle_to_matrix,
    cam_to_world_opencv_to_opengl,
    cam_to_world_opengl_to_opencv,
    depth_to_points,
    face_areas,
    face_normals,
    ho3d_project,
    invert_rigid,
    matrix_to_axis_angle,
    opencv_to_opengl_points,
    opencv_to_opengl_pose,
    opengl_to_opencv_points,
    opengl_to_opencv_pose,
    project_points,
    rigid_matrix,
    sample_surface,
    transform_points,
    unproject_depth_map,
    vertex_normals,
    world_to_cam_opencv_to_opengl,
    world_to_cam_opengl_to_opencv,
)

F = torch.diag(torch.tensor([1.0, -1.0, -1.0], dtype=torch.float64))


def _rand(*shape, seed=0, dtype=torch.float64):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


# ----------------------------------------------------------------------------------------
# transforms
# ----------------------------------------------------------------------------------------
class TestRotations:
    def test_golden_quarter_turn_about_z(self):
        R = axis_angle_to_matrix(torch.tensor([0.0, 0.0, math.pi / 2]))
        torch.testing.assert_close(R, torch.tensor([[0.0, -1, 0], [1, 0, 0], [0, 0, 1]]), atol=1e-6, rtol=0)
        torch.testing.assert_close(apply_rotvec(torch.tensor([[1.0, 0, 0]]), torch.tensor([0.0, 0, math.pi / 2]),
                                                torch.tensor([0.0, 0, 1])), torch.tensor([[0.0, 1, 1]]),
                                   atol=1e-6, rtol=0)

    @pytest.mark.parametrize("batch", [(1,), (2,), (5,), (2, 3)])
    def test_roundtrip_shapes(self, batch):
        rv = _rand(*batch, 3) * 0.8
        R = axis_angle_to_matrix(rv)
        assert R.shape == (*batch, 3, 3)
        torch.testing.assert_close(matrix_to_axis_angle(R), rv)
        torch.testing.assert_close(R, roma.rotvec_to_rotmat(rv))

    @pytest.mark.parametrize("angle", [0.0, 1e-7])
    def test_finite_gradients_near_identity(self, angle):
        rv = torch.tensor([angle, 0.0, 0.0], dtype=torch.float64, requires_grad=True)
        pts = _rand(4, 3)
        out = apply_rotvec(pts, rv, torch.zeros(3, dtype=torch.float64))
        (g,) = torch.autograd.grad(out.square().sum() + out[:, 0].sum(), rv)
        assert torch.isfinite(g).all()
        # d(R p)/d rotvec at the identity is -[p]_x: for sum(p_rot[:, 0]) the gradient is sum(p x e_x).
        expected = torch.cross(pts, torch.tensor([[1.0, 0, 0]], dtype=torch.float64).expand_as(pts), dim=-1).sum(0)
        # roma's gradient at 1e-7 is finite but off by ~2e-6 (cancellation in float64), hence 1e-5.
        torch.testing.assert_close(g, expected, atol=1e-5, rtol=1e-6)
        (g2,) = torch.autograd.grad(matrix_to_axis_angle(axis_angle_to_matrix(rv)).sum(), rv)
        assert torch.isfinite(g2).all()

    def test_gradcheck(self):
        rv = (_rand(2, 3) * 0.5).requires_grad_(True)
        t = _rand(2, 3, seed=1).requires_grad_(True)
        pts = _rand(2, 5, 3, seed=2).requires_grad_(True)
        assert torch.autograd.gradcheck(apply_rotvec, (pts, rv, t))
        assert torch.autograd.gradcheck(rigid_matrix, (rv, t))

    def test_bad_shapes(self):
        with pytest.raises(ValueError, match=r"\(\.\.\., 3\)"):
            axis_angle_to_matrix(torch.zeros(4))
        with pytest.raises(ValueError, match=r"\(\.\.\., 3, 3\)"):
            matrix_to_axis_angle(torch.zeros(3, 4))
        with pytest.raises(ValueError, match=r"\(\.\.\., N, 3\)"):
            apply_rotvec(torch.zeros(3), torch.zeros(3))
        with pytest.raises(TypeError):
            axis_angle_to_matrix(np.zeros(3))


class TestRigid:
    @pytest.mark.parametrize("batch", [(1,), (2,), (5,)])
    def test_rigid_matrix_and_inverse(self, batch):
        rv, t = _rand(*batch, 3), _rand(*batch, 3, seed=1)
        T = rigid_matrix(rv, t)
        assert T.shape == (*batch, 4, 4)
        torch.testing.assert_close(T[..., 3, :], torch.tensor([0.0, 0, 0, 1], dtype=torch.float64).expand(*batch, 4))
        torch.testing.assert_close(invert_rigid(T), torch.linalg.inv(T))
        pts = _rand(*batch, 7, 3, seed=2)
        torch.testing.assert_close(transform_points(T, pts), apply_rotvec(pts, rv, t))
        torch.testing.assert_close(transform_points(invert_rigid(T), transform_points(T, pts)), pts)

    def test_broadcast_T_over_batches(self):
        T = rigid_matrix(_rand(3), _rand(3, seed=1))
        pts = _rand(4, 6, 3)
        out = transform_points(T, pts)
        assert out.shape == (4, 6, 3)
        torch.testing.assert_close(out[2], transform_points(T, pts[2]))

    def test_bad_shapes(self):
        with pytest.raises(ValueError, match=r"\(\.\.\., 4, 4\)"):
            transform_points(torch.eye(3), torch.zeros(2, 3))
        with pytest.raises(ValueError, match=r"\(\.\.\., 3\)"):
            rigid_matrix(torch.zeros(3), torch.zeros(2))


# ----------------------------------------------------------------------------------------
# conventions
# ----------------------------------------------------------------------------------------
class TestConventions:
    def test_points_golden_and_involution(self):
        p = torch.tensor([[0.1, 0.2, 0.5]])
        torch.testing.assert_close(opencv_to_opengl_points(p), torch.tensor([[0.1, -0.2, -0.5]]))
        q = _rand(5, 4, 3)
        torch.testing.assert_close(opengl_to_opencv_points(opencv_to_opengl_points(q)), q)

    @pytest.mark.parametrize("form", ["rotvec", "matrix"])
    def test_pose_moves_points_consistently(self, form):
        v = _rand(10, 3)
        rv_gl, t_gl = _rand(3) * 0.7, _rand(3, seed=1)
        rot_gl = rv_gl if form == "rotvec" else axis_angle_to_matrix(rv_gl)
        rot_cv, t_cv = opengl_to_opencv_pose(rot_gl, t_gl)
        assert rot_cv.shape == rot_gl.shape
        R_cv = axis_angle_to_matrix(rot_cv) if form == "rotvec" else rot_cv
        posed_gl = apply_rotvec(v, rv_gl, t_gl)
        posed_cv = v @ R_cv.T + t_cv
        torch.testing.assert_close(posed_cv, opengl_to_opencv_points(posed_gl))
        back = opencv_to_opengl_pose(rot_cv, t_cv)
        torch.testing.assert_close(back[1], t_gl)
        if form == "matrix":
            torch.testing.assert_close(back[0], rot_gl)
        else:
            torch.testing.assert_close(axis_angle_to_matrix(back[0]), axis_angle_to_matrix(rv_gl))

    def test_pose_batched_rotvec_vs_matrix_disambiguation(self):
        # (3, 3) with transl (3, 3) is three axis-angles, not one matrix.
        rv, t = _rand(3, 3) * 0.3, _rand(3, 3, seed=1)
        rot, _ = opengl_to_opencv_pose(rv, t)
        torch.testing.assert_close(axis_angle_to_matrix(rot), F @ axis_angle_to_matrix(rv))
        with pytest.raises(ValueError, match="axis-angle"):
            opengl_to_opencv_pose(torch.zeros(3, 3), torch.zeros(2, 3))

    def test_extrinsics(self):
        T_gl = rigid_matrix(_rand(3), _rand(3, seed=1))  # camera(OpenGL)-to-world
        T_cv = cam_to_world_opengl_to_opencv(T_gl)
        p_cv = _rand(6, 3, seed=2)
        torch.testing.assert_close(transform_points(T_cv, p_cv), transform_points(T_gl, opencv_to_opengl_points(p_cv)))
        torch.testing.assert_close(cam_to_world_opencv_to_opengl(T_cv), T_gl)
        W_cv = world_to_cam_opengl_to_opencv(invert_rigid(T_gl))
        torch.testing.assert_close(W_cv, invert_rigid(T_cv))
        torch.testing.assert_close(world_to_cam_opencv_to_opengl(W_cv), invert_rigid(T_gl))

    def test_ho3d_project_equals_camera_project(self):
        K = torch.tensor([[614.6, 0.0, 320.3], [0.0, 614.9, 238.7], [0.0, 0.0, 1.0]], dtype=torch.float64)
        cam = Camera(K, torch.eye(4, dtype=torch.float64), 640, 480)
        pts_gl = _rand(2, 9, 3) * 0.1 + torch.tensor([0.0, 0.0, -0.6], dtype=torch.float64)
        uv_ho3d = ho3d_project(pts_gl, K)
        uv_cam, z = cam.project(opengl_to_opencv_points(pts_gl))
        assert uv_ho3d.shape == (2, 9, 2) and (z > 0).all()
        torch.testing.assert_close(uv_ho3d, uv_cam)
        # Golden: a point on the optical axis lands on the principal point.
        torch.testing.assert_close(ho3d_project(torch.tensor([[[0.0, 0.0, -1.0]]], dtype=torch.float64), K),
                                   K[:2, 2].reshape(1, 1, 2))

    def test_bad_shapes(self):
        with pytest.raises(ValueError, match=r"\(\.\.\., 3\)"):
            opengl_to_opencv_points(torch.zeros(4, 2))
        with pytest.raises(ValueError, match=r"\(\.\.\., 4, 4\)"):
            cam_to_world_opengl_to_opencv(torch.eye(3))
        with pytest.raises(ValueError, match="points_gl"):
            ho3d_project(torch.zeros(3), torch.eye(3))


# ----------------------------------------------------------------------------------------
# projection functions
# ----------------------------------------------------------------------------------------
K64 = torch.tensor([[500.0, 2.0, 320.0], [0.0, 510.0, 240.0], [0.0, 0.0, 1.0]], dtype=torch.float64)


class TestProjection:
    def test_project_golden_with_skew(self):
        uv = project_points(torch.tensor([[0.1, 0.2, 0.5]], dtype=torch.float64), K64)
        torch.testing.assert_close(uv, torch.tensor([[500 * 0.2 + 2 * 0.4 + 320, 510 * 0.4 + 240]], dtype=torch.float64))

    @pytest.mark.parametrize("batch", [(1,), (2,), (5,)])
    def test_project_batched_K(self, batch):
        pts = _rand(*batch, 4, 3) * 0.1 + torch.tensor([0, 0, 1.0], dtype=torch.float64)
        Ks = K64.expand(*batch, 3, 3).clone()
        Ks[..., 0, 0] = 400.0
        uv = project_points(pts, Ks)
        assert uv.shape == (*batch, 4, 2)
        torch.testing.assert_close(uv[0], project_points(pts[0], Ks[0]))

    def test_project_behind_is_finite(self):
        pts = torch.tensor([[0.1, 0.1, 0.0], [0.1, 0.1, -2.0]], dtype=torch.float64, requires_grad=True)
        uv = project_points(pts, K64)
        uv.sum().backward()
        assert torch.isfinite(uv).all() and torch.isfinite(pts.grad).all()

    def test_project_gradcheck(self):
        pts = (_rand(3, 3) * 0.1 + torch.tensor([0, 0, 1.0], dtype=torch.float64)).requires_grad_(True)
        K = K64.clone().requires_grad_(True)
        assert torch.autograd.gradcheck(project_points, (pts, K))

    @pytest.mark.parametrize("batch", [(), (1,), (2,), (5,)])
    def test_unproject_roundtrip(self, batch):
        depth = 0.5 + _rand(*batch, 6, 8).abs()
        pts = unproject_depth_map(depth, K64)
        assert pts.shape == (*batch, 6, 8, 3)
        uv = project_points(pts.reshape(*batch, -1, 3), K64)
        vv, uu = torch.meshgrid(torch.arange(6.0, dtype=torch.float64), torch.arange(8.0, dtype=torch.float64),
                                indexing="ij")
        torch.testing.assert_close(uv, torch.stack([uu, vv], -1).reshape(-1, 2).expand(*batch, 48, 2))
        torch.testing.assert_close(pts[..., 2], depth)

    def test_unproject_gradcheck(self):
        depth = (0.5 + _rand(3, 4).abs()).requires_grad_(True)
        K = K64.clone().requires_grad_(True)
        assert torch.autograd.gradcheck(unproject_depth_map, (depth, K))

    def test_depth_to_points(self):
        depth = torch.tensor([[0.0, 1.0], [2.0, float("inf")]], dtype=torch.float64)
        pts = depth_to_points(depth, K64)
        assert pts.shape == (2, 3)
        torch.testing.assert_close(pts[:, 2], torch.tensor([1.0, 2.0], dtype=torch.float64))
        mask = torch.tensor([[True, False], [True, True]])
        assert depth_to_points(depth, K64, mask).shape == (1, 3)

    def test_bad_inputs(self):
        with pytest.raises(ValueError, match=r"\(\.\.\., 3, 3\)"):
            project_points(torch.zeros(2, 3), torch.eye(4))
        with pytest.raises(ValueError, match=r"\(\.\.\., N, 3\)"):
            project_points(torch.zeros(2, 2), torch.eye(3))
        with pytest.raises(ValueError, match="floating"):
            unproject_depth_map(torch.zeros(3, 3, dtype=torch.int32), torch.eye(3))
        with pytest.raises(ValueError, match=r"\(H, W\)"):
            depth_to_points(torch.zeros(1, 3, 3), torch.eye(3))


# ----------------------------------------------------------------------------------------
# mesh utilities
# ----------------------------------------------------------------------------------------
def _octahedron(dtype=torch.float64):
    v = torch.tensor([[1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1]], dtype=dtype)
    f = torch.tensor([[0, 2, 4], [2, 1, 4], [1, 3, 4], [3, 0, 4], [2, 0, 5], [1, 2, 5], [3, 1, 5], [0, 3, 5]])
    return v, f


class TestMesh:
    def test_golden_octahedron(self):
        v, f = _octahedron()
        fn = face_normals(v, f)
        centroids = v[f].mean(1)
        torch.testing.assert_close(fn, centroids / centroids.norm(dim=-1, keepdim=True))
        torch.testing.assert_close(face_areas(v, f), torch.full((8,), math.sqrt(3) / 2, dtype=torch.float64))
        torch.testing.assert_close(vertex_normals(v, f), v)

    @pytest.mark.parametrize("batch", [1, 2, 5])
    def test_batched_shapes(self, batch):
        v, f = _octahedron()
        vb = v.expand(batch, 6, 3) * torch.arange(1, batch + 1, dtype=torch.float64)[:, None, None]
        assert face_normals(vb, f).shape == (batch, 8, 3)
        assert vertex_normals(vb, f).shape == (batch, 6, 3)
        areas = face_areas(vb, f)
        assert areas.shape == (batch, 8)
        torch.testing.assert_close(areas[-1], face_areas(v, f) * batch**2)

    def test_degenerate_face_is_finite(self):
        v = torch.tensor([[0.0, 0, 0], [1, 0, 0], [2, 0, 0]], dtype=torch.float64, requires_grad=True)
        f = torch.tensor([[0, 1, 2]])
        n = face_normals(v, f)
        (n.sum() + vertex_normals(v, f).sum() + face_areas(v, f).sum()).backward()
        assert torch.isfinite(n).all() and torch.isfinite(v.grad).all()
        torch.testing.assert_close(n, torch.zeros(1, 3, dtype=torch.float64))

    def test_gradcheck(self):
        v, f = _octahedron()
        v = (v + 0.1 * _rand(6, 3)).requires_grad_(True)
        assert torch.autograd.gradcheck(lambda x: vertex_normals(x, f), (v,))
        assert torch.autograd.gradcheck(lambda x: face_areas(x, f), (v,))

    def test_bad_inputs(self):
        v, f = _octahedron()
        with pytest.raises(ValueError, match=r"\(F, 3\)"):
            face_normals(v, f[:, :2])
        with pytest.raises(ValueError, match="integer"):
            face_normals(v, f.double())
        with pytest.raises(ValueError, match=r"\(\.\.\., V, 3\)"):
            vertex_normals(v[:, :2], f)

    def test_sample_surface(self):
        v, f = _octahedron()
        v, f = v.numpy(), f.numpy()
        s = sample_surface(v, f, 2000, seed=3)
        assert s.points.shape == (2000, 3) and s.face_ids.shape == (2000,) and s.normals.shape == (2000, 3)
        np.testing.assert_allclose(s.barycentric.sum(1), 1.0)
        assert (s.barycentric >= 0).all()
        np.testing.assert_allclose(np.abs(s.points).sum(1), 1.0, atol=1e-12)  # on the octahedron |x|+|y|+|z|=1
        np.testing.assert_allclose(np.einsum("nk,nkd->nd", s.barycentric, v[f[s.face_ids]]), s.points)
        np.testing.assert_allclose((s.normals * s.points).sum(1), 1 / math.sqrt(3), atol=1e-12)
        # Equal-area faces: each gets about 1/8 of the samples.
        counts = np.bincount(s.face_ids, minlength=8)
        assert counts.min() > 180 and counts.max() < 320
        s2 = sample_surface(v, f, 2000, seed=3)
        np.testing.assert_array_equal(s.points, s2.points)

    def test_sample_surface_area_weighting(self):
        # Two triangles, areas 1/2 and 2: the big one gets ~80 %.
        v = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [3, 0, 0], [5, 0, 0], [3, 2, 0]], dtype=float)
        f = np.array([[0, 1, 2], [3, 4, 5]])
        s = sample_surface(v, f, 5000, seed=0)
        assert abs((s.face_ids == 1).mean() - 0.8) < 0.03

    def test_sample_surface_bad_inputs(self):
        v, f = _octahedron()
        with pytest.raises(ValueError, match=r"\(V, 3\)"):
            sample_surface(v.numpy()[:, :2], f.numpy(), 3)
        with pytest.raises(ValueError, match="non-negative"):
            sample_surface(v.numpy(), f.numpy(), -1)
        with pytest.raises(ValueError, match="zero surface"):
            sample_surface(np.zeros((3, 3)), np.array([[0, 1, 2]]), 3)
