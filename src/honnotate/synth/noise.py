"""Sensor noise for synthetic depth and degraded cues that imitate real detectors.

Depth (``depth_noise``), for a structured-light sensor (RealSense / Kinect-1 like) or a
time-of-flight one:

* axial Gaussian noise growing with distance: sigma(z) = a + b (z - 0.4)^2 (the Kinect model
  of Nguyen et al. 2012: a = 1.2 mm, b = 1.9 mm/m^2; ToF: a = 1.5 mm, b = 0.6 mm/m^2);
* quantisation: structured light quantises disparity (step ``disparity_step`` px with focal
  ``fx`` and ``baseline``: dz = z^2 step / (fx baseline)), then the PNG's depth unit;
* missing pixels: at depth discontinuities (a band along edges, shadowing), at grazing angles
  (surface normal nearly perpendicular to the ray), and random holes (blobs);
* ToF adds flying pixels: a fraction of edge pixels take the depth mixed between both sides.

Cues (``degrade_keypoints``, ``degrade_segmentation``): keypoint noise, outliers and
confidences; mask boundaries eroded or dilated; fingertips under-segmented (hand pixels near
the fingertip keypoints lost), the known failure of segmentation networks on this data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

__all__ = ["DepthNoiseConfig", "CueNoiseConfig", "depth_noise", "degrade_keypoints", "degrade_segmentation",
           "normals_from_depth"]


@dataclass(frozen=True)
class DepthNoiseConfig:
    """Depth sensor model (metres, pixels). See the module docstring."""

    kind: Literal["structured_light", "tof", "none"] = "structured_light"
    sigma_a: float = 0.0012
    sigma_b: float = 0.0019
    disparity_step: float = 1.0 / 8.0
    baseline: float = 0.05
    depth_unit: float = 0.001
    edge_threshold: float = 0.03
    edge_drop_prob: float = 0.6
    edge_band: int = 1
    grazing_cos: float = 0.2
    hole_rate: float = 2e-4
    hole_radius: tuple[int, int] = (2, 6)
    flying_pixel_prob: float = 0.3
    max_range: float = 2.0


@dataclass(frozen=True)
class CueNoiseConfig:
    """Degraded-cue model (pixels at 640x480; scaled with the image width).

    kp_sigma: keypoint noise; kp_outlier_prob: chance of an outlier keypoint (uniform in the
    hand's box, low-ish confidence); occluded_conf: mean confidence of occluded joints;
    mask_boundary: max erosion/dilation of each label's boundary (pixels, random sign);
    tip_radius: radius around each fingertip keypoint where hand pixels are lost (0 disables);
    tip_drop_prob: chance that one fingertip is under-segmented.
    """

    kp_sigma: float = 2.5
    kp_outlier_prob: float = 0.05
    occluded_conf: float = 0.35
    mask_boundary: int = 2
    tip_radius: float = 9.0
    tip_drop_prob: float = 0.7


def normals_from_depth(depth: np.ndarray, fx: float, fy: float) -> np.ndarray:
    """(H, W, 3) camera-frame unit normals from a depth map (m) by finite differences; pixels
    with no depth get (0, 0, -1)."""
    z = depth.astype(np.float64)
    dzdx = np.gradient(z, axis=1)
    dzdy = np.gradient(z, axis=0)
    # For a pinhole camera, a surface z(u, v) has normal ~ (-dz/du * fx / z, -dz/dv * fy / z, -1).
    with np.errstate(divide="ignore", invalid="ignore"):
        n = np.stack([dzdx * fx / np.maximum(z, 1e-6), dzdy * fy / np.maximum(z, 1e-6), -np.ones_like(z)], -1)
    n /= np.linalg.norm(n, axis=-1, keepdims=True)
    n[z <= 0] = (0, 0, -1)
    return n


def _disk(r: int) -> np.ndarray:
    y, x = np.mgrid[-r:r + 1, -r:r + 1]
    return (x * x + y * y <= r * r).astype(np.uint8)


def depth_noise(depth: np.ndarray, fx: float, fy: float, cx: float, cy: float, config: DepthNoiseConfig,
                rng: np.random.Generator) -> np.ndarray:
    """Noisy depth (H, W) float32 metres from a noise-free render (H, W) metres (0 = nothing)."""
    import cv2

    if depth.ndim != 2:
        raise ValueError(f"depth: expected (H, W), got {depth.shape}")
    z = depth.astype(np.float64).copy()
    valid = (z > 0) & (z < config.max_range)
    if config.kind == "none":
        return np.where(valid, z, 0).astype(np.float32)
    H, W = z.shape
    # Discontinuities (before noise): max depth difference to a 4-neighbour.
    zp = np.pad(np.where(valid, z, config.max_range), 1, mode="edge")
    jump = np.max(np.abs(np.stack([zp[1:-1, 2:], zp[1:-1, :-2], zp[2:, 1:-1], zp[:-2, 1:-1]]) - zp[1:-1, 1:-1]), axis=0)
    edges = (jump > config.edge_threshold)
    if config.edge_band > 0:
        edges = cv2.dilate(edges.astype(np.uint8), _disk(config.edge_band)) > 0
    edges &= valid
    # Grazing angles: |cos| between the normal and the viewing ray.
    n = normals_from_depth(np.where(valid, z, 0), fx, fy)
    u, v = np.meshgrid(np.arange(W), np.arange(H))
    rays = np.stack([(u - cx) / fx, (v - cy) / fy, np.ones_like(z)], -1)
    rays /= np.linalg.norm(rays, axis=-1, keepdims=True)
    cos = np.abs(np.einsum("hwc,hwc->hw", n, rays))
    grazing = valid & (cos < config.grazing_cos) & ~edges
    # Axial noise.
    sa, sb = (config.sigma_a, config.sigma_b) if config.kind == "structured_light" else (0.0015, 0.0006)
    sigma = sa + sb * (z - 0.4) ** 2
    z = z + rng.normal(size=z.shape) * sigma
    if config.kind == "tof":
        fly = edges & (rng.random(z.shape) < config.flying_pixel_prob)
        blur = cv2.blur(np.where(valid, z, config.max_range).astype(np.float32), (3, 3)).astype(np.float64)
        z[fly] = blur[fly]
        edges &= ~fly
    if config.kind == "structured_light":
        step = z ** 2 * config.disparity_step / (fx * config.baseline)
        z = np.round(z / step) * step
    z = np.round(z / config.depth_unit) * config.depth_unit
    drop = (edges & (rng.random(z.shape) < config.edge_drop_prob)) | grazing
    # Random holes: blobs of random radius.
    n_holes = rng.poisson(config.hole_rate * valid.sum())
    holes = np.zeros((H, W), np.uint8)
    for _ in range(n_holes):
        cyh, cxh = rng.integers(0, H), rng.integers(0, W)
        cv2.circle(holes, (int(cxh), int(cyh)), int(rng.integers(*config.hole_radius)), 1, -1)
    drop |= holes > 0
    out = np.where(valid & ~drop & (z > 0), z, 0.0)
    return out.astype(np.float32)


def degrade_keypoints(uv: np.ndarray, visible: np.ndarray, width: int, config: CueNoiseConfig,
                      rng: np.random.Generator) -> np.ndarray:
    """(21, 3) float32 keypoint cues (u, v, confidence) from ground truth.

    Args:
        uv: (21, 2) ground-truth projections, pixels.
        visible: (21,) bool, joint not occluded.
        width: image width (noise figures are for 640 px and scale with it).
    """
    s = width / 640.0
    n = len(uv)
    out = np.zeros((n, 3), np.float32)
    noise = rng.normal(size=(n, 2)) * config.kp_sigma * s
    noise[~visible] *= 2.5  # detectors are worse on occluded joints
    kp = uv + noise
    conf = np.where(visible, rng.uniform(0.7, 1.0, n), np.clip(rng.normal(config.occluded_conf, 0.15, n), 0.05, 0.9))
    outlier = rng.random(n) < config.kp_outlier_prob
    if outlier.any():
        lo, hi = uv.min(0) - 30 * s, uv.max(0) + 30 * s
        kp[outlier] = rng.uniform(lo, hi, (int(outlier.sum()), 2))
        conf[outlier] = rng.uniform(0.1, 0.8, int(outlier.sum()))  # some outliers look confident
    out[:, :2] = kp
    out[:, 2] = conf
    return out


def degrade_segmentation(seg: np.ndarray, tips_uv: np.ndarray, config: CueNoiseConfig,
                         rng: np.random.Generator) -> np.ndarray:
    """(H, W) uint8 degraded segmentation (0 background, 1 object, 2 hand).

    Each label's boundary moves by a random amount in [-mask_boundary, mask_boundary] pixels
    (erosion or dilation); hand pixels within ``tip_radius`` of some fingertips (``tips_uv``
    (5, 2) pixels) are lost to the background, or to the object where they touch it.
    """
    import cv2

    W = seg.shape[1]
    s = W / 640.0
    out = seg.copy()
    for label in (1, 2):
        k = int(rng.integers(-config.mask_boundary, config.mask_boundary + 1))
        if k == 0:
            continue
        mask = (out == label).astype(np.uint8)
        ker = _disk(abs(k))
        if k > 0:
            grown = cv2.dilate(mask, ker) > 0
            out[grown & (out == 0)] = label
        else:
            shrunk = cv2.erode(mask, ker) > 0
            out[(mask > 0) & ~shrunk] = 0
    r = config.tip_radius * s
    if r > 0:
        H = seg.shape[0]
        yy, xx = np.mgrid[0:H, 0:W]
        obj = cv2.dilate((seg == 1).astype(np.uint8), _disk(3)) > 0
        for tip in tips_uv:
            if rng.random() >= config.tip_drop_prob:
                continue
            rr = r * rng.uniform(0.6, 1.3)
            near = (xx - tip[0]) ** 2 + (yy - tip[1]) ** 2 <= rr * rr
            lost = near & (out == 2)
            out[lost & obj] = 1
            out[lost & ~obj] = 0
    return out
