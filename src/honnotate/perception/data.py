"""Training data for the perception networks (paper Sec. 3.2: composited hand+object images).

Two sources, one sample format:

* :class:`SyntheticComposites`: hand+object scenes rendered on the fly and composited over
  random backgrounds. A bank of grasps (:func:`honnotate.synth.grasp.synthesize_grasp` over the
  built-in objects) is made once; each sample draws a grasp, a random hand shape, a grasp drift
  of the finger angles, a random object rotation (so the hand is seen over and under the object)
  and position in the view, a skin tone and lighting, a background (procedural textures with
  distractor shapes, or the user's own images), then colour jitter, blur, noise, and scale and
  rotation augmentation. Rendering uses :class:`honnotate.render.renderer.Renderer`.
* :class:`SequenceFrames`: frames of existing captures for bootstrapping (paper Sec. 4.1):
  the exact ``ground_truth/`` labels of generated sequences when present, else the capture's
  ``segmentation/`` and ``keypoints2d/`` cue files (e.g. re-rendered from annotations).

Every sample is a pure function of ``(seed, index)``: the datasets are deterministic and need
no state between items (safe with DataLoader workers and exact on resume).

Samples (dicts of tensors):

* task "segmentation": ``image`` (3, H, W) float32 RGB in [0, 1]; ``labels`` (H, W) int64 in
  {0 background, 1 object, 2 hand}, and 3 forearm with ``forearm_class=True`` (segmentation
  networks with ``num_classes=4``; else the forearm is background).
* task "keypoints": ``image`` (3, S, S) float32 hand crop; ``heatmaps`` (21, S/4, S/4) float32
  targets (peak 1 visible, ``occluded_amplitude`` occluded); ``weights`` (21,) float32 (1 for
  joints inside the crop); ``keypoints`` (21, 3) float32 crop pixels u, v and visibility;
  ``affine`` (2, 3) float64 image pixels -> crop pixels. With ``depth=True`` (RGB-D keypoint
  networks) ``image`` is (5, S, S): RGB, then :func:`~honnotate.perception.crops.depth_channels`
  of the capture's depth (the composites' rendered depth through the sensor noise model of
  ``honnotate synth``, over an empty or a far background).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from honnotate.perception.crops import (
    apply_affine,
    crop_transform,
    depth_channels,
    floor_box_side,
    hand_axis_angle,
    hand_box_from_mask,
    heatmap_targets,
    image_depth_channels,
    warp_image,
)

__all__ = [
    "AugmentConfig",
    "CompositeConfig",
    "CropConfig",
    "SyntheticComposites",
    "SequenceFrames",
    "augment_affine",
    "expand_capture_dirs",
    "check_crop_augmentation",
    "color_jitter",
    "keypoint_crop",
    "maybe_occlude",
    "occlude_sample",
    "paste_occluders",
    "truncate_view",
    "procedural_background",
    "TablePlane",
    "draw_plane",
    "table_plane",
    "to_sample",
]

_OBJECTS = ("cracker_box", "soup_can", "mustard_bottle", "mug", "sphere")


@dataclass(frozen=True)
class AugmentConfig:
    """Image augmentation (all on by default; ``enabled=False`` gives the raw composites).

    scale: range of the random zoom; rotation: +- radians; shift: +- fraction of the image
    size; brightness/contrast/saturation: +- relative change; hue: +- channel mixing;
    blur_prob / blur_sigma: Gaussian blur probability and sigma range (pixels at 640 width);
    noise_std: range of the additive Gaussian noise (intensity in [0, 1]).
    """

    enabled: bool = True
    scale: tuple[float, float] = (0.8, 1.25)
    rotation: float = 0.5
    shift: float = 0.08
    brightness: float = 0.3
    contrast: float = 0.3
    saturation: float = 0.35
    hue: float = 0.06
    blur_prob: float = 0.3
    blur_sigma: tuple[float, float] = (0.4, 1.6)
    noise_std: tuple[float, float] = (0.0, 0.025)


@dataclass(frozen=True)
class CropConfig:
    """Hand crops of the keypoint network.

    size: crop side in pixels (multiple of 4); margin: crop side / hand box side; jitter_scale,
    jitter_shift (fraction of the box side), jitter_rotation (radians): random crop changes at
    training time (imitating detection boxes); sigma: heatmap Gaussian in cells;
    occluded_amplitude: target peak of occluded joints (so confidence drops on occlusion);
    min_box_m: the hand box widened to at least this many metres at the hand's depth before
    the margin and jitter, as detection does (:func:`~honnotate.perception.crops.floor_box_side`;
    0: off, the crops of before); occluder_prob: chance of a training crop getting 1 to
    ``occluder_count`` pasted occluders (:func:`paste_occluders`: textured, flat or skin-coloured
    shapes of ``occluder_size`` times the crop side, often over the hand; the joints they cover
    become occluded; RGB crops only; 0: off, the crops of before); truncate_prob: chance of a
    training view being cut as by an image border (:func:`truncate_view`: the part of the image
    beyond a random line across the hand, ``truncate_keep`` of its pixels kept, made black, as
    the detector's crops are beyond the image; hands partly out of the image are the keypoint
    network's weakest views; 0: off, the crops of before); upright: the crop turned so the hand
    points up in it (:func:`~honnotate.perception.crops.hand_axis_angle` of the true joints: wrist
    to the four fingers' bases; ``upright_jitter`` radians then spread the angle about that, in
    place of ``jitter_rotation``, as the detector's estimate from its first keypoints errs;
    False: crops aligned with the image).
    """

    size: int = 128
    margin: float = 1.35
    jitter_scale: float = 0.15
    jitter_shift: float = 0.08
    jitter_rotation: float = 0.6
    sigma: float = 1.2
    occluded_amplitude: float = 0.5
    min_box_m: float = 0.0
    occluder_prob: float = 0.0
    occluder_count: int = 3
    occluder_size: tuple[float, float] = (0.2, 0.5)
    truncate_prob: float = 0.0
    truncate_keep: tuple[float, float] = (0.35, 0.85)
    upright: bool = False
    upright_jitter: float = 0.4


@dataclass(frozen=True)
class CompositeConfig:
    """Synthetic composites (lengths metres, angles radians, sizes pixels).

    objects: built-in objects to grasp; grasp_kinds: drawn in turn for the grasp bank;
    grasps_per_object: size of the bank per object; side: hand side; width/height: image size
    (the camera's focal length is ``focal * width / 640``); distance: range of the object depth;
    shape_std: std of the random hand betas; drift: +- anatomical finger angle change;
    hand_only_prob / object_only_prob: scenes with one of the two only; background_dir: folder
    of the user's own background images (PNG/JPG), used for ``user_background_prob`` of the
    samples; distractor_prob: add random shapes (some skin-coloured) to procedural backgrounds;
    headlight_prob: scenes lit by a headlight, the others by ambient plus a distant light from
    above and the camera's side (the lighting of ``honnotate synth``); table_prob: scenes with a
    textured table plane under (or behind) the hand and object, seen from a random pitch and
    roll (as captures are: the table, often wood- or skin-coloured, fills part of the view;
    drawn from a random stream of its own, so ``table_prob=0`` gives the composites of before);
    anatomical_prob: hands with a lighter palm side and pale nails (:mod:`honnotate.synth.appearance`;
    their own random stream: 0 gives the composites of before); arm_prob: hands with a forearm
    behind the wrist, bare or sleeved (:mod:`honnotate.synth.arm`, as in ``honnotate synth``;
    background in the labels; its own random stream: 0 gives the composites of before);
    crops_per_scene: keypoint samples cut from one rendered composite (consecutive sample
    indices ``k * n .. k * n + n - 1`` share scene ``k``, each crop with its own box jitter,
    rotation and colour jitter): rendering a 640x480 composite costs ~10x the crop, so 2 nearly
    halves the data time per keypoint sample; 1 gives the samples of before.
    """

    objects: tuple[str, ...] = _OBJECTS
    grasp_kinds: tuple[str, ...] = ("power", "precision", "lateral")
    grasps_per_object: int = 10
    side: str = "right"
    width: int = 320
    height: int = 240
    focal: float = 615.0
    distance: tuple[float, float] = (0.35, 0.85)
    shape_std: float = 0.8
    drift: float = 0.25
    hand_only_prob: float = 0.08
    object_only_prob: float = 0.04
    background_dir: str | None = None
    user_background_prob: float = 0.7
    distractor_prob: float = 0.5
    headlight_prob: float = 0.3
    table_prob: float = 0.5
    anatomical_prob: float = 0.0
    arm_prob: float = 0.6
    crops_per_scene: int = 1
    seed: int = 0
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    crop: CropConfig = field(default_factory=CropConfig)

    def __post_init__(self) -> None:
        from honnotate.models.object import list_builtin_objects

        bad = [o for o in self.objects if o not in list_builtin_objects()]
        if bad or not self.objects:
            raise ValueError(f"objects must be built-in objects {list_builtin_objects()}, got {list(self.objects)}")
        if self.width % 16 or self.height % 16:
            raise ValueError(f"width and height must be multiples of 16, got {self.width}x{self.height}")
        if self.grasps_per_object < 1:
            raise ValueError(f"grasps_per_object must be >= 1, got {self.grasps_per_object}")
        if self.crop.size % 4:
            raise ValueError(f"crop size must be a multiple of 4, got {self.crop.size}")
        check_crop_augmentation(self.crop)
        if not 0.0 <= self.table_prob <= 1.0:
            raise ValueError(f"table_prob must be in [0, 1], got {self.table_prob}")
        if not 0.0 <= self.anatomical_prob <= 1.0:
            raise ValueError(f"anatomical_prob must be in [0, 1], got {self.anatomical_prob}")
        if not 0.0 <= self.arm_prob <= 1.0:
            raise ValueError(f"arm_prob must be in [0, 1], got {self.arm_prob}")
        if self.crops_per_scene < 1:
            raise ValueError(f"crops_per_scene must be >= 1, got {self.crops_per_scene}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# ---------------------------------------------------------------------------------------------
# Pure helpers


def procedural_background(rng: np.random.Generator, width: int, height: int, *, distractor_prob: float = 0.5) -> np.ndarray:
    """(H, W, 3) float32 background in [0, 1]: wood, checker, smooth noise or gradient texture,
    optionally with random rectangles / ellipses (some skin-coloured) as distractors."""
    import cv2

    from honnotate.synth.generator import SKIN_TONES

    y, x = np.mgrid[0:height, 0:width].astype(np.float32) / max(width, height)
    base = rng.uniform(0.15, 0.9, 3).astype(np.float32)
    kind = rng.integers(4)
    if kind == 0:  # wood-like stripes
        f = rng.uniform(6, 25)
        a = rng.uniform(0, np.pi)
        t = np.cos(a) * x + np.sin(a) * y
        v = 0.5 + 0.5 * np.sin(2 * np.pi * f * (t + 0.05 * np.sin(6 * y + rng.uniform(0, 6))))
        img = base * (0.7 + 0.3 * v[..., None])
    elif kind == 1:  # checker
        n = rng.uniform(4, 16)
        v = ((np.floor(x * n) + np.floor(y * n)) % 2)[..., None]
        img = v * base + (1 - v) * rng.uniform(0.1, 0.9, 3).astype(np.float32)
    elif kind == 2:  # smooth colour noise
        k = int(rng.integers(3, 24))
        noise = rng.random((k, k, 3)).astype(np.float32)
        noise = cv2.resize(noise, (width, height), interpolation=cv2.INTER_CUBIC)
        img = base * (0.6 + 0.8 * (noise - 0.5))
    else:  # gradient
        other = rng.uniform(0.1, 0.9, 3).astype(np.float32)
        t = np.clip(rng.uniform(0.3, 1.5) * (x * rng.normal() + y * rng.normal()) + 0.5, 0, 1)[..., None]
        img = base * (1 - t) + other * t
    img = np.ascontiguousarray(np.clip(img, 0, 1), dtype=np.float32)
    if rng.random() < distractor_prob:
        for _ in range(int(rng.integers(1, 6))):
            col = (SKIN_TONES[rng.integers(len(SKIN_TONES))] if rng.random() < 0.4 else rng.uniform(0, 1, 3))
            col = tuple(float(c) for c in np.clip(col * rng.uniform(0.7, 1.1), 0, 1))
            cu, cv = int(rng.integers(width)), int(rng.integers(height))
            a, b = (int(s) for s in rng.integers(4, max(5, width // 5), 2))
            if rng.random() < 0.5:
                cv2.ellipse(img, (cu, cv), (a, b), float(rng.uniform(0, 180)), 0, 360, col, -1)
            else:
                cv2.rectangle(img, (cu - a, cv - b), (cu + a, cv + b), col, -1)
    return img


@dataclass(frozen=True)
class TablePlane:
    """A textured square plane in the camera frame (metres; x right, y down, z forward).

    centre: (3,) centre; axis_u, axis_v: (3,) orthogonal half-edge vectors (the square spans
    ``centre + a * axis_u + b * axis_v``, a, b in [-1, 1], texture coordinates ``((a + 1) / 2,
    (b + 1) / 2)``, as :func:`honnotate.synth.generator.plane_mesh`); texture: (T, T, 3) uint8 (256 x 256 from :func:`table_plane`: the pattern of the 512 x 512
    table texture of ``honnotate synth``, at a quarter of the cost).
    """

    centre: np.ndarray
    axis_u: np.ndarray
    axis_v: np.ndarray
    texture: np.ndarray

    @property
    def up(self) -> np.ndarray:
        """(3,) unit normal, ``axis_u x axis_v`` normalised."""
        n = np.cross(self.axis_u, self.axis_v)
        return n / np.linalg.norm(n)

    def mesh(self, n: int = 16) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(verts, faces, uv)`` of the plane as a grid mesh (for a renderer)."""
        from honnotate.synth.generator import plane_mesh

        return plane_mesh(self.centre, self.axis_u, self.axis_v, n)


def table_plane(rng: np.random.Generator, points: np.ndarray) -> TablePlane:
    """A random table plane under a scene (camera frame, metres).

    The plane's up normal is the camera's up (-y) pitched toward the camera by 0-0.9 rad and
    rolled by +-0.3 rad; it lies 0-12 cm below the lowest of ``points`` along that normal (a
    gap down to -1 cm lets the hand rest on it), and spans 3 m x 3 m around the scene; its
    texture is wood-like (60%) or any procedural texture of ``honnotate synth``.

    Args:
        rng: random stream. points: (N, 3) scene points (hand and object vertices).
    """
    from honnotate.synth.generator import procedural_texture

    pitch, roll = rng.uniform(0.0, 0.9), rng.uniform(-0.3, 0.3)
    up = np.array([np.sin(roll) * np.cos(pitch), -np.cos(roll) * np.cos(pitch), -np.sin(pitch)])
    pts = np.asarray(points, dtype=np.float64)
    centre = pts.mean(0)
    height = float(np.min(pts @ up)) - rng.uniform(-0.01, 0.12)
    foot = centre - (centre @ up - height) * up
    axis_u = np.array([1.0, 0.0, 0.0]) - up[0] * up
    axis_u /= np.linalg.norm(axis_u)
    axis_v = np.cross(up, axis_u)
    texture = procedural_texture(rng, 256, "wood" if rng.random() < 0.6 else None)
    return TablePlane(foot, 1.5 * axis_u, 1.5 * axis_v, texture)


def draw_plane(plane: TablePlane, K: np.ndarray, width: int, height: int, *, ambient: float,
               light: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The plane seen by a pinhole camera, by exact ray-plane intersection per pixel centre.

    Same shading as :class:`honnotate.render.renderer.Renderer` (Lambert with ``ambient``; a
    headlight when ``light`` is None, else the distant light ``light`` (3,) unit toward the light,
    on the side the camera sees), texture sampled bilinearly.

    Args:
        plane: the plane. K: (3, 3) intrinsics. width, height: image size in pixels.

    Returns:
        ``(rgb (H, W, 3) float32 in [0, 1], depth (H, W) float32 z in metres, 0 where the ray
        misses the square or meets it behind the camera)``.
    """
    import cv2

    f32 = np.float32  # per-pixel arrays in float32 (a 640x480 table in ~25 ms on one thread)
    u, v = np.meshgrid(np.arange(width, dtype=f32), np.arange(height, dtype=f32))
    d = np.stack([u, v, np.ones_like(u)], -1) @ np.linalg.inv(np.asarray(K, dtype=np.float64)).T.astype(f32)  # z = 1
    up64 = plane.up
    up = up64.astype(f32)
    den = d @ up
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(np.abs(den) > 1e-9, f32(plane.centre @ up64) / den, f32(-1.0))  # = z (d_z = 1)
    # plane coordinates a, b of the hit point: (t d - centre) . axis / |axis|^2
    pu, pv = (ax / (ax @ ax) for ax in (plane.axis_u, plane.axis_v))
    a = t * (d @ pu.astype(f32)) - f32(plane.centre @ pu)
    b = t * (d @ pv.astype(f32)) - f32(plane.centre @ pv)
    hit = (t > 0) & (np.abs(a) <= 1) & (np.abs(b) <= 1)
    T = plane.texture.shape[0]
    tex = plane.texture.astype(np.float32) / 255.0
    map_x = (((a + 1) / 2) * T - 0.5).astype(np.float32)
    map_y = ((1 - (b + 1) / 2) * T - 0.5).astype(np.float32)  # v up in texture coordinates
    albedo = cv2.remap(tex, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    if light is None:
        lambert = np.abs(den) / np.linalg.norm(d, axis=-1)
    else:  # the side the camera sees: facing = -up where the view ray and up point the same way
        lambert = np.clip(np.where(den > 0, -1, 1).astype(f32) * f32(up64 @ np.asarray(light, dtype=np.float64)), 0, None)
    rgb = np.clip(albedo * (f32(ambient) + f32(1.0 - ambient) * lambert)[..., None], 0, 1)
    return np.where(hit[..., None], rgb, f32(0)), np.where(hit, t, f32(0))


def augment_affine(rng: np.random.Generator, width: int, height: int, cfg: AugmentConfig) -> np.ndarray:
    """(2, 3) random scale / rotation / shift about the image centre (image pixels -> pixels)."""
    s = float(np.exp(rng.uniform(np.log(cfg.scale[0]), np.log(cfg.scale[1]))))
    a = float(rng.uniform(-cfg.rotation, cfg.rotation))
    du, dv = rng.uniform(-cfg.shift, cfg.shift, 2) * (width, height)
    cu, cv = 0.5 * (width - 1), 0.5 * (height - 1)
    c, sn = np.cos(a) * s, np.sin(a) * s
    A = np.array([[c, sn, 0.0], [-sn, c, 0.0]])
    A[:, 2] = np.array([cu + du, cv + dv]) - A[:, :2] @ np.array([cu, cv])
    return A


def color_jitter(image: np.ndarray, rng: np.random.Generator, cfg: AugmentConfig,
                 pixel_scale: float | None = None) -> np.ndarray:
    """Photometric augmentation of an (H, W, 3) float32 image in [0, 1] (same shape, clipped):
    brightness, contrast, saturation, hue (channel mixing), blur, noise. ``pixel_scale``: image
    pixels per 640-wide-capture pixel, for the blur (default ``W / 640``; a crop passes its zoom)."""
    import cv2

    img = image.astype(np.float32)
    img = img * rng.uniform(1 - cfg.brightness, 1 + cfg.brightness)
    mean = img.mean()
    img = (img - mean) * rng.uniform(1 - cfg.contrast, 1 + cfg.contrast) + mean
    grey = img.mean(-1, keepdims=True)
    img = (img - grey) * rng.uniform(1 - cfg.saturation, 1 + cfg.saturation) + grey
    mix = np.eye(3, dtype=np.float32) + rng.uniform(-cfg.hue, cfg.hue, (3, 3)).astype(np.float32)
    img = img @ (mix / mix.sum(1, keepdims=True)).T
    if rng.random() < cfg.blur_prob:
        sigma = rng.uniform(*cfg.blur_sigma) * (image.shape[1] / 640.0 if pixel_scale is None else pixel_scale)
        img = cv2.GaussianBlur(img, (0, 0), max(sigma, 0.1))
    std = rng.uniform(*cfg.noise_std)
    if std > 0:
        img = img + rng.normal(0, std, img.shape).astype(np.float32)
    return np.clip(img, 0, 1).astype(np.float32)


def check_crop_augmentation(crop: CropConfig) -> None:
    """ValueError naming the field when ``crop``'s occluder, truncation or upright settings are out of range."""
    if not 0.0 <= crop.occluder_prob <= 1.0:
        raise ValueError(f"occluder_prob must be a probability in [0, 1], got {crop.occluder_prob}")
    if crop.occluder_count < 1:
        raise ValueError(f"occluder_count must be >= 1, got {crop.occluder_count}")
    lo, hi = crop.occluder_size
    if not 0.0 < lo <= hi <= 1.0:
        raise ValueError(f"occluder_size must be 0 < LO <= HI <= 1 (fractions of the crop side), got {crop.occluder_size}")
    if not 0.0 <= crop.truncate_prob <= 1.0:
        raise ValueError(f"truncate_prob must be a probability in [0, 1], got {crop.truncate_prob}")
    lo, hi = crop.truncate_keep
    if not 0.0 < lo <= hi <= 1.0:
        raise ValueError(f"truncate_keep must be 0 < LO <= HI <= 1 (fractions of the hand's pixels), got {crop.truncate_keep}")
    if not 0.0 <= crop.upright_jitter <= np.pi:
        raise ValueError(f"upright_jitter must be in [0, pi] radians, got {crop.upright_jitter}")


def truncate_view(image: np.ndarray, labels: np.ndarray, keypoints: np.ndarray, rng: np.random.Generator,
                  keep: tuple[float, float] = (0.35, 0.85)) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A view cut as if an image border crossed the hand (truncation augmentation).

    One side is drawn (left, right, top or bottom) and a cut line parallel to it placed at the
    hand-mask quantile that keeps a fraction drawn from ``keep`` of the hand's pixels; beyond the
    line the image and labels become 0 (what a crop holds beyond the image border) and the
    joints there invisible (as joints off the image are). With no hand pixels nothing is cut.

    Args:
        image: (H, W, C) float32. labels: (H, W) integer (2 = hand). keypoints: (21, 3) pixels u,
            v and visibility. rng: the random stream (side, then fraction; both always drawn).
        keep: range of the fraction of hand pixels kept.

    Returns:
        ``(image, labels, keypoints, gone)``: copies (the inputs are not modified) and the (H, W)
        bool pixels cut away (for the caller's depth maps).
    """
    side = int(rng.integers(4))
    q = float(rng.uniform(*keep))
    H, W = labels.shape
    vs, us = np.nonzero(labels == 2)
    if us.size == 0:
        return image, labels, keypoints, np.zeros((H, W), bool)
    coord = us if side < 2 else vs
    # side 0 / 2: the border is to the right / below (the low coordinates kept), 1 / 3: left / above
    cut = float(np.quantile(coord, q if side % 2 == 0 else 1.0 - q))
    grid = np.arange(W if side < 2 else H, dtype=np.float64)
    line = grid > cut if side % 2 == 0 else grid < cut
    gone = np.broadcast_to(line[None, :] if side < 2 else line[:, None], (H, W))
    image = np.where(gone[..., None] if image.ndim == 3 else gone, 0, image).astype(image.dtype)
    labels = np.where(gone, 0, labels).astype(labels.dtype)
    kp = np.array(keypoints, dtype=np.float32, copy=True)
    c = np.round(kp[:, 0] if side < 2 else kp[:, 1])  # the pixel each joint falls in, as ``line``
    kp[(c > cut) if side % 2 == 0 else (c < cut), 2] = 0
    return image, labels, kp, np.ascontiguousarray(gone)


def paste_occluders(image: np.ndarray, keypoints: np.ndarray, rng: np.random.Generator,
                    crop: CropConfig) -> tuple[np.ndarray, np.ndarray]:
    """Synthetic occlusion of a keypoint crop (Sarandi et al. 2018's augmentation, drawn here).

    1 to ``crop.occluder_count`` shapes (ellipses or convex polygons, antialiased edges) of
    ``crop.occluder_size`` times the crop side, each centred near a random joint (80%) or anywhere
    in the crop, filled with a procedural texture, a flat colour or a shaded skin tone (another
    hand's finger is the hardest occluder), are drawn over the crop.

    Args:
        image: (S, S, 3) float32 RGB in [0, 1] (not modified).
        keypoints: (21, 3) crop pixels u, v and visibility (0/1).
        rng: the random stream (all draws come from it).
        crop: the occluder settings (``occluder_count``, ``occluder_size``).

    Returns:
        ``(image, covered)``: the (S, S, 3) float32 crop with the occluders and (21,) bool, the
        joints whose pixel an occluder covers (more than half opaque there).
    """
    import cv2

    from honnotate.synth.generator import SKIN_TONES

    S = image.shape[0]
    out = image.astype(np.float32).copy()
    alpha_all = np.zeros((S, S), np.float32)
    n = int(rng.integers(1, crop.occluder_count + 1))
    for _ in range(n):
        size = rng.uniform(*crop.occluder_size) * S
        if rng.random() < 0.8:
            c = keypoints[int(rng.integers(len(keypoints))), :2] + rng.normal(0, 0.15 * size, 2)
        else:
            c = rng.uniform(0, S, 2)
        mask = np.zeros((4 * S, 4 * S), np.uint8)  # drawn at 4x with 2 fractional bits, then reduced
        if rng.random() < 0.5:
            axes = (max(1, int(2 * size * rng.uniform(0.6, 1.0))), max(1, int(2 * size * rng.uniform(0.3, 0.8))))
            cv2.ellipse(mask, (int(4 * c[0]), int(4 * c[1])), axes, float(rng.uniform(0, 180)), 0, 360, 255, -1,
                        cv2.LINE_AA)
        else:
            k = int(rng.integers(3, 9))
            ang = np.sort(rng.uniform(0, 2 * np.pi, k))
            rad = 0.5 * size * rng.uniform(0.7, 1.0, k)
            pts = np.stack([c[0] + rad * np.cos(ang), c[1] + rad * np.sin(ang)], 1)
            cv2.fillPoly(mask, [np.round(4 * pts).astype(np.int32)], 255, cv2.LINE_AA)
        alpha = cv2.resize(mask, (S, S), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0
        kind = rng.random()
        if kind < 0.4:
            fill = procedural_background(rng, S, S, distractor_prob=0.0)
        elif kind < 0.7:
            fill = np.broadcast_to(rng.uniform(0.05, 0.95, 3).astype(np.float32), (S, S, 3))
        else:  # skin, shaded across the shape
            tone = SKIN_TONES[int(rng.integers(len(SKIN_TONES)))].astype(np.float32) * rng.uniform(0.85, 1.1)
            y, x = np.mgrid[0:S, 0:S].astype(np.float32) / S
            a = rng.uniform(0, 2 * np.pi)
            shade = 0.75 + 0.35 * (np.cos(a) * (x - c[0] / S) + np.sin(a) * (y - c[1] / S) + 0.5)
            fill = tone[None, None, :] * shade[..., None]
        out = out * (1 - alpha[..., None]) + np.clip(fill, 0, 1) * alpha[..., None]
        alpha_all = np.maximum(alpha_all, alpha)
    u = np.clip(np.round(keypoints[:, 0]).astype(int), 0, S - 1)
    v = np.clip(np.round(keypoints[:, 1]).astype(int), 0, S - 1)
    inside = np.all((keypoints[:, :2] >= -0.5) & (keypoints[:, :2] <= S - 0.5), axis=1)
    covered = inside & (alpha_all[v, u] > 0.5)
    return out.astype(np.float32), covered


def keypoint_crop(image: np.ndarray, labels: np.ndarray, keypoints: np.ndarray, crop: CropConfig,
                  rng: np.random.Generator | None = None, depth: np.ndarray | None = None,
                  floor: tuple[np.ndarray, float] | None = None) -> dict[str, np.ndarray] | None:
    """A hand crop with heatmap targets from a full image.

    Args:
        image: (H, W, 3) float32 in [0, 1]. labels: (H, W) integer (2 = hand), for the box.
        keypoints: (21, 3) image pixels u, v and visibility (0/1), MANO order.
        crop: crop settings. rng: random jitter of the box (None: the exact detection box).
        depth: (H, W) metres (0 = no measurement), for RGB-D crops; None: RGB only.
        floor: ``(depth (H, W) metres, fx pixels)`` for ``crop.min_box_m`` (None: no floor).

    Returns:
        dict with ``image`` (S, S, 3) float32, ``heatmaps`` (21, S/4, S/4), ``weights`` (21,),
        ``keypoints`` (21, 3) crop pixels + visibility, ``affine`` (2, 3) image -> crop, and with
        ``depth`` given ``depth`` (S, S, 2) (:func:`~honnotate.perception.crops.depth_channels`);
        or None when the image has no hand pixels. With ``rng`` and ``crop.truncate_prob`` the
        view is first cut as by an image border (:func:`truncate_view`), that often.
    """
    if rng is not None and crop.truncate_prob > 0 and rng.random() < crop.truncate_prob:
        image, labels, keypoints, gone = truncate_view(image, labels, keypoints, rng, crop.truncate_keep)
        if depth is not None:
            depth = np.where(gone, 0, depth).astype(np.float32)
        if floor is not None:
            floor = (np.where(gone, 0, floor[0]).astype(np.float32), floor[1])
    box = hand_box_from_mask(labels == 2)
    if box is None:
        return None
    if floor is not None and crop.min_box_m > 0:
        box = floor_box_side(box, labels == 2, floor[0], floor[1], crop.min_box_m)
    cu, cv, side = box
    side *= crop.margin
    angle = hand_axis_angle(keypoints) if crop.upright else 0.0
    if rng is not None:
        cu += rng.uniform(-crop.jitter_shift, crop.jitter_shift) * side
        cv += rng.uniform(-crop.jitter_shift, crop.jitter_shift) * side
        side *= float(np.exp(rng.uniform(-crop.jitter_scale, crop.jitter_scale)))
        spread = crop.upright_jitter if crop.upright else crop.jitter_rotation
        angle += float(rng.uniform(-spread, spread))
    A = crop_transform(cu, cv, side, crop.size, angle=angle)
    img = warp_image(image, A, (crop.size, crop.size), border="constant")
    uv = apply_affine(A, keypoints[:, :2])
    inside = np.all((uv >= -0.5) & (uv <= crop.size - 0.5), axis=1)
    vis = (keypoints[:, 2] > 0) & inside
    amp = np.where(vis, 1.0, crop.occluded_amplitude) * inside
    hm = heatmap_targets(uv, amp, crop.size, 4, crop.sigma)
    out = {"image": img, "heatmaps": hm, "weights": inside.astype(np.float32),
           "keypoints": np.concatenate([uv, vis[:, None]], 1).astype(np.float32), "affine": A}
    if depth is not None:
        out["depth"] = depth_channels(warp_image(np.asarray(depth, np.float32), A, (crop.size, crop.size),
                                                 nearest=True, border="constant"))
    return out


def to_sample(task: str, image: np.ndarray, labels: np.ndarray, keypoints: np.ndarray | None,
              crop: CropConfig, rng: np.random.Generator | None,
              depth: np.ndarray | None = None,
              floor: tuple[np.ndarray, float] | None = None) -> dict[str, torch.Tensor] | None:
    """Tensors of one training sample (see the module docstring) from an augmented image.

    image (H, W, 3) float32 [0, 1]; labels (H, W) integer; keypoints (21, 3) u, v, visibility
    (needed for "keypoints"); depth (H, W) metres or None: a keypoint sample's ``image`` then has
    the two depth channels after RGB, (5, S, S). Returns None for a keypoint sample without hand pixels.
    """
    if task == "segmentation":
        img = image if depth is None else np.concatenate([image, image_depth_channels(depth)], 2)
        return {"image": torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1), dtype=np.float32)),
                "labels": torch.from_numpy(labels.astype(np.int64))}
    if keypoints is None:
        raise ValueError("keypoint samples need keypoints")
    c = keypoint_crop(image, labels, keypoints, crop, rng, depth, floor)
    if c is None:
        return None
    img = c["image"] if depth is None else np.concatenate([c["image"], c["depth"]], 2)
    return {"image": torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1), dtype=np.float32)),
            "heatmaps": torch.from_numpy(c["heatmaps"]), "weights": torch.from_numpy(c["weights"]),
            "keypoints": torch.from_numpy(c["keypoints"]), "affine": torch.from_numpy(c["affine"])}


def _check_task(task: str) -> None:
    if task not in ("segmentation", "keypoints"):
        raise ValueError(f"task must be 'segmentation' or 'keypoints', got {task!r}")


# ---------------------------------------------------------------------------------------------
# Synthetic composites


@dataclass(frozen=True)
class _BankEntry:
    object_name: str
    global_orient: np.ndarray
    transl: np.ndarray
    anatomical: np.ndarray


class SyntheticComposites(Dataset):
    """Rendered hand+object composites (see the module docstring); ``len`` is nominal.

    Args:
        config: what to draw. task: "segmentation" or "keypoints". length: ``len(dataset)``
            (samples exist for any index >= 0; the sampler decides how many are used).
        depth: keypoint samples with the depth channels (RGB-D keypoint networks).
        crop_colour: keypoint samples get their colour jitter (False: the crops before it, with
            ``affine`` replaced by ``pixel_scale``, for :func:`honnotate.perception.bank.write_bank`).
        forearm_class: the forearm's pixels are labelled 3 (segmentation networks with a forearm
            class) instead of background.
    """

    def __init__(self, config: CompositeConfig = CompositeConfig(), task: str = "segmentation", length: int = 100_000,
                 *, depth: bool = False, crop_colour: bool = True, forearm_class: bool = False) -> None:
        _check_task(task)
        self.forearm_class = bool(forearm_class)
        self.config = config
        self.task = task
        self.length = int(length)
        self.depth = bool(depth)
        self.crop_colour = bool(crop_colour)

    def __len__(self) -> int:
        return self.length

    @cached_property
    def _hand_regions(self):
        from honnotate.synth.appearance import hand_regions

        return hand_regions(self._hand)

    @cached_property
    def _wrist_ring(self) -> np.ndarray:
        from honnotate.synth.arm import wrist_ring

        return wrist_ring(np.asarray(self._hand.faces))

    @cached_property
    def _hand(self):
        from honnotate.models.hand import HandModel
        from honnotate.models.open_hand import load_open_hand

        return HandModel(load_open_hand(self.config.side), dtype=torch.float32)

    @cached_property
    def _objects(self) -> dict[str, Any]:
        from honnotate.models.object import make_object

        return {name: make_object(name) for name in self.config.objects}

    @cached_property
    def grasp_bank(self) -> list[_BankEntry]:
        """The grasps (object frame), made once from the seed (about 1-3 s each)."""
        from honnotate.synth.grasp import GraspConfig, synthesize_grasp

        rng = np.random.default_rng([self.config.seed, 7919])
        hand = self._hand
        bank = []
        k = 0
        for name in self.config.objects:
            tm = self._objects[name].to_trimesh()
            for _ in range(self.config.grasps_per_object):
                kind = self.config.grasp_kinds[k % len(self.config.grasp_kinds)]
                k += 1
                betas = np.clip(rng.normal(0, self.config.shape_std, hand.num_betas), -2.5, 2.5)
                g = synthesize_grasp(hand, tm, config=GraspConfig(kind=kind), betas=betas, seed=int(rng.integers(1 << 31)))
                bank.append(_BankEntry(name, g.global_orient, g.transl, g.anatomical))
        return bank

    def _backgrounds(self) -> list[Path]:
        d = self.config.background_dir
        if not d:
            return []
        files = sorted(p for p in Path(d).iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg"))
        if not files:
            raise FileNotFoundError(f"{d}: no PNG or JPEG background images")
        return files

    def _background(self, rng: np.random.Generator) -> np.ndarray:
        cfg = self.config
        files = self._backgrounds()
        if files and rng.random() < cfg.user_background_prob:
            import cv2

            from honnotate.io.images import read_image

            img = read_image(files[int(rng.integers(len(files)))]).astype(np.float32) / 255.0
            if img.ndim == 2:
                img = np.repeat(img[..., None], 3, -1)
            h, w = img.shape[:2]
            s = rng.uniform(0.5, 1.0)
            cw, ch = max(8, int(w * s)), max(8, int(h * s))
            x0, y0 = int(rng.integers(w - cw + 1)), int(rng.integers(h - ch + 1))
            return cv2.resize(img[y0:y0 + ch, x0:x0 + cw, :3], (cfg.width, cfg.height), interpolation=cv2.INTER_AREA)
        return procedural_background(rng, cfg.width, cfg.height, distractor_prob=cfg.distractor_prob)

    def composite(self, index: int, *, return_scene: bool = False, jitter: bool = True) -> dict[str, Any]:
        """One full-size composite, before task-specific cropping (``jitter=False``: without the
        colour jitter, which the keypoint samples apply to the crop, 20x fewer pixels).

        Returns:
            dict with ``image`` (H, W, 3) float32 [0, 1], ``labels`` (H, W) uint8,
            ``keypoints`` (21, 3) float32 (u, v pixels; visibility 0/1), ``affine`` (2, 3)
            (render pixels -> image pixels; identity without augmentation); with
            ``return_scene``: ``scene`` holding ``K`` (3, 3), ``hand_vertices``,
            ``object_vertices`` (camera frame, metres; None when absent), the faces, ``table``
            (:class:`TablePlane` or None) and the raw render labels (3 on the table); with the
            dataset's ``depth``: ``depth`` (H, W) float32 metres, noisy, 0 = no measurement.
        """
        if index < 0:
            raise IndexError(f"sample index must be >= 0, got {index}")
        from honnotate.geometry import Camera
        from honnotate.render.renderer import HAND_LABEL, OBJECT_LABEL, Renderer, SceneMesh
        from honnotate.synth.appearance import hand_colors
        from honnotate.synth.generator import SKIN_TONES, TABLE_LABEL

        cfg = self.config
        rng = np.random.default_rng([cfg.seed, int(index)])
        hand = self._hand
        entry = self.grasp_bank[int(rng.integers(len(self.grasp_bank)))]
        obj = self._objects[entry.object_name]
        betas = np.clip(rng.normal(0, cfg.shape_std, hand.num_betas), -2.5, 2.5)
        anat = entry.anatomical + rng.uniform(-cfg.drift, cfg.drift, entry.anatomical.shape)
        lim = hand.data.joint_limits
        if lim is not None:
            anat = np.clip(anat, lim[..., 0], lim[..., 1])
        f32 = torch.float32
        with torch.no_grad():
            pose = hand.anatomical_to_pose(torch.as_tensor(anat[None], dtype=f32))
            out = hand(torch.as_tensor(entry.global_orient[None], dtype=f32), pose,
                       torch.as_tensor(betas[None], dtype=f32), torch.as_tensor(entry.transl[None], dtype=f32))
        hv, hj = out.vertices[0].double().numpy(), out.joints[0].double().numpy()
        ov = np.asarray(obj.vertices, dtype=np.float64)
        # Random object rotation; the hand+object centre placed on a random ray.
        q = rng.normal(size=4)
        q /= np.linalg.norm(q)
        import roma

        R = roma.unitquat_to_rotmat(torch.as_tensor(q)).numpy()
        centre = 0.5 * (hv.mean(0) + ov.mean(0))
        f = cfg.focal * cfg.width / 640.0
        cx, cy = 0.5 * (cfg.width - 1), 0.5 * (cfg.height - 1)
        z = rng.uniform(*cfg.distance)
        u, v = rng.uniform(0.2, 0.8) * cfg.width, rng.uniform(0.2, 0.8) * cfg.height
        t = np.array([(u - cx) / f * z, (v - cy) / f * z, z]) - R @ centre
        hv_c, hj_c, ov_c = hv @ R.T + t, hj @ R.T + t, ov @ R.T + t
        mode = rng.random()
        with_obj = mode >= cfg.hand_only_prob
        with_hand = not (cfg.hand_only_prob <= mode < cfg.hand_only_prob + cfg.object_only_prob)
        cam = Camera.from_intrinsics(f, f, cx, cy, cfg.width, cfg.height)
        tone = SKIN_TONES[rng.integers(len(SKIN_TONES))] * rng.uniform(0.9, 1.06, 3)
        hand_col = np.clip(tone[None] * (1 + rng.normal(0, 0.03, (hand.num_vertices, 1))), 0, 1)
        arng = np.random.default_rng([cfg.seed, int(index), 6])  # its own stream: see CompositeConfig
        if arng.random() < cfg.anatomical_prob:
            hand_col = hand_colors(self._hand_regions, tone, arng)
        meshes = []
        if with_hand:
            meshes.append(SceneMesh(torch.as_tensor(hv_c, dtype=f32), torch.as_tensor(hand.faces), HAND_LABEL,
                                    vertex_colors=torch.as_tensor(hand_col, dtype=f32)))
        if with_obj:
            col = obj.vertex_colors / 255.0 if obj.vertex_colors is not None else np.full((len(ov), 3), 0.6)
            tex = {"uv": torch.as_tensor(obj.uv, dtype=f32), "texture": torch.as_tensor(obj.texture)} \
                if obj.uv is not None and obj.texture is not None else {}
            meshes.append(SceneMesh(torch.as_tensor(ov_c, dtype=f32), torch.as_tensor(obj.faces), OBJECT_LABEL,
                                    vertex_colors=torch.as_tensor(col, dtype=f32), **tex))
        rrng = np.random.default_rng([cfg.seed, int(index), 8])  # its own stream: see CompositeConfig
        if with_hand and rrng.random() < cfg.arm_prob:
            from honnotate.synth.arm import ARM_LABEL, draw_forearm, forearm_mesh

            spec = draw_forearm(rrng, hv_c[None], hj_c[None], self._wrist_ring, tries=1)
            av, af, ac = forearm_mesh(hv_c[None], hj_c[None], self._wrist_ring, spec, hand_col.mean(0))
            meshes.append(SceneMesh(torch.as_tensor(av[0], dtype=f32), torch.as_tensor(af), ARM_LABEL,
                                    vertex_colors=torch.as_tensor(ac, dtype=f32)))
        table = None
        trng = np.random.default_rng([cfg.seed, int(index), 5])  # its own stream: see CompositeConfig
        if trng.random() < cfg.table_prob:
            table = table_plane(trng, np.concatenate([p for p, on in ((hv_c, with_hand), (ov_c, with_obj)) if on]))
        light = None  # a headlight, or a distant light from above and the camera's side (as honnotate synth)
        if rng.random() >= cfg.headlight_prob:
            az, el = rng.uniform(-1.4, 1.4), rng.uniform(0.3, 1.3)
            light = torch.tensor([np.sin(az) * np.cos(el), -np.sin(el), -np.cos(az) * np.cos(el)], dtype=f32)
        with torch.no_grad():
            ambient = float(rng.uniform(0.25, 0.5))
            r = Renderer(background_depth=0.0, antialiased=False, ambient=ambient).render(
                meshes, cam, rgb=True, light_dir=light)
        rendered = r.labels[0, 0].numpy()
        depth = r.depth[0, 0].numpy()
        rgb = r.rgb[0, 0].numpy().astype(np.float32)
        if table is not None:  # drawn exactly (a plane), in front of what it hides
            t_rgb, t_depth = draw_plane(table, cam.K.double().numpy(), cfg.width, cfg.height, ambient=ambient,
                                        light=None if light is None else light.double().numpy())
            over = (t_depth > 0) & ((rendered == 0) | (t_depth < depth))
            rendered = np.where(over, TABLE_LABEL, rendered)
            depth = np.where(over, t_depth, depth)
            rgb = np.where(over[..., None], t_rgb, rgb)
        labels = np.where(rendered >= TABLE_LABEL, 0, rendered).astype(np.uint8)  # table, forearm
        gain = (rng.uniform(0.75, 1.25) * rng.uniform(0.92, 1.08, 3)).astype(np.float32)
        background = self._background(rng)
        image = np.where((rendered > 0)[..., None], np.clip(rgb * gain, 0, 1), background).astype(np.float32)
        sensed = None
        if self.depth:  # its own random stream: the RGB samples stay those of before
            sensed = self._sensor_depth(depth, rendered > 0, f, cx, cy, np.random.default_rng([cfg.seed, int(index), 7]))
        uvw = hj_c @ np.array([[f, 0, cx], [0, f, cy], [0, 0, 1.0]]).T
        uv = uvw[:, :2] / uvw[:, 2:]
        vis = _visible(uv, hj_c[:, 2], labels, depth) if with_hand else np.zeros(21, bool)
        if self.forearm_class:
            from honnotate.perception.networks import FOREARM_CLASS
            from honnotate.synth.arm import ARM_LABEL

            labels = np.where(rendered == ARM_LABEL, FOREARM_CLASS, labels).astype(np.uint8)
        A = np.array([[1.0, 0, 0], [0, 1.0, 0]])
        if cfg.augment.enabled:
            A = augment_affine(rng, cfg.width, cfg.height, cfg.augment)
            image = warp_image(image, A, (cfg.width, cfg.height))
            labels = warp_image(labels, A, (cfg.width, cfg.height), nearest=True)
            if sensed is not None:
                sensed = warp_image(sensed, A, (cfg.width, cfg.height), nearest=True, border="constant")
            uv = apply_affine(A, uv)
            ui, vi = np.round(uv[:, 0]).astype(int), np.round(uv[:, 1]).astype(int)
            inside = (ui >= 0) & (ui < cfg.width) & (vi >= 0) & (vi < cfg.height)
            vis &= inside
            if jitter:
                image = color_jitter(image, rng, cfg.augment)
        sample = {"image": image, "labels": labels,
                  "keypoints": np.concatenate([uv, vis[:, None]], 1).astype(np.float32), "affine": A}
        if cfg.crop.min_box_m > 0:  # the exact depth and focal length of the (augmented) image
            d = depth if not cfg.augment.enabled else warp_image(depth, A, (cfg.width, cfg.height), nearest=True,
                                                                 border="constant")
            sample["floor"] = (d, f * float(np.sqrt(abs(np.linalg.det(A[:, :2])))))
        if sensed is not None:
            sample["depth"] = sensed
        if return_scene:
            sample["scene"] = {"K": cam.K.double().numpy(), "hand_vertices": hv_c if with_hand else None,
                               "object_vertices": ov_c if with_obj else None, "hand_faces": hand.faces,
                               "object_faces": obj.faces, "render_labels": rendered,
                               "table": table,
                               "joints": hj_c}
        return sample

    @staticmethod
    def _sensor_depth(depth: np.ndarray, rendered: np.ndarray, f: float, cx: float, cy: float,
                      rng: np.random.Generator) -> np.ndarray:
        """(H, W) float32 metres: the render's depth where something was drawn, behind it for
        half the scenes a far wall (0.4-1.5 m behind the nearest surface, tilted; captures
        indoors see one, the generated ones see nothing), through the sensor noise model."""
        from honnotate.synth.noise import DepthNoiseConfig, depth_noise

        d = far_wall(np.where(rendered, depth, 0.0), ~rendered, cx, cy, rng)
        return depth_noise(d.astype(np.float32), f, f, cx, cy, DepthNoiseConfig(), rng)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        # A keypoint sample needs a hand: redraw (deterministically) from derived indices.
        crop_jitter = self.task == "keypoints" and self.config.augment.enabled
        per_scene = self.config.crops_per_scene if self.task == "keypoints" else 1
        scene, part = divmod(int(index), per_scene)
        extra = [part] if part else []  # part 0: the random streams of crops_per_scene 1
        for attempt in range(20):
            i = scene if attempt == 0 else scene + (attempt << 40)
            s = self._scene(i, not crop_jitter)
            rng = np.random.default_rng([self.config.seed, i, 1, *extra]) if self.config.augment.enabled else None
            out = to_sample(self.task, s["image"], s["labels"], s["keypoints"], self.config.crop, rng, s.get("depth"),
                            s.get("floor"))
            if out is not None:
                if crop_jitter:
                    out = _finish_crop(out, np.random.default_rng([self.config.seed, i, 2, *extra]),
                                       self.config.augment, self.config.width, self.crop_colour, self.config.crop,
                                       np.random.default_rng([self.config.seed, i, 5, *extra]))
                return out
        raise RuntimeError(f"sample {index}: no hand visible in 20 draws; check the CompositeConfig")

    def _scene(self, i: int, jitter: bool) -> dict[str, Any]:
        """``composite(i, jitter=jitter)``, the last one kept (crops_per_scene > 1 reuses it)."""
        if self.config.crops_per_scene == 1:
            return self.composite(i, jitter=jitter)
        key = (i, jitter)
        cached = getattr(self, "_last_scene", None)
        if cached is None or cached[0] != key:
            cached = (key, self.composite(i, jitter=jitter))
            self._last_scene = cached
        return cached[1]


def maybe_occlude(image: np.ndarray, keypoints: np.ndarray, rng: np.random.Generator,
                  crop: CropConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """With ``crop.occluder_prob`` chance (drawn first from ``rng``), :func:`paste_occluders` on
    an (S, S, 3) crop. Returns ``(image, keypoints, newly)``: the crop, the (21, 3) keypoints with
    the covered joints' visibility 0 (a copy; the inputs are not modified) and (21,) bool, the
    joints that were visible and are covered now (all False when no occluder was drawn)."""
    if crop.occluder_prob <= 0 or rng.random() >= crop.occluder_prob:
        return image, keypoints, np.zeros(len(keypoints), bool)
    img, covered = paste_occluders(image, keypoints, rng, crop)
    kp = np.array(keypoints, dtype=np.float32)
    newly = covered & (kp[:, 2] > 0)
    kp[covered, 2] = 0.0
    return img, kp, newly


def occlude_sample(sample: dict[str, torch.Tensor], rng: np.random.Generator, crop: CropConfig) -> dict[str, torch.Tensor]:
    """A keypoint sample (``image`` (3, S, S), ``heatmaps`` (21, S/4, S/4), ``keypoints`` (21, 3))
    through :func:`maybe_occlude`: the covered joints become occluded, their heatmap peaks scaled
    to ``crop.occluded_amplitude``. RGB-D samples (more than 3 channels) are returned unchanged
    (an occluder has no depth to draw)."""
    if crop.occluder_prob <= 0 or sample["image"].shape[0] != 3:
        return sample
    kp0 = sample["keypoints"].numpy()
    img, kp, newly = maybe_occlude(sample["image"].numpy().transpose(1, 2, 0), kp0, rng, crop)
    if kp is kp0:  # no occluder drawn
        return sample
    hm = sample["heatmaps"].numpy().copy()
    hm[newly] *= crop.occluded_amplitude
    return {**sample, "image": torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1))),
            "heatmaps": torch.from_numpy(hm), "keypoints": torch.from_numpy(kp)}


def _finish_crop(sample: dict[str, torch.Tensor], rng: np.random.Generator, augment: AugmentConfig,
                 width: int, colour: bool = True, crop: CropConfig | None = None,
                 occluder_rng: np.random.Generator | None = None) -> dict[str, torch.Tensor]:
    """Colour jitter of a keypoint sample's crop (20x fewer pixels than the full image); drops
    ``affine``. ``width``: width of the image the crop was cut from (the blur is in the pixels
    of a 640-wide capture: the crop's zoom times ``width / 640``). ``colour=False``: no jitter;
    the sample gets that blur scale as ``pixel_scale`` (() float32) for a later jitter. With
    ``crop`` and ``occluder_rng``, occluders first (:func:`occlude_sample`; not with ``colour=False``:
    a sample bank draws them at each use)."""
    zoom = float(np.sqrt(abs(np.linalg.det(sample.pop("affine").numpy()[:, :2]))))
    if not colour:
        sample["pixel_scale"] = torch.tensor(zoom * width / 640.0, dtype=torch.float32)
        return sample
    if crop is not None and occluder_rng is not None:
        sample = occlude_sample(sample, occluder_rng, crop)
    full = sample["image"].numpy()
    img = color_jitter(full[:3].transpose(1, 2, 0), rng, augment, zoom * width / 640.0)
    img = np.concatenate([img.transpose(2, 0, 1), full[3:]], 0)  # depth channels unchanged
    sample["image"] = torch.from_numpy(np.ascontiguousarray(img, dtype=np.float32))
    return sample


def _visible(uv: np.ndarray, z: np.ndarray, labels: np.ndarray, depth: np.ndarray, tol: float = 0.02) -> np.ndarray:
    """(21,) bool: joint inside the image on a hand pixel whose depth is within ``tol`` metres
    of the joint's (joints lie ~1 cm inside the finger surface)."""
    H, W = labels.shape
    u, v = np.round(uv[:, 0]).astype(int), np.round(uv[:, 1]).astype(int)
    vis = np.zeros(len(uv), bool)
    for i in np.nonzero((u >= 0) & (u < W) & (v >= 0) & (v < H) & (z > 0))[0]:
        sl = (slice(max(v[i] - 1, 0), v[i] + 2), slice(max(u[i] - 1, 0), u[i] + 2))
        vis[i] = bool(np.any((labels[sl] == 2) & (np.abs(depth[sl] - z[i]) < tol)))
    return vis


# ---------------------------------------------------------------------------------------------
# Existing sequences (bootstrapping)


class SequenceFrames(Dataset):
    """Frames x cameras of capture folders as training samples.

    Labels: ``ground_truth/segmentation/<cam>/<frame>.png`` when present (generated sequences;
    with ``forearm_class`` the pixels of ``ground_truth/forearm/<cam>/<frame>.png`` labelled 3),
    else ``segmentation/<cam>/<frame>.png``; keypoints: ``ground_truth/sequence_gt.npz``
    (u, v, visibility) when present, else ``keypoints2d/`` cues (confidence > 0 = visible).
    Frames without labels are skipped; a folder without any raises FileNotFoundError.

    Any index >= 0 is a sample: index ``i`` is frame ``i % len(self)`` with the augmentation of
    ``i`` itself, so drawing a frame again with another index gives other crops and colours.
    A keypoint sample of a frame without hand pixels (the hand hidden in that view) is taken
    from the next frame that has some.

    Args:
        paths: sequence folders, or folders of sequence folders (every subfolder with an
            ``rgb/`` folder, in name order). task: "segmentation" or "keypoints".
        width, height: segmentation samples are resized to this size (pixels).
        augment: augmentation (``enabled=False``: resize only). crop: keypoint crops.
        seed: augmentation seed. depth: keypoint samples with the depth channels (the
            captures' ``depth/`` maps). crop_colour: as for :class:`SyntheticComposites`.
        forearm_class: segmentation labels with the forearm as class 3. A generated capture drawn
            with a forearm (its ``synth_config.json``) must then have the forearm masks
            (``honnotate synth`` writes them since 2026-12-05; FileNotFoundError naming the
            capture otherwise).
    """

    def __init__(self, paths: list[str | Path], task: str = "segmentation", *, width: int = 320, height: int = 240,
                 augment: AugmentConfig = AugmentConfig(), crop: CropConfig = CropConfig(), seed: int = 0,
                 depth: bool = False, crop_colour: bool = True, forearm_class: bool = False) -> None:
        from honnotate.io.sequence import open_sequence

        _check_task(task)
        if forearm_class and task != "segmentation":
            raise ValueError("the forearm class is an output of segmentation networks only")
        self.forearm_class = bool(forearm_class)
        self.depth = bool(depth)
        self.crop_colour = bool(crop_colour)
        self.task, self.width, self.height = task, int(width), int(height)
        self.augment, self.crop, self.seed = augment, crop, int(seed)
        self.items: list[tuple[Any, str, str, int, int]] = []
        self._gt_kp: dict[str, np.ndarray] = {}
        self._forearm_drawn: set[str] = set()  # captures whose every frame has a forearm mask
        for p in expand_capture_dirs(paths):
            seq = open_sequence(p)
            gt_npz = Path(p) / "ground_truth" / "sequence_gt.npz"
            if gt_npz.is_file():
                with np.load(gt_npz) as z:
                    self._gt_kp[str(seq.root)] = z["keypoints2d"].astype(np.float32)
            if forearm_class and _check_forearm_masks(seq):
                self._forearm_drawn.add(str(seq.root))
            n_before = len(self.items)
            for c, cam in enumerate(seq.camera_ids):
                for t, frame in enumerate(seq.frame_ids):
                    if self._label_path(seq, cam, frame) is None:
                        continue
                    if task == "keypoints" and str(seq.root) not in self._gt_kp and seq.path("keypoints2d", cam, frame) is None:
                        continue
                    self.items.append((seq, cam, frame, t, c))
            if len(self.items) == n_before:
                raise FileNotFoundError(f"{p}: no frames with {'segmentation' if task == 'segmentation' else 'segmentation and keypoint'} "
                                        f"labels (ground_truth/ or cue folders)")

    @staticmethod
    def _label_path(seq, cam: str, frame: str) -> Path | None:
        gt = seq.root / "ground_truth" / "segmentation" / cam / f"{frame}.png"
        return gt if gt.is_file() else seq.path("segmentation", cam, frame)

    def __len__(self) -> int:
        return len(self.items)

    def frame(self, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """Full-size ``(image (H, W, 3) float32 [0, 1], labels (H, W) uint8, keypoints (21, 3) or None)``."""
        from honnotate.io.cues import read_segmentation

        seq, cam, frame, t, c = self.items[index]
        image = seq.rgb(cam, frame).astype(np.float32) / 255.0
        labels = read_segmentation(self._label_path(seq, cam, frame))
        if self.forearm_class:
            labels = with_forearm_labels(labels, seq.root / "ground_truth" / "forearm" / cam / f"{frame}.png",
                                   str(seq.root) in self._forearm_drawn)
        kp = None
        gt = self._gt_kp.get(str(seq.root))
        if gt is not None:
            kp = gt[t, c].copy()
        else:
            cue = seq.keypoints2d(cam, frame)
            if cue is not None:
                kp = cue.copy()
                kp[:, 2] = (kp[:, 2] > 0).astype(np.float32)
        return image, labels, kp

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        if index < 0:
            raise IndexError(f"sample index must be >= 0, got {index}")
        n = len(self.items)
        for step in range(n):
            out = self._sample((int(index) + step) % n, int(index) + step)
            if out is not None:
                return out
        raise ValueError(f"{', '.join(sorted({str(it[0].root) for it in self.items}))}: no frame with hand pixels "
                         f"for a keypoint crop")

    def _sample(self, item: int, index: int) -> dict[str, torch.Tensor] | None:
        image, labels, kp = self.frame(item)
        depth = floor = None
        seq, cam, frame = self.items[item][:3]
        if self.depth:
            depth = seq.depth(cam, frame)
            if depth.shape != labels.shape:
                raise ValueError(f"{seq.root}: camera {cam} frame {frame}: depth map {depth.shape} is not registered to "
                                 f"the colour image {labels.shape}; RGB-D networks train on registered depth maps")
        if self.task == "keypoints" and self.crop.min_box_m > 0:
            floor = (depth if depth is not None else seq.depth(cam, frame), float(seq.calibration(cam).K[0, 0]))
        rng = np.random.default_rng([self.seed, index, 2])
        H, W = labels.shape
        if self.task == "keypoints":  # crops come from full-size frames; the crop jitter augments
            A, size = np.array([[1.0, 0, 0], [0, 1.0, 0]]), (W, H)
        else:  # resize to the training size (pixel centres at integers), then augment
            A = np.array([[self.width / W, 0, 0], [0, self.height / H, 0]])
            A[:, 2] = 0.5 * np.diag(A[:, :2]) - 0.5
            size = (self.width, self.height)
            if self.augment.enabled:
                B = augment_affine(rng, self.width, self.height, self.augment)
                A = np.concatenate([B[:, :2] @ A[:, :2], B[:, :2] @ A[:, 2:] + B[:, 2:]], 1)
        img = warp_image(image, A, size)
        lab = warp_image(labels, A, size, nearest=True)
        if depth is not None and self.task == "segmentation":
            if self.augment.enabled:  # half the frames: a far wall where the background has no measurement
                K = seq.calibration(cam).K
                depth = far_wall(depth, (labels == 0) & ~(depth > 0), float(K[0, 2]), float(K[1, 2]),
                                 np.random.default_rng([self.seed, index, 9]))
            depth = warp_image(depth, A, size, nearest=True, border="constant")
        if self.task == "keypoints":  # the colour jitter on the crop, as the composites' keypoint samples
            out = to_sample(self.task, img, lab, kp, self.crop, rng if self.augment.enabled else None, depth, floor)
            if out is None or not self.augment.enabled:
                return out
            return _finish_crop(out, rng, self.augment, W, self.crop_colour, self.crop,
                                np.random.default_rng([self.seed, index, 5]))
        if self.augment.enabled:
            img = color_jitter(img, rng, self.augment)
        return to_sample(self.task, img, lab, kp, self.crop, rng if self.augment.enabled else None, depth)


def far_wall(depth: np.ndarray, where: np.ndarray, cx: float, cy: float, rng: np.random.Generator,
             prob: float = 0.5) -> np.ndarray:
    """``depth`` (H, W) metres with, for ``prob`` of the draws, a far wall at the pixels ``where``
    (H, W) bool: a plane 0.4-1.5 m behind the nearest measured surface, tilted (captures indoors
    see one; the generated ones see nothing behind their table). Else ``depth`` unchanged."""
    if rng.random() >= prob:
        return depth
    d = np.asarray(depth, dtype=np.float32)
    H, W = d.shape
    measured = d[d > 0]
    far = float(measured.min() if measured.size else 0.5) + rng.uniform(0.4, 1.5)
    gu, gv = rng.uniform(-0.3, 0.3, 2) * far / max(W, H)
    vv, uu = np.mgrid[0:H, 0:W]
    return np.where(where, far + gu * (uu - cx) + gv * (vv - cy), d).astype(np.float32)


def _check_forearm_masks(seq) -> bool:
    """Whether ``seq`` is a generated capture drawn with a forearm (its frames then need forearm
    masks); FileNotFoundError when it has none."""
    import json

    cfg_path = seq.root / "synth_config.json"
    if not cfg_path.is_file() or not (seq.root / "ground_truth" / "segmentation").is_dir():
        return False
    try:
        drawn = bool(json.loads(cfg_path.read_text()).get("forearm", False))
    except (OSError, ValueError, AttributeError):
        return False
    if drawn and not (seq.root / "ground_truth" / "forearm").is_dir():
        raise FileNotFoundError(f"{seq.root}: drawn with a forearm but without ground_truth/forearm/ masks (written by "
                                "honnotate synth since 2026-12-05): generate the capture again to train a forearm class")
    return drawn


def with_forearm_labels(labels: np.ndarray, path: Path, required: bool) -> np.ndarray:
    """``labels`` with the background pixels of the forearm mask at ``path`` labelled 3 (no mask:
    the labels as they are, unless ``required``: FileNotFoundError naming it)."""
    if not path.is_file():
        if required:
            raise FileNotFoundError(f"{path}: missing forearm mask of a capture drawn with a forearm (generate "
                                    "the capture again)")
        return labels
    from honnotate.io.images import read_label_png
    from honnotate.perception.networks import FOREARM_CLASS

    mask = read_label_png(path)
    if mask.shape != labels.shape:
        raise ValueError(f"{path}: forearm mask {mask.shape} does not match the segmentation {labels.shape}")
    return np.where((mask > 0) & (labels == 0), FOREARM_CLASS, labels).astype(np.uint8)


def expand_capture_dirs(paths: list[str | Path]) -> list[Path]:
    """Capture folders of ``paths``: a folder with an ``rgb/`` folder is a capture; any other
    folder stands for its subfolders that are captures (name order). A folder that is neither
    is returned as is (opening it then names what is missing)."""
    out: list[Path] = []
    for p in map(Path, paths):
        subs = sorted(q for q in p.iterdir() if (q / "rgb").is_dir()) if p.is_dir() and not (p / "rgb").is_dir() else []
        out.extend(subs or [p])
    return out
