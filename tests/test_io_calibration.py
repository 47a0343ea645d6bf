"""honnotate.io.calibration: intrinsics, depth scale and camera-to-world files."""

from __future__ import annotations

import numpy as np
import pytest
import roma
import torch

from honnotate.io.calibration import (
    CameraCalibration,
    read_cam_to_world,
    read_depth_scale,
    read_intrinsics,
    rigidity_error,
    write_cam_to_world,
    write_depth_scale,
    write_intrinsics,
)
from honnotate.io.files import CaptureFormatError


def _rigid(seed=0):
    g = torch.Generator().manual_seed(seed)
    T = np.eye(4)
    T[:3, :3] = roma.rotvec_to_rotmat(torch.randn(3, generator=g, dtype=torch.float64)).numpy()
    T[:3, 3] = [0.3, -0.1, 0.8]
    return T


def test_intrinsics_round_trip(tmp_path):
    K = np.array([[617.343, 0.0, 312.42], [0.0, 618.1, 241.42], [0.0, 0.0, 1.0]])
    p = write_intrinsics(tmp_path / "cam_0_intrinsics.txt", K, 640, 480)
    assert p.read_text().startswith("fx: 617.343, fy: 618.1, ppx: 312.42, ppy: 241.42,")
    K2, size = read_intrinsics(p)
    np.testing.assert_array_equal(K2, K)
    assert size == (640, 480)


@pytest.mark.parametrize("text,size", [
    ("fx: 614.627, fy: 614.101, ppx: 320.262, ppy: 238.469", None),  # HO-3D v3 one-liner
    ("width: 640, height: 480, ppx: 320.262, ppy: 238.469, fx: 614.627, fy: 614.101, model: 2, "
     "coeffs: [0, 0, 0, 0, 0]", (640, 480)),  # RealSense rs2_intrinsics print-out
    ("fx: 614.627\nfy: 614.101\nppx: 320.262\nppy: 238.469\n", None),
    ("fx=6.14627e2 fy=614.101 ppx=320.262 ppy=238.469", None),
])
def test_intrinsics_formats(tmp_path, text, size):
    p = tmp_path / "i.txt"
    p.write_text(text)
    K, got_size = read_intrinsics(p)
    np.testing.assert_allclose(K, [[614.627, 0, 320.262], [0, 614.101, 238.469], [0, 0, 1]])
    assert got_size == size


def test_intrinsics_errors_name_file(tmp_path):
    p = tmp_path / "cam_3_intrinsics.txt"
    p.write_text("fx: 600, fy: 600, ppx: 320")
    with pytest.raises(CaptureFormatError, match=r"cam_3_intrinsics.txt: missing intrinsics \['ppy'\]"):
        read_intrinsics(p)
    with pytest.raises(FileNotFoundError, match="cam_9_intrinsics.txt"):
        read_intrinsics(tmp_path / "cam_9_intrinsics.txt")
    with pytest.raises(ValueError, match=r"\(3, 3\)"):
        write_intrinsics(tmp_path / "x.txt", np.eye(4))


def test_depth_scale_round_trip_and_errors(tmp_path):
    p = write_depth_scale(tmp_path / "cam_0_depth_scale.txt", 0.00012498664727900177)
    assert read_depth_scale(p) == 0.00012498664727900177
    for bad in ("", "abc", "-0.001", "0", "nan"):
        p.write_text(bad)
        with pytest.raises(CaptureFormatError, match="cam_0_depth_scale.txt"):
            read_depth_scale(p)
    with pytest.raises(ValueError):
        write_depth_scale(tmp_path / "x.txt", 0.0)


def test_cam_to_world_round_trip(tmp_path):
    T = _rigid()
    p = write_cam_to_world(tmp_path / "trans_1.txt", torch.from_numpy(T))
    np.testing.assert_array_equal(read_cam_to_world(p), T)
    np.testing.assert_array_equal(np.loadtxt(p), T)  # what the HO-3D toolkit reads


def test_cam_to_world_errors_name_file(tmp_path):
    p = tmp_path / "trans_2.txt"
    p.write_text("1 0 0 0\n0 1 0 0\n0 0 1 0\n")
    with pytest.raises(CaptureFormatError, match="trans_2.txt.*got 12"):
        read_cam_to_world(p)
    p.write_text("1 0 0 0\n0 1 0 0\n0 0 1 x\n0 0 0 1\n")
    with pytest.raises(CaptureFormatError, match="trans_2.txt"):
        read_cam_to_world(p)


def test_rigidity_error_golden():
    T = _rigid(1)
    assert rigidity_error(T) < 1e-12
    assert rigidity_error(T.astype(np.float32)) < 1e-6
    S = T.copy()
    S[:3, :3] *= 2.0  # scaled
    assert rigidity_error(S) == pytest.approx(7.0)  # det 8 - 1
    M = T.copy()
    M[:3, 0] *= -1  # mirrored
    assert rigidity_error(M) == pytest.approx(2.0)
    with pytest.raises(ValueError, match=r"\(4, 4\)"):
        rigidity_error(np.eye(3))


def test_calibration_to_camera():
    K = np.array([[600.0, 0, 31.5], [0, 601.0, 23.5], [0, 0, 1]])
    T = _rigid(2)
    cam = CameraCalibration("1", K, T, 0.001, 64, 48).to_camera()
    assert (cam.width, cam.height, cam.name) == (64, 48, "1")
    assert cam.K.dtype == torch.float32
    np.testing.assert_allclose(cam.K.numpy(), K, rtol=1e-6)
    np.testing.assert_allclose(cam.cam_to_world.numpy(), T, atol=1e-6)
    with pytest.raises(ValueError, match="camera 1: image size unknown"):
        CameraCalibration("1", K, T).to_camera()
