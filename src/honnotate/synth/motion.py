"""Smooth object trajectories and slow grasp drift for synthetic captures.

The held object moves along a smooth 6D trajectory: translation through random keyframes in a
workspace box (cubic spline, zero velocity at the ends), rotation through random keyframe
rotations within +-``max_rotation`` of a base orientation (C2 rotation spline). The grasp drifts
slowly: each finger joint's anatomical angles follow a smooth random curve of a few degrees
over the sequence, as in real single-camera captures where the grasp is never perfectly rigid.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["MotionConfig", "ObjectTrajectory", "object_trajectory", "grasp_drift", "smooth_curve"]


@dataclass(frozen=True)
class MotionConfig:
    """Trajectory settings (metres, radians).

    workspace_centre: (3,) centre of the workspace in the world frame.
    workspace_size: edge of the cubic workspace the object centre stays in.
    max_rotation: largest rotation away from the base orientation.
    keyframes_per_100: trajectory keyframes per 100 frames (more: faster motion).
    drift_amplitude: largest grasp drift per joint angle over the sequence.
    """

    workspace_centre: tuple[float, float, float] = (0.0, 0.0, 0.6)
    workspace_size: float = 0.4
    max_rotation: float = np.pi / 2
    keyframes_per_100: float = 4.0
    drift_amplitude: float = 0.06


@dataclass(frozen=True)
class ObjectTrajectory:
    """Per-frame object poses: ``rotvec`` (N, 3) axis-angle and ``transl`` (N, 3) metres,
    object-to-world (posed point = R(rotvec) p + transl)."""

    rotvec: np.ndarray
    transl: np.ndarray


def smooth_curve(n_frames: int, n_keys: int, dims: int, rng: np.random.Generator, amplitude: float = 1.0) -> np.ndarray:
    """(n_frames, dims) smooth random curve through ``n_keys`` uniform keyframes in
    [-amplitude, amplitude], cubic spline with clamped (zero-velocity) ends."""
    from scipy.interpolate import CubicSpline

    n_keys = max(2, int(n_keys))
    if n_frames == 1:
        return rng.uniform(-amplitude, amplitude, (1, dims))
    keys_t = np.linspace(0, n_frames - 1, n_keys)
    keys = rng.uniform(-amplitude, amplitude, (n_keys, dims))
    return CubicSpline(keys_t, keys, bc_type="clamped")(np.arange(n_frames))


def object_trajectory(n_frames: int, config: MotionConfig, rng: np.random.Generator,
                      base_rotvec: np.ndarray | None = None) -> ObjectTrajectory:
    """Smooth object poses for ``n_frames`` frames (see :class:`ObjectTrajectory`)."""
    from scipy.spatial.transform import Rotation, RotationSpline

    if n_frames < 1:
        raise ValueError(f"n_frames must be >= 1, got {n_frames}")
    n_keys = max(2, int(round(config.keyframes_per_100 * n_frames / 100.0)) + 1)
    centre = np.asarray(config.workspace_centre, dtype=np.float64)
    transl = centre + smooth_curve(n_frames, n_keys, 3, rng, amplitude=0.5 * config.workspace_size)
    # A cubic spline can overshoot its keyframes slightly: keep the centre inside the box.
    transl = np.clip(transl, centre - 0.5 * config.workspace_size, centre + 0.5 * config.workspace_size)
    base = Rotation.from_rotvec(np.zeros(3) if base_rotvec is None else np.asarray(base_rotvec, dtype=np.float64))
    if n_frames == 1:
        return ObjectTrajectory(rotvec=base.as_rotvec()[None], transl=transl)
    keys_t = np.linspace(0, n_frames - 1, n_keys)
    axes = rng.normal(size=(n_keys, 3))
    axes /= np.linalg.norm(axes, axis=1, keepdims=True)
    # Angles uniform in [0, max_rotation]: the spline between keys stays within the bound
    # up to the spline's small overshoot, which is checked by the tests.
    angles = rng.uniform(0, config.max_rotation * 0.9, n_keys)
    angles[0] = rng.uniform(0, 0.3 * config.max_rotation)
    keys = Rotation.from_rotvec(axes * angles[:, None]) * base
    rot = RotationSpline(keys_t, keys)(np.arange(n_frames))
    return ObjectTrajectory(rotvec=rot.as_rotvec(), transl=transl)


def grasp_drift(n_frames: int, config: MotionConfig, rng: np.random.Generator, n_joints: int = 15) -> np.ndarray:
    """(n_frames, n_joints, 3) anatomical angle offsets (radians), smooth, within
    +-``drift_amplitude``, zero mean over the sequence start (frame 0 has no drift)."""
    n_keys = max(2, int(round(n_frames / 60.0)) + 2)
    d = smooth_curve(n_frames, n_keys, n_joints * 3, rng, amplitude=config.drift_amplitude).reshape(n_frames, n_joints, 3)
    d = d - d[:1]
    return np.clip(d, -config.drift_amplitude, config.drift_amplitude)
