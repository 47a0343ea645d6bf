"""Named converters between the OpenCV camera frame (internal) and the OpenGL one (HO-3D).

OpenCV: x right, y down, z forward (points in front of the camera have z > 0).
OpenGL: x right, y up, z backward (points in front of the camera have z < 0), as in HO-3D's
annotation files (``handJoints3D``, ``objRot``/``objTrans``, ...). The two frames differ by
the flip ``F = diag(1, -1, -1)``, which is its own inverse, so every converter here is an
involution; the two names of each pair exist so that call sites say which way they go.

Poses: an object pose ``(R, t)`` maps object-frame points ``v`` to camera-frame points
``v @ R.T + t``; in the other camera frame it is ``(F R, F t)`` (the object frame is
unchanged). A camera-to-world extrinsic ``T`` becomes ``T diag(F, 1)``; a world-to-camera
extrinsic becomes ``diag(F, 1) T`` (the world frame is unchanged).
"""

from __future__ import annotations

import torch

from honnotate.geometry.transforms import axis_angle_to_matrix, matrix_to_axis_angle

__all__ = [
    "opencv_to_opengl_points",
    "opengl_to_opencv_points",
    "opencv_to_opengl_pose",
    "opengl_to_opencv_pose",
    "cam_to_world_opengl_to_opencv",
    "cam_to_world_opencv_to_opengl",
    "world_to_cam_opengl_to_opencv",
    "world_to_cam_opencv_to_opengl",
    "ho3d_project",
]


def _flip_vector(x: torch.Tensor) -> torch.Tensor:
    return x * torch.tensor([1.0, -1.0, -1.0], dtype=x.dtype, device=x.device)


def _check_points(points: torch.Tensor, name: str) -> None:
    if not isinstance(points, torch.Tensor) or points.dim() < 1 or points.shape[-1] != 3:
        shape = tuple(points.shape) if isinstance(points, torch.Tensor) else type(points).__name__
        raise ValueError(f"{name} must have shape (..., 3), got {shape}")


def opencv_to_opengl_points(points: torch.Tensor) -> torch.Tensor:
    """Points from the OpenCV camera frame to the OpenGL one (multiply by diag(1, -1, -1)).

    Args:
        points: (..., 3) float, metres, camera frame (OpenCV).

    Returns:
        (..., 3) metres, camera frame (OpenGL).
    """
    _check_points(points, "points")
    return _flip_vector(points)


def opengl_to_opencv_points(points: torch.Tensor) -> torch.Tensor:
    """Points from the OpenGL camera frame (HO-3D) to the OpenCV one (diag(1, -1, -1)).

    Args:
        points: (..., 3) float, metres, camera frame (OpenGL).

    Returns:
        (..., 3) metres, camera frame (OpenCV).
    """
    _check_points(points, "points")
    return _flip_vector(points)


def _flip_pose(rotation: torch.Tensor, transl: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    _check_points(transl, "transl")
    if not isinstance(rotation, torch.Tensor):
        raise TypeError(f"rotation must be a torch.Tensor, got {type(rotation).__name__}")
    if rotation.shape == transl.shape:  # axis-angle (..., 3)
        rot = axis_angle_to_matrix(rotation)
        flipped = _flip_vector(rot.transpose(-1, -2)).transpose(-1, -2)  # F @ R: negate rows 1, 2
        return matrix_to_axis_angle(flipped), _flip_vector(transl)
    if rotation.shape == transl.shape[:-1] + (3, 3):  # matrices (..., 3, 3)
        flipped = _flip_vector(rotation.transpose(-1, -2)).transpose(-1, -2)
        return flipped, _flip_vector(transl)
    raise ValueError(
        "rotation must be axis-angle with the shape of transl (..., 3) or matrices (..., 3, 3); "
        f"got rotation {tuple(rotation.shape)} and transl {tuple(transl.shape)}"
    )


def opencv_to_opengl_pose(rotation: torch.Tensor, transl: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Object pose in the OpenCV camera frame to the OpenGL one: ``(F R, F t)``.

    Args:
        rotation: (..., 3) axis-angle (radians) or (..., 3, 3) rotation matrices; the form is
            returned unchanged (told apart by comparing with ``transl``'s shape).
        transl: (..., 3) metres.

    Returns:
        ``(rotation, transl)`` of the same shapes, OpenGL camera frame.
    """
    return _flip_pose(rotation, transl)


def opengl_to_opencv_pose(rotation: torch.Tensor, transl: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Object pose in the OpenGL camera frame (HO-3D ``objRot``, ``objTrans``) to OpenCV.

    Args:
        rotation: (..., 3) axis-angle (radians) or (..., 3, 3) rotation matrices.
        transl: (..., 3) metres.

    Returns:
        ``(rotation, transl)`` of the same shapes, OpenCV camera frame.
    """
    return _flip_pose(rotation, transl)


def _check_T(T: torch.Tensor) -> None:
    if not isinstance(T, torch.Tensor) or T.dim() < 2 or tuple(T.shape[-2:]) != (4, 4):
        shape = tuple(T.shape) if isinstance(T, torch.Tensor) else type(T).__name__
        raise ValueError(f"T must have shape (..., 4, 4), got {shape}")


def _flip4(T: torch.Tensor) -> torch.Tensor:
    return torch.tensor([1.0, -1.0, -1.0, 1.0], dtype=T.dtype, device=T.device)


def cam_to_world_opengl_to_opencv(T: torch.Tensor) -> torch.Tensor:
    """Camera-to-world extrinsics of an OpenGL camera frame to those of the OpenCV frame.

    Args:
        T: (..., 4, 4) camera(OpenGL)-to-world rigid transforms, metres.

    Returns:
        (..., 4, 4) camera(OpenCV)-to-world transforms, ``T @ diag(1, -1, -1, 1)``.
    """
    _check_T(T)
    return T * _flip4(T)  # scales columns


def cam_to_world_opencv_to_opengl(T: torch.Tensor) -> torch.Tensor:
    """Camera(OpenCV)-to-world (..., 4, 4) to camera(OpenGL)-to-world, ``T @ diag(1, -1, -1, 1)``."""
    _check_T(T)
    return T * _flip4(T)


def world_to_cam_opengl_to_opencv(T: torch.Tensor) -> torch.Tensor:
    """World-to-camera(OpenGL) (..., 4, 4) to world-to-camera(OpenCV), ``diag(1, -1, -1, 1) @ T``."""
    _check_T(T)
    return T * _flip4(T)[:, None]  # scales rows


def world_to_cam_opencv_to_opengl(T: torch.Tensor) -> torch.Tensor:
    """World-to-camera(OpenCV) (..., 4, 4) to world-to-camera(OpenGL), ``diag(1, -1, -1, 1) @ T``."""
    _check_T(T)
    return T * _flip4(T)[:, None]


def ho3d_project(points_gl: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
    """Project OpenGL camera-frame points exactly as the HO-3D toolkit does.

    The recipe: multiply by diag(1, -1, -1), then by ``K``, then divide by the third
    coordinate. No clamping: points behind the camera (``z_gl >= 0``) give inf/garbage.

    Args:
        points_gl: (..., N, 3) float, metres, camera frame (OpenGL).
        K: (3, 3) (or (..., 3, 3), broadcast) intrinsics, pixels (HO-3D ``camMat``).

    Returns:
        (..., N, 2) pixel coordinates.
    """
    if not isinstance(points_gl, torch.Tensor) or points_gl.dim() < 2 or points_gl.shape[-1] != 3:
        shape = tuple(points_gl.shape) if isinstance(points_gl, torch.Tensor) else type(points_gl).__name__
        raise ValueError(f"points_gl must have shape (..., N, 3), got {shape}")
    if not isinstance(K, torch.Tensor) or K.dim() < 2 or tuple(K.shape[-2:]) != (3, 3):
        raise ValueError(f"K must have shape (3, 3), got {getattr(K, 'shape', None)}")
    p = _flip_vector(points_gl)
    p = p @ K.to(p.dtype).transpose(-1, -2)
    return p[..., :2] / p[..., 2:3]
