"""Tests of honnotate.geometry.camera: Camera, CameraBatch, stack_cameras."""

from __future__ import annotations

import math

import pytest
import torch

from honnotate.geometry import (
    Camera,
    CameraBatch,
    invert_rigid,
    project_points,
    rigid_matrix,
    stack_cameras,
    transform_points,
)


def _camera(name="0", rotvec=(0.1, -0.2, 0.3), transl=(0.05, -0.02, 0.1), dtype=torch.float32):
    pose = rigid_matrix(torch.tensor(rotvec, dtype=dtype), torch.tensor(transl, dtype=dtype))
    return Camera.from_intrinsics(600.0, 610.0, 320.5, 238.0, 640, 480, cam_to_world=pose, name=name, dtype=dtype)


def _points_in_front(cam: Camera, n: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    pc = torch.rand(n, 3, generator=g, dtype=cam.dtype) * torch.tensor([0.4, 0.3, 0.5], dtype=cam.dtype)
    pc = pc + torch.tensor([-0.2, -0.15, 0.4], dtype=cam.dtype)
    return transform_points(cam.cam_to_world, pc)


class TestConstruction:
    def test_smoke_properties(self):
        cam = Camera.from_intrinsics(500, 510, 319.5, 239.5, 640, 480)
        assert (cam.fx, cam.fy, cam.cx, cam.cy) == (500.0, 510.0, 319.5, 239.5)
        assert cam.dtype == torch.float32 and cam.device.type == "cpu"
        assert torch.equal(cam.cam_to_world, torch.eye(4))
        assert torch.equal(cam.world_to_cam(), torch.eye(4))

    def test_cam_to_world_takes_K_dtype(self):
        cam = Camera(torch.eye(3, dtype=torch.float64) * 2 + torch.tensor([[0, 0, 1.0], [0, 0, 1], [0, 0, -1]], dtype=torch.float64),
                     torch.eye(4), 4, 3)
        assert cam.cam_to_world.dtype == torch.float64

    @pytest.mark.parametrize(
        "K, match",
        [
            (torch.eye(4), "shape"),
            (torch.tensor([[-500.0, 0, 320], [0, 500, 240], [0, 0, 1]]), "focal"),
            (torch.tensor([[500.0, 0, 320], [0, 0, 240], [0, 0, 1]]), "focal"),
            (torch.tensor([[500.0, 0, 320], [0, 500, 240], [0, 0, 2]]), r"\[0, 0, 1\]"),
            (torch.tensor([[500.0, 0, 320], [0, 500, 240], [float("nan"), 0, 1]]), "non-finite"),
        ],
    )
    def test_bad_K(self, K, match):
        with pytest.raises(ValueError, match=match):
            Camera(K, torch.eye(4), 640, 480, name="cam7")

    def test_bad_K_names_camera(self):
        with pytest.raises(ValueError, match="cam7"):
            Camera(torch.zeros(3, 3), torch.eye(4), 640, 480, name="cam7")

    @pytest.mark.parametrize(
        "T, match",
        [
            (torch.eye(3), "shape"),
            (torch.diag(torch.tensor([2.0, 2.0, 2.0, 1.0])), "orthonormal"),
            (torch.diag(torch.tensor([1.0, 1.0, -1.0, 1.0])), "reflection"),
            (torch.tensor([[1.0, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0.5, 1]]), "last row"),
        ],
    )
    def test_bad_cam_to_world(self, T, match):
        K = torch.tensor([[500.0, 0, 320], [0, 500, 240], [0, 0, 1]])
        with pytest.raises(ValueError, match=match):
            Camera(K, T, 640, 480)

    @pytest.mark.parametrize("size", [(0, 480), (640, -1), (640.0, 480), (True, 480)])
    def test_bad_size(self, size):
        with pytest.raises(ValueError, match="positive int"):
            Camera.from_intrinsics(500, 500, 320, 240, *size)

    def test_frozen(self):
        cam = _camera()
        with pytest.raises(AttributeError):
            cam.width = 3


class TestProject:
    def test_golden(self):
        cam = Camera.from_intrinsics(500, 510, 319.5, 239.5, 640, 480)
        uv, z = cam.project(torch.tensor([[0.1, -0.05, 0.5], [0.0, 0.0, 2.0]]))
        torch.testing.assert_close(uv, torch.tensor([[419.5, 188.5], [319.5, 239.5]]))
        torch.testing.assert_close(z, torch.tensor([0.5, 2.0]))

    def test_golden_posed(self):
        # Camera 1 m behind the origin along world -z, looking along +z: world origin at the centre.
        pose = torch.eye(4)
        pose[2, 3] = -1.0
        cam = Camera.from_intrinsics(500, 500, 320, 240, 640, 480, cam_to_world=pose)
        uv, z = cam.project(torch.tensor([[0.0, 0.0, 0.0], [0.2, 0.1, 1.0]]))
        torch.testing.assert_close(uv, torch.tensor([[320.0, 240.0], [370.0, 265.0]]))
        torch.testing.assert_close(z, torch.tensor([1.0, 2.0]))

    @pytest.mark.parametrize("batch", [(), (1,), (2,), (5,), (2, 3)])
    def test_shapes(self, batch):
        cam = _camera()
        pts = _points_in_front(cam, 7).expand(*batch, 7, 3)
        uv, z = cam.project(pts)
        assert uv.shape == (*batch, 7, 2) and z.shape == (*batch, 7)

    def test_matches_pure_function(self):
        cam = _camera()
        pts = _points_in_front(cam, 20)
        uv, _ = cam.project(pts)
        ref = project_points(transform_points(cam.world_to_cam(), pts), cam.K)
        torch.testing.assert_close(uv, ref)

    def test_behind_camera_reported_by_z(self):
        cam = Camera.from_intrinsics(500, 500, 320, 240, 640, 480)
        uv, z = cam.project(torch.tensor([[0.1, 0.1, -1.0], [0.1, 0.1, 0.0]]))
        assert torch.isfinite(uv).all()
        assert (z <= 0).all()

    def test_gradient(self):
        cam = _camera(dtype=torch.float64)
        pts = _points_in_front(cam, 4).requires_grad_(True)
        assert torch.autograd.gradcheck(lambda p: cam.project(p)[0], (pts,))

    def test_bad_points(self):
        with pytest.raises(ValueError, match=r"\(\.\.\., N, 3\)"):
            _camera().project(torch.zeros(5, 2))
        with pytest.raises(ValueError, match=r"\(\.\.\., N, 3\)"):
            _camera().project(torch.zeros(3))


class TestUnproject:
    def test_roundtrip_world(self):
        cam = _camera(dtype=torch.float64)
        g = torch.Generator().manual_seed(0)
        depth = 0.5 + torch.rand(cam.height, cam.width, generator=g, dtype=torch.float64)
        pts = cam.unproject_depth(depth)
        assert pts.shape == (cam.height * cam.width, 3)
        uv, z = cam.project(pts)
        vv, uu = torch.meshgrid(torch.arange(cam.height, dtype=torch.float64),
                                torch.arange(cam.width, dtype=torch.float64), indexing="ij")
        torch.testing.assert_close(uv, torch.stack([uu, vv], -1).reshape(-1, 2))
        torch.testing.assert_close(z, depth.reshape(-1))

    def test_invalid_and_mask(self):
        cam = Camera.from_intrinsics(100, 100, 1.5, 1.0, 4, 3)
        depth = torch.full((3, 4), 1.0)
        depth[0, 0] = 0.0
        depth[1, 1] = float("nan")
        depth[2, 3] = -1.0
        assert cam.unproject_depth(depth).shape == (9, 3)
        mask = torch.zeros(3, 4, dtype=torch.bool)
        mask[0, :2] = True
        mask[2, 2] = True
        pts = cam.unproject_depth(depth, mask=mask, frame="camera")
        # (0, 0) has zero depth; (0, 1) and (2, 2) remain, row-major.
        torch.testing.assert_close(pts, torch.tensor([[(1 - 1.5) / 100, (0 - 1.0) / 100, 1.0],
                                                      [(2 - 1.5) / 100, (2 - 1.0) / 100, 1.0]]))

    def test_camera_vs_world_frame(self):
        cam = _camera()
        depth = torch.full((cam.height, cam.width), 0.8)
        pc = cam.unproject_depth(depth, frame="camera")
        pw = cam.unproject_depth(depth, frame="world")
        torch.testing.assert_close(transform_points(cam.cam_to_world, pc), pw)

    def test_bad_inputs(self):
        cam = _camera()
        with pytest.raises(ValueError, match=r"\(480, 640\)"):
            cam.unproject_depth(torch.ones(240, 320))
        with pytest.raises(ValueError, match="frame"):
            cam.unproject_depth(torch.ones(480, 640), frame="opengl")
        with pytest.raises(ValueError, match="mask"):
            cam.unproject_depth(torch.ones(480, 640), mask=torch.ones(2, 2, dtype=torch.bool))


class TestRescaleAndTo:
    def test_rescaled_golden(self):
        cam = Camera.from_intrinsics(500, 510, 319.5, 239.5, 640, 480)
        half = cam.rescaled(320, 240)
        assert (half.width, half.height) == (320, 240)
        assert half.fx == 250 and half.fy == 255
        assert half.cx == pytest.approx((319.5 + 0.5) * 0.5 - 0.5) and half.cy == pytest.approx(119.5)

    def test_rescaled_pixel_centre_correct(self):
        # A point's projection maps between the two images by u' = (u + 0.5) s - 0.5.
        cam = _camera()
        small = cam.rescaled(160, 120)
        pts = _points_in_front(cam, 10)
        uv, _ = cam.project(pts)
        uv_small, _ = small.project(pts)
        torch.testing.assert_close(uv_small, (uv + 0.5) * 0.25 - 0.5, rtol=1e-5, atol=1e-4)
        back = small.rescaled(640, 480)
        torch.testing.assert_close(back.K, cam.K)

    def test_to_dtype(self):
        cam = _camera().to(dtype=torch.float64)
        assert cam.K.dtype == torch.float64 and cam.cam_to_world.dtype == torch.float64
        assert cam.name == "0"

    @pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
    def test_to_cuda(self):
        cam = _camera().to("cuda")
        uv, _ = cam.project(_points_in_front(_camera(), 3).cuda())
        assert uv.is_cuda


class TestCameraBatch:
    def test_stack_and_project(self):
        cams = [_camera("a"), _camera("b", rotvec=(0.0, 0.3, 0.0), transl=(0.2, 0.0, 0.0)),
                _camera("c", rotvec=(0.0, 0.0, 0.0), transl=(0.0, 0.0, 0.0))]
        batch = stack_cameras(cams)
        assert isinstance(batch, CameraBatch) and len(batch) == 3 and batch.names == ("a", "b", "c")
        assert batch.K.shape == (3, 3, 3) and batch.world_to_cam.shape == (3, 4, 4)
        pts = _points_in_front(cams[0], 6)
        uv, z = batch.project(pts)
        assert uv.shape == (3, 6, 2) and z.shape == (3, 6)
        for i, cam in enumerate(cams):
            uv_i, z_i = cam.project(pts)
            torch.testing.assert_close(uv[i], uv_i)
            torch.testing.assert_close(z[i], z_i)
        uv5, _ = batch.project(pts.expand(5, 6, 3))
        assert uv5.shape == (3, 5, 6, 2)
        torch.testing.assert_close(batch.cam_to_world()[1], cams[1].cam_to_world, atol=1e-6, rtol=0)
        torch.testing.assert_close(batch.camera(1).K, cams[1].K)

    def test_single_camera(self):
        batch = stack_cameras([_camera()])
        assert len(batch) == 1

    def test_resolution_mismatch(self):
        with pytest.raises(ValueError, match="resolution"):
            stack_cameras([_camera("a"), _camera("b").rescaled(320, 240)])

    def test_dtype_mismatch(self):
        with pytest.raises(ValueError, match="dtype"):
            stack_cameras([_camera("a"), _camera("b", dtype=torch.float64)])

    def test_empty(self):
        with pytest.raises(ValueError, match="at least one"):
            stack_cameras([])

    def test_bad_shapes(self):
        with pytest.raises(ValueError, match=r"\(C, 3, 3\)"):
            CameraBatch(torch.zeros(3, 3), torch.zeros(1, 4, 4), 4, 4)
        with pytest.raises(ValueError, match=r"\(2, 4, 4\)"):
            CameraBatch(torch.zeros(2, 3, 3), torch.zeros(1, 4, 4), 4, 4)


def test_world_to_cam_is_inverse():
    cam = _camera(dtype=torch.float64)
    torch.testing.assert_close(cam.world_to_cam() @ cam.cam_to_world, torch.eye(4, dtype=torch.float64))
    torch.testing.assert_close(invert_rigid(cam.world_to_cam()), cam.cam_to_world)
    assert math.isclose(float(torch.linalg.det(cam.world_to_cam()[:3, :3])), 1.0, rel_tol=1e-9)


def test_look_at():
    import numpy as np

    from honnotate.geometry import look_at

    T = look_at([0.0, 0.0, 0.0], [0.0, 0.0, 1.0])
    np.testing.assert_allclose(T, np.eye(4), atol=1e-12)
    T = look_at([0.3, -0.2, 0.1], [0.0, 0.0, 0.6])
    R = T[:3, :3]
    np.testing.assert_allclose(R.T @ R, np.eye(3), atol=1e-12)
    assert np.linalg.det(R) > 0
    z = np.array([0.0, 0.0, 0.6]) - T[:3, 3]
    np.testing.assert_allclose(R[:, 2], z / np.linalg.norm(z), atol=1e-12)
    with pytest.raises(ValueError, match="coincide"):
        look_at([0, 0, 0], [0, 0, 0])
