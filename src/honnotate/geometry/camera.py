"""Pinhole cameras (OpenCV frame) and batches of cameras for multi-view rendering.

A :class:`Camera` holds intrinsics ``K`` (pixels) and the camera-to-world rigid transform of
an OpenCV camera frame (x right, y down, z forward), with the image size. Pixel centres are
at integer coordinates: pixel ``(u, v)`` covers ``[u-0.5, u+0.5] x [v-0.5, v+0.5]``, so the
image spans ``[-0.5, W-0.5] x [-0.5, H-0.5]``. With one camera, the world frame is usually the
camera frame (``cam_to_world`` = identity).

A :class:`CameraBatch` stacks C cameras of one resolution (``world_to_cam`` stored, as
renderers need it) for renderers and energy terms that process all views in one call.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from honnotate.geometry.projection import depth_to_points, project_points
from honnotate.geometry.transforms import invert_rigid, transform_points

__all__ = ["Camera", "CameraBatch", "stack_cameras", "look_at", "RIGID_TOLERANCE"]

#: Tolerance on ``R^T R - I`` (max abs) and the last row for a matrix to count as rigid.
RIGID_TOLERANCE = 1e-4


def look_at(eye, target, up=(0.0, -1.0, 0.0)) -> np.ndarray:
    """(4, 4) float64 camera-to-world (OpenCV camera) of a camera at ``eye`` looking at ``target``.

    Args:
        eye, target: (3,) world points, metres. up: (3,) world direction that appears up in the
            image (default -y: the world is camera 0's OpenCV frame, y down).

    The camera's z points at the target, its x is ``z x up`` (image right), its y is ``z x x``.
    """
    eye = np.asarray(eye, dtype=np.float64)
    z = np.asarray(target, dtype=np.float64) - eye
    if np.linalg.norm(z) < 1e-12:
        raise ValueError("look_at: eye and target coincide")
    z /= np.linalg.norm(z)
    x = np.cross(z, np.asarray(up, dtype=np.float64))
    if np.linalg.norm(x) < 1e-9:  # looking along `up`: any image right will do
        x = np.cross(z, np.array([1.0, 0.0, 0.0]))
    x /= np.linalg.norm(x)
    T = np.eye(4)
    T[:3, :3] = np.stack([x, np.cross(z, x), z], 1)
    T[:3, 3] = eye
    return T


def _validate_K(K: torch.Tensor, where: str) -> None:
    if tuple(K.shape) != (3, 3):
        raise ValueError(f"{where}: K must have shape (3, 3), got {tuple(K.shape)}")
    if not torch.isfinite(K).all():
        raise ValueError(f"{where}: K has non-finite entries")
    k = K.detach().double().cpu()
    if not (k[0, 0] > 0 and k[1, 1] > 0):
        raise ValueError(f"{where}: focal lengths must be positive, got fx={k[0, 0]:.6g}, fy={k[1, 1]:.6g}")
    expected_rows = torch.tensor([0.0, 0.0, 0.0, 1.0], dtype=torch.float64)
    if not torch.allclose(torch.stack([k[1, 0], k[2, 0], k[2, 1], k[2, 2]]), expected_rows, atol=1e-6):
        raise ValueError(f"{where}: K must be [[fx, s, cx], [0, fy, cy], [0, 0, 1]], got {k.tolist()}")


def _validate_rigid(T: torch.Tensor, name: str, where: str) -> None:
    if tuple(T.shape[-2:]) != (4, 4):
        raise ValueError(f"{where}: {name} must have shape (4, 4), got {tuple(T.shape)}")
    if not torch.isfinite(T).all():
        raise ValueError(f"{where}: {name} has non-finite entries")
    t = T.detach().double().cpu()
    last = torch.tensor([0.0, 0.0, 0.0, 1.0], dtype=torch.float64)
    if (t[..., 3, :] - last).abs().max() > RIGID_TOLERANCE:
        raise ValueError(f"{where}: the last row of {name} must be [0, 0, 0, 1], got {t[..., 3, :].tolist()}")
    rot = t[..., :3, :3]
    err = (rot.transpose(-1, -2) @ rot - torch.eye(3, dtype=torch.float64)).abs().max()
    if err > RIGID_TOLERANCE:
        raise ValueError(
            f"{where}: the rotation block of {name} is not orthonormal (max |R^T R - I| = {err:.3g} > "
            f"{RIGID_TOLERANCE}); is it a scaled or projective matrix?"
        )
    if (torch.linalg.det(rot) <= 0).any():
        raise ValueError(f"{where}: the rotation block of {name} is a reflection (det < 0)")


def _validate_size(width: int, height: int, where: str) -> None:
    for label, value in (("width", width), ("height", height)):
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ValueError(f"{where}: {label} must be a positive int, got {value!r}")


@dataclass(frozen=True, eq=False)
class Camera:
    """One pinhole camera: intrinsics, pose and image size.

    Attributes:
        K: (3, 3) float intrinsics ``[[fx, s, cx], [0, fy, cy], [0, 0, 1]]``, pixels.
        cam_to_world: (4, 4) rigid transform from the camera frame (OpenCV) to the world
            frame, metres; same dtype and device as ``K`` (converted on construction).
        width, height: image size in pixels.
        name: camera identifier (the ``<cam>`` of the data layout).

    Raises:
        ValueError: on a malformed ``K`` (shape, non-positive focal length, bad last rows), a
            non-rigid ``cam_to_world`` or a non-positive size; the message names the camera.
    """

    K: torch.Tensor
    cam_to_world: torch.Tensor
    width: int
    height: int
    name: str = "0"

    def __post_init__(self) -> None:
        where = f"camera {self.name!r}"
        if not isinstance(self.K, torch.Tensor) or not isinstance(self.cam_to_world, torch.Tensor):
            raise TypeError(f"{where}: K and cam_to_world must be torch tensors")
        K = self.K if self.K.is_floating_point() else self.K.to(torch.float32)
        object.__setattr__(self, "K", K)
        object.__setattr__(self, "cam_to_world", self.cam_to_world.to(dtype=K.dtype, device=K.device))
        _validate_K(self.K, where)
        if self.cam_to_world.dim() != 2:
            raise ValueError(f"{where}: cam_to_world must have shape (4, 4), got {tuple(self.cam_to_world.shape)}")
        _validate_rigid(self.cam_to_world, "cam_to_world", where)
        _validate_size(self.width, self.height, where)

    @classmethod
    def from_intrinsics(
        cls,
        fx: float,
        fy: float,
        cx: float,
        cy: float,
        width: int,
        height: int,
        cam_to_world: torch.Tensor | None = None,
        name: str = "0",
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
    ) -> Camera:
        """Camera from focal lengths and principal point (pixels); identity pose by default.

        ``cam_to_world``: (4, 4) camera(OpenCV)-to-world transform, metres, or None (identity).
        """
        K = torch.tensor([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]], dtype=dtype, device=device)
        if cam_to_world is None:
            cam_to_world = torch.eye(4, dtype=dtype, device=K.device)
        return cls(K=K, cam_to_world=cam_to_world, width=width, height=height, name=name)

    # --- scalar views ------------------------------------------------------------------
    @property
    def fx(self) -> float:
        return float(self.K[0, 0])

    @property
    def fy(self) -> float:
        return float(self.K[1, 1])

    @property
    def cx(self) -> float:
        return float(self.K[0, 2])

    @property
    def cy(self) -> float:
        return float(self.K[1, 2])

    @property
    def device(self) -> torch.device:
        return self.K.device

    @property
    def dtype(self) -> torch.dtype:
        return self.K.dtype

    @property
    def center(self) -> torch.Tensor:
        """(3,) camera centre in the world frame, metres."""
        return self.cam_to_world[:3, 3]

    # --- derived cameras ---------------------------------------------------------------
    def world_to_cam(self) -> torch.Tensor:
        """(4, 4) world-to-camera(OpenCV) rigid transform (exact rigid inverse)."""
        return invert_rigid(self.cam_to_world)

    def rescaled(self, width: int, height: int) -> Camera:
        """The same camera for an image resampled to ``width x height`` pixels.

        Pixel-centre correct: the image edges ``-0.5`` and ``W - 0.5`` map onto the new edges,
        so ``fx' = fx sx``, ``cx' = (cx + 0.5) sx - 0.5`` with ``sx = width / self.width``
        (likewise y; the skew scales with ``sx``). The pose is unchanged.
        """
        _validate_size(width, height, f"camera {self.name!r} rescaled")
        sx = width / self.width
        sy = height / self.height
        scale = torch.tensor([[sx, sx, 0.0], [0.0, sy, 0.0], [0.0, 0.0, 1.0]], dtype=self.dtype, device=self.device)
        K = self.K * scale
        K = K.clone()
        K[0, 2] = (self.K[0, 2] + 0.5) * sx - 0.5
        K[1, 2] = (self.K[1, 2] + 0.5) * sy - 0.5
        return Camera(K=K, cam_to_world=self.cam_to_world, width=width, height=height, name=self.name)

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> Camera:
        """Copy on another device and/or dtype (floating point)."""
        return Camera(
            K=self.K.to(device=device, dtype=dtype),
            cam_to_world=self.cam_to_world.to(device=device, dtype=dtype),
            width=self.width,
            height=self.height,
            name=self.name,
        )

    # --- geometry ----------------------------------------------------------------------
    def project(self, points_world: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Project world points to pixels.

        Args:
            points_world: (..., N, 3) float, metres, world frame.

        Returns:
            ``(uv, z)``: (..., N, 2) pixel coordinates and (..., N) camera-frame depth in metres.
            Points with ``z <= 0`` are behind the camera: their ``uv`` is finite but
            meaningless (see :func:`~honnotate.geometry.project_points`); mask them with ``z``.
        """
        if not isinstance(points_world, torch.Tensor) or points_world.dim() < 2 or points_world.shape[-1] != 3:
            shape = tuple(points_world.shape) if isinstance(points_world, torch.Tensor) else type(points_world).__name__
            raise ValueError(f"points_world must have shape (..., N, 3), got {shape}")
        w2c = self.world_to_cam().to(device=points_world.device, dtype=points_world.dtype)
        points_cam = transform_points(w2c, points_world)
        uv = project_points(points_cam, self.K.to(device=points_world.device, dtype=points_world.dtype))
        return uv, points_cam[..., 2]

    def unproject_depth(
        self,
        depth: torch.Tensor,
        mask: torch.Tensor | None = None,
        frame: Literal["world", "camera"] = "world",
    ) -> torch.Tensor:
        """Point cloud of the valid pixels of a depth map of this camera.

        Args:
            depth: (H, W) float, metres along the camera z axis, H x W = this camera's size;
                valid pixels have a finite depth ``> 0``.
            mask: (H, W) bool, extra selection (e.g. a segmentation label), or None.
            frame: ``"world"`` or ``"camera"`` (OpenCV) for the output points.

        Returns:
            (N, 3) points of the valid pixels in row-major order, metres, in ``frame``.
        """
        if frame not in ("world", "camera"):
            raise ValueError(f"frame must be 'world' or 'camera', got {frame!r}")
        if not isinstance(depth, torch.Tensor) or tuple(depth.shape) != (self.height, self.width):
            shape = tuple(depth.shape) if isinstance(depth, torch.Tensor) else type(depth).__name__
            raise ValueError(
                f"camera {self.name!r}: depth must have shape (H, W) = ({self.height}, {self.width}), got {shape}"
            )
        points = depth_to_points(depth, self.K.to(device=depth.device, dtype=depth.dtype), mask)
        if frame == "world":
            points = transform_points(self.cam_to_world.to(device=depth.device, dtype=depth.dtype), points)
        return points


@dataclass(frozen=True, eq=False)
class CameraBatch:
    """C cameras of one resolution, stacked for multi-view processing.

    Attributes:
        K: (C, 3, 3) float intrinsics, pixels.
        world_to_cam: (C, 4, 4) world-to-camera(OpenCV) rigid transforms, metres.
        width, height: common image size in pixels.
        names: camera names, one per camera (empty when unknown).
    """

    K: torch.Tensor
    world_to_cam: torch.Tensor
    width: int
    height: int
    names: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.K, torch.Tensor) or self.K.dim() != 3 or tuple(self.K.shape[1:]) != (3, 3):
            raise ValueError(f"CameraBatch.K must have shape (C, 3, 3), got {getattr(self.K, 'shape', None)}")
        c = self.K.shape[0]
        if not isinstance(self.world_to_cam, torch.Tensor) or tuple(self.world_to_cam.shape) != (c, 4, 4):
            raise ValueError(
                f"CameraBatch.world_to_cam must have shape ({c}, 4, 4), got {getattr(self.world_to_cam, 'shape', None)}"
            )
        if self.names and len(self.names) != c:
            raise ValueError(f"CameraBatch.names must have {c} entries, got {len(self.names)}")
        _validate_size(self.width, self.height, "CameraBatch")
        object.__setattr__(self, "names", tuple(self.names))

    def __len__(self) -> int:
        return self.K.shape[0]

    @property
    def num_cameras(self) -> int:
        return self.K.shape[0]

    @property
    def device(self) -> torch.device:
        return self.K.device

    @property
    def dtype(self) -> torch.dtype:
        return self.K.dtype

    def cam_to_world(self) -> torch.Tensor:
        """(C, 4, 4) camera(OpenCV)-to-world rigid transforms."""
        return invert_rigid(self.world_to_cam)

    def camera(self, index: int) -> Camera:
        """The ``index``-th camera as a :class:`Camera`."""
        name = self.names[index] if self.names else str(index)
        return Camera(K=self.K[index], cam_to_world=invert_rigid(self.world_to_cam[index]),
                      width=self.width, height=self.height, name=name)

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> CameraBatch:
        """Copy on another device and/or dtype."""
        return CameraBatch(K=self.K.to(device=device, dtype=dtype),
                           world_to_cam=self.world_to_cam.to(device=device, dtype=dtype),
                           width=self.width, height=self.height, names=self.names)

    def project(self, points_world: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Project world points into every camera.

        Args:
            points_world: (..., N, 3) float, metres, world frame (shared by all cameras).

        Returns:
            ``(uv, z)``: (C, ..., N, 2) pixels and (C, ..., N) camera depth in metres
            (``z <= 0``: behind the camera, ``uv`` meaningless).
        """
        if not isinstance(points_world, torch.Tensor) or points_world.dim() < 2 or points_world.shape[-1] != 3:
            shape = tuple(points_world.shape) if isinstance(points_world, torch.Tensor) else type(points_world).__name__
            raise ValueError(f"points_world must have shape (..., N, 3), got {shape}")
        c = self.num_cameras
        extra = points_world.dim() - 2
        view = (c,) + (1,) * extra
        w2c = self.world_to_cam.to(device=points_world.device, dtype=points_world.dtype).reshape(*view, 4, 4)
        K = self.K.to(device=points_world.device, dtype=points_world.dtype).reshape(*view, 3, 3)
        points_cam = transform_points(w2c, points_world.unsqueeze(0))
        return project_points(points_cam, K), points_cam[..., 2]


def stack_cameras(cameras: Sequence[Camera]) -> CameraBatch:
    """Stack cameras of one resolution, dtype and device into a :class:`CameraBatch`.

    Raises:
        ValueError: if ``cameras`` is empty or the cameras differ in resolution, dtype or device
            (the message names the first mismatching camera).
    """
    cameras = list(cameras)
    if not cameras:
        raise ValueError("stack_cameras needs at least one camera")
    first = cameras[0]
    for cam in cameras[1:]:
        if (cam.width, cam.height) != (first.width, first.height):
            raise ValueError(
                f"cameras must share one resolution: camera {first.name!r} is {first.width}x{first.height}, "
                f"camera {cam.name!r} is {cam.width}x{cam.height} (use Camera.rescaled)"
            )
        if cam.dtype != first.dtype or cam.device != first.device:
            raise ValueError(
                f"cameras must share dtype and device: camera {first.name!r} is {first.dtype} on {first.device}, "
                f"camera {cam.name!r} is {cam.dtype} on {cam.device}"
            )
    return CameraBatch(
        K=torch.stack([c.K for c in cameras]),
        world_to_cam=torch.stack([c.world_to_cam() for c in cameras]),
        width=first.width,
        height=first.height,
        names=tuple(c.name for c in cameras),
    )
