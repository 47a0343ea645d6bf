"""Hand crops and heatmaps: the geometry shared by training data, training and detection.

Conventions: image pixels with centres at integer coordinates (pixel ``(u, v)`` covers
``[u-0.5, u+0.5] x [v-0.5, v+0.5]``), OpenCV axes (u right, v down). A crop is a square image
of ``size`` pixels made by a 2x3 affine map ``A`` from image pixels to crop pixels (the map
:func:`cv2.warpAffine` takes, which uses the same pixel-centre convention). A heatmap of a
crop has ``stride`` crop pixels per cell; cell ``(i, j)`` is centred on crop pixel
``(stride * j + (stride - 1) / 2, stride * i + (stride - 1) / 2)``.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = [
    "hand_box_from_mask",
    "floor_box_side",
    "hand_box_candidates",
    "crop_transform",
    "hand_axis_angle",
    "resize_crop_map",
    "apply_affine",
    "invert_affine",
    "warp_image",
    "heatmap_targets",
    "bone_targets",
    "pixels_to_cells",
    "decode_heatmaps",
    "fuse_heatmaps",
    "depth_channels",
    "image_depth_channels",
    "wrist_cut",
    "DEPTH_UNIT",
    "DEPTH_CLIP",
    "IMAGE_DEPTH_REF",
    "IMAGE_DEPTH_UNIT",
    "IMAGE_DEPTH_CLIP",
]

#: Metres per unit of the relative depth channel of RGB-D keypoint crops, and its clip (units).
DEPTH_UNIT = 0.05
DEPTH_CLIP = 3.0
#: Reference depth (metres), unit (metres) and clip range (units) of :func:`image_depth_channels`.
IMAGE_DEPTH_REF = 0.6
IMAGE_DEPTH_UNIT = 0.2
IMAGE_DEPTH_CLIP = (-3.0, 5.0)


def hand_box_from_mask(hand_mask: np.ndarray, *, min_pixels: int = 20,
                       reach: float = 2.0) -> tuple[float, float, float] | None:
    """Square box around the largest connected hand region of a mask and the regions near it.

    An object in front of the hand splits its mask: fingers wrapped around a can reappear on
    the can's far side, well away from the palm. Every region of at least ``min_pixels``
    whose bounding box comes within ``reach`` times the largest region's longest extent of the
    largest region's box is included (the earlier rule, reach 0.5, cut such fingertips off).

    Args:
        hand_mask: (H, W) bool, True on hand pixels.
        min_pixels: regions smaller than this are ignored (spurious detections).
        reach: how far from the largest region other regions are still taken as the same hand,
            in units of that region's longest side.

    Returns:
        ``(cu, cv, side)``: box centre and side in pixels (side = longest extent of the region,
        at least 8 px), or None when no region is large enough.
    """
    regions = _hand_regions(hand_mask, min_pixels)
    if not regions:
        return None
    return _box_near(regions, 0, reach)


def hand_box_candidates(hand_mask: np.ndarray, *, min_pixels: int = 20, reach: float = 2.0, seeds: int = 3,
                        min_fraction: float = 0.2) -> list[tuple[float, float, float]]:
    """Boxes that may hold the hand, for a detector to choose among (by its keypoints' confidence).

    A skin-coloured table or wall segmented as hand can be the largest region, or lie within
    reach of the hand and stretch its box. For each of the ``seeds`` largest regions of at least
    ``min_fraction`` of the largest one's pixels, largest first: the box of the region and the
    regions within ``reach`` (:func:`hand_box_from_mask`'s rule, so its box comes first), within
    half its longest side (``0.5 * min(reach, 1)``; the earlier rule), and of the region alone. Duplicates are dropped.

    Args:
        hand_mask: (H, W) bool. min_pixels, reach: as in :func:`hand_box_from_mask`.
        seeds: largest regions tried as the hand. min_fraction: of the largest region's pixels.

    Returns:
        list of ``(cu, cv, side)`` (empty when no region is large enough).
    """
    regions = _hand_regions(hand_mask, min_pixels)
    out: list[tuple[float, float, float]] = []
    for k in range(min(seeds, len(regions))):
        if k and regions[k][4] < min_fraction * regions[0][4]:
            break
        for r in (reach, 0.5 * min(reach, 1.0), None):
            box = _box_near(regions, k, r)
            if box not in out:
                out.append(box)
    return out


def _hand_regions(hand_mask: np.ndarray, min_pixels: int) -> list[tuple[int, int, int, int, int]]:
    """Connected regions of at least ``min_pixels`` as (x, y, w, h, area), largest first."""
    import cv2

    mask = np.asarray(hand_mask)
    if mask.ndim != 2:
        raise ValueError(f"hand_mask must be (H, W), got shape {mask.shape}")
    n, _, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    regions = [tuple(int(v) for v in stats[k, :5]) for k in range(1, n) if stats[k, cv2.CC_STAT_AREA] >= min_pixels]
    return sorted(regions, key=lambda r: -r[4])


def _box_near(regions: list[tuple[int, int, int, int, int]], seed: int,
              reach: float | None) -> tuple[float, float, float]:
    """Square box around region ``seed`` and every region whose bounding box comes within
    ``reach`` times the seed's longest side of the seed's box (None: the seed alone)."""
    x, y, w, h, _ = regions[seed]
    x0, y0, x1, y1 = x, y, x + w - 1, y + h - 1
    reach_px = -1.0 if reach is None else reach * max(w, h)
    for k, (kx, ky, kw, kh, _) in enumerate(regions):
        near = kx <= x1 + reach_px and kx + kw - 1 >= x0 - reach_px and ky <= y1 + reach_px and ky + kh - 1 >= y0 - reach_px
        if reach is not None and k != seed and near:
            x0, y0, x1, y1 = min(x0, kx), min(y0, ky), max(x1, kx + kw - 1), max(y1, ky + kh - 1)
    side = max(x1 - x0 + 1, y1 - y0 + 1, 8)
    return 0.5 * (x0 + x1), 0.5 * (y0 + y1), float(side)


def floor_box_side(box: tuple[float, float, float], hand_mask: np.ndarray, depth: np.ndarray, fx: float,
                   min_side_m: float, *, min_pixels: int = 20) -> tuple[float, float, float]:
    """The box widened about its centre to at least ``min_side_m`` metres at the hand's depth.

    A hand mostly hidden by the object leaves a few fingertips in its mask, whose box is far
    smaller than the hand: the crop then zooms in on them and shows the network too little of
    the hand and object to tell which fingers they are. The hand's depth (median of the valid
    depth of the hand pixels inside the box) gives its expected image size,
    ``fx * min_side_m / depth`` pixels, used as the smallest side.

    Args:
        box: ``(cu, cv, side)`` pixels. hand_mask: (H, W) bool. depth: (H, W) metres (0 or
            non-finite: no measurement), registered to the mask. fx: focal length in pixels.
        min_side_m: smallest box side in metres (0: the box unchanged).
        min_pixels: fewer hand pixels with depth in the box: the box unchanged.

    Returns:
        ``(cu, cv, side)`` with ``side >= fx * min_side_m / hand depth``.
    """
    cu, cv, side = box
    if min_side_m <= 0:
        return box
    H, W = hand_mask.shape
    u0, u1 = max(int(cu - side / 2), 0), min(int(np.ceil(cu + side / 2)) + 1, W)
    v0, v1 = max(int(cv - side / 2), 0), min(int(np.ceil(cv + side / 2)) + 1, H)
    d = depth[v0:v1, u0:u1][hand_mask[v0:v1, u0:u1]]
    d = d[np.isfinite(d) & (d > 0)]
    if d.size < min_pixels:
        return box
    return cu, cv, max(float(side), float(fx) * min_side_m / float(np.median(d)))


def far_from_object(hand_mask: np.ndarray, object_mask: np.ndarray, depth: np.ndarray, fx: float, max_m: float, *,
                    contact_m: float = 0.02, min_pixels: int = 20, max_points: int = 4000) -> np.ndarray:
    """Hand pixels farther than ``max_m`` (3D, from the depth) from every object pixel.

    A hand that holds an object lies within about 15 cm of it: on generated scenes 99.9% of the
    true hand pixels are within 14.6 cm of the nearest object pixel, while three quarters of the
    forearm's are beyond 15 cm (docs/design.md). Pixels back-project with focal length ``fx`` and
    the principal point at the image centre (an offset of a few pixels shifts hand and object
    points alike). Nothing is returned unless the hand touches the object (some hand pixel within
    ``contact_m`` of it): a hand reaching for the object keeps its mask.

    Args:
        hand_mask, object_mask: (H, W) bool. depth: (H, W) metres (0 or non-finite: no
            measurement). fx: focal length, pixels. max_m: the distance beyond which a hand pixel
            is returned. min_pixels: fewer hand or object pixels with depth: nothing returned.
        max_points: object points kept for the nearest-point search (evenly subsampled).

    Returns:
        (H, W) bool, True on hand pixels with depth farther than ``max_m`` from the object.
    """
    from scipy.spatial import cKDTree

    hand_mask, object_mask = np.asarray(hand_mask, bool), np.asarray(object_mask, bool)
    if hand_mask.shape != object_mask.shape or depth.shape != hand_mask.shape:
        raise ValueError(f"masks {hand_mask.shape}, {object_mask.shape} and depth {depth.shape} must match")
    out = np.zeros_like(hand_mask)
    valid = np.isfinite(depth) & (depth > 0)
    hv, hu = np.nonzero(hand_mask & valid)
    ov, ou = np.nonzero(object_mask & valid)
    if hu.size < min_pixels or ou.size < min_pixels or not max_m > 0:
        return out
    H, W = hand_mask.shape
    cx, cy = (W - 1) / 2.0, (H - 1) / 2.0

    def points(v, u):
        z = depth[v, u].astype(np.float64)
        return np.stack([(u - cx) * z / fx, (v - cy) * z / fx, z], 1)

    step = max(1, ou.size // max_points)
    dist = cKDTree(points(ov[::step], ou[::step])).query(points(hv, hu))[0]
    if dist.min() > contact_m:
        return out
    far = dist > max_m
    out[hv[far], hu[far]] = True
    return out


def wrist_cut(labels: np.ndarray, keypoints: np.ndarray, *, offset: float = -0.05, gate: float | None = 0.15,
              gate_fraction: float = 0.03, min_length: float = 15.0, min_confidence: float = 0.1,
              hand: int = 2) -> np.ndarray:
    """The hand mask ended at the wrist: hand pixels past the wrist relabelled background.

    A segmentation network sees skin running on from the hand into the forearm; the annotation's
    hand (MANO) ends at the wrist. With the 2D wrist ``w`` and middle-finger knuckle ``m``
    (keypoints 0 and 4, MANO order), a hand pixel ``p`` is kept when
    ``(p - w) . (w - m) / |w - m|^2 <= offset``: the cut is the line through the wrist
    perpendicular to the hand's axis, moved ``offset`` hand-axis lengths (wrist to knuckle)
    toward the fingers (negative) or the elbow (positive). Only when the mask runs on past
    the wrist (a forearm taken for hand): at least ``gate_fraction`` of the hand pixels (and 30)
    lie more than ``gate`` hand-axis lengths past it; a hand mask that ends at the wrist is
    left whole (cutting it anyway costs its wrist end: hand IoU 0.87 to 0.83 on captures
    without a forearm).

    Args:
        labels: (H, W) integer labels. keypoints: (21, 3) u, v pixels and confidence.
        offset: see above. gate, gate_fraction: see above (gate None: always cut).
        min_length: no cut when ``|w - m|`` is shorter (pixels: a hand seen along its axis gives
            no direction). min_confidence: no cut unless both keypoints
            are at least this confident. hand: the hand label.

    Returns:
        (H, W) labels of the input's dtype (a copy; the input when nothing is cut).
    """
    from honnotate.models.joints import FINGER_JOINTS

    kp = np.asarray(keypoints, dtype=np.float64)
    knuckle = FINGER_JOINTS["middle"][0]
    w, m = kp[0, :2], kp[knuckle, :2]
    axis = w - m
    length = float(np.hypot(*axis))
    if length < min_length or min(kp[0, 2], kp[knuckle, 2]) < min_confidence or not np.all(np.isfinite(axis)):
        return labels
    v, u = np.nonzero(np.asarray(labels) == hand)
    s = ((u - w[0]) * axis[0] + (v - w[1]) * axis[1]) / length ** 2
    if gate is not None and np.count_nonzero(s > gate) < max(30, gate_fraction * len(s)):
        return labels
    past = s > offset
    if not past.any():
        return labels
    out = np.array(labels, copy=True)
    out[v[past], u[past]] = 0
    return out


def crop_transform(centre_u: float, centre_v: float, side: float, size: int, *,
                   angle: float = 0.0) -> np.ndarray:
    """(2, 3) float64 affine map from image pixels to crop pixels.

    The square of ``side`` image pixels centred on ``(centre_u, centre_v)`` (rotated by
    ``angle`` radians, counter-clockwise in the image) maps onto the ``size`` x ``size`` crop.
    """
    if side <= 0 or size <= 0:
        raise ValueError(f"crop side and size must be positive, got side={side}, size={size}")
    s = size / float(side)
    c, sn = np.cos(angle) * s, np.sin(angle) * s
    half = 0.5 * (size - 1)
    # x' = R s (x - centre) + half, R rotating image content by +angle on screen (v down).
    A = np.array([[c, sn, 0.0], [-sn, c, 0.0]])
    A[:, 2] = np.array([half, half]) - A[:, :2] @ np.array([centre_u, centre_v])
    return A


#: MANO-order keypoints of the four fingers' bases (index, middle, pinky, ring MCP joints).
_FINGER_BASES = (1, 4, 7, 10)


def hand_axis_angle(keypoints: np.ndarray) -> float:
    """The :func:`crop_transform` angle (radians) that turns the hand upright in the crop: the
    line from the wrist to the mean of the four fingers' bases then points up (toward -v).

    keypoints: (21, >=2) image pixels u, v in MANO order (every joint, hidden ones too: the
    detector gives them all). A hand whose wrist and finger bases coincide, or are not finite,
    gives 0 (the crop stays aligned with the image).
    """
    kp = np.asarray(keypoints, dtype=np.float64)
    if kp.ndim != 2 or kp.shape[0] != 21 or kp.shape[1] < 2:
        raise ValueError(f"keypoints: expected (21, 2+) pixels, got {kp.shape}")
    d = kp[list(_FINGER_BASES), :2].mean(0) - kp[0, :2]
    if not np.all(np.isfinite(d)) or np.hypot(*d) < 1e-9:
        return 0.0
    # crop_transform rotates a direction at angle a (atan2(v, u)) to a - angle: up is -pi/2
    return float(np.arctan2(d[1], d[0]) + 0.5 * np.pi)


def apply_affine(A: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Map ``(..., 2)`` points (pixels) with a (2, 3) affine map; returns ``(..., 2)`` float64."""
    A = np.asarray(A, dtype=np.float64)
    if A.shape != (2, 3):
        raise ValueError(f"affine map must be (2, 3), got {A.shape}")
    p = np.asarray(points, dtype=np.float64)
    return p @ A[:, :2].T + A[:, 2]


def invert_affine(A: np.ndarray) -> np.ndarray:
    """Inverse of a (2, 3) affine map, (2, 3) float64."""
    A = np.asarray(A, dtype=np.float64)
    if A.shape != (2, 3):
        raise ValueError(f"affine map must be (2, 3), got {A.shape}")
    M = np.linalg.inv(A[:, :2])
    return np.concatenate([M, -M @ A[:, 2:]], 1)


def warp_image(image: np.ndarray, A: np.ndarray, size: tuple[int, int], *, nearest: bool = False,
               border: str = "reflect") -> np.ndarray:
    """Resample ``image`` ((H, W) or (H, W, C)) through the affine map ``A`` into ``size = (W', H')``.

    ``nearest``: nearest-neighbour (labels) instead of bilinear; ``border``: "reflect" or "constant" (0).
    """
    import cv2

    flags = cv2.INTER_NEAREST if nearest else cv2.INTER_LINEAR
    mode = cv2.BORDER_REFLECT_101 if border == "reflect" else cv2.BORDER_CONSTANT
    return cv2.warpAffine(image, np.asarray(A, dtype=np.float64), (int(size[0]), int(size[1])), flags=flags,
                          borderMode=mode, borderValue=0)


def depth_channels(depth_crop: np.ndarray) -> np.ndarray:
    """The depth input channels of an RGB-D keypoint crop.

    Args:
        depth_crop: (S, S) float metres along the camera axis, 0 = no measurement (a depth map
            warped with :func:`warp_image` ``nearest=True, border="constant"``: no values mixed
            across depth edges).

    Returns:
        (S, S, 2) float32: depth relative to the crop's reference depth in units of
        :data:`DEPTH_UNIT` (0.05 m; negative = nearer the camera), clipped to +-:data:`DEPTH_CLIP`
        and 0 where there is no measurement; and the validity (1 measured, 0 not). The reference
        is the median measured depth of the crop's central half (the hand is centred), else of
        the whole crop; a crop without measurements gives zeros.
    """
    d = np.asarray(depth_crop, dtype=np.float32)
    if d.ndim != 2 or d.shape[0] != d.shape[1]:
        raise ValueError(f"depth crop must be (S, S), got {d.shape}")
    valid = np.isfinite(d) & (d > 0)
    out = np.zeros(d.shape + (2,), np.float32)
    if not valid.any():
        return out
    S = d.shape[0]
    lo, hi = S // 4, S - S // 4
    centre = d[lo:hi, lo:hi][valid[lo:hi, lo:hi]]
    ref = float(np.median(centre if centre.size else d[valid]))
    out[..., 0] = np.where(valid, np.clip((np.where(valid, d, ref) - ref) / DEPTH_UNIT, -DEPTH_CLIP, DEPTH_CLIP), 0.0)
    out[..., 1] = valid
    return out


def image_depth_channels(depth: np.ndarray) -> np.ndarray:
    """The depth input channels of an RGB-D segmentation image (architecture ``depth=1``).

    Args:
        depth: (H, W) float metres along the camera axis, 0 = no measurement (resized with
            nearest-neighbour sampling: no values mixed across depth edges).

    Returns:
        (H, W, 2) float32: ``(depth - IMAGE_DEPTH_REF) / IMAGE_DEPTH_UNIT`` (0.6 m and 0.2 m:
        hands within reach of a capture's cameras), clipped to ``IMAGE_DEPTH_CLIP`` (0 to 1.6 m)
        and 0 where there is no measurement; and the validity (1 measured, 0 not). Unlike a
        keypoint crop's (:func:`depth_channels`) there is no reference depth to centre on: the
        values are absolute.
    """
    d = np.asarray(depth, dtype=np.float32)
    if d.ndim != 2:
        raise ValueError(f"depth map must be (H, W), got {d.shape}")
    valid = np.isfinite(d) & (d > 0)
    out = np.zeros(d.shape + (2,), np.float32)
    out[..., 0] = np.where(valid, np.clip((np.where(valid, d, IMAGE_DEPTH_REF) - IMAGE_DEPTH_REF) / IMAGE_DEPTH_UNIT,
                                          *IMAGE_DEPTH_CLIP), 0.0)
    out[..., 1] = valid
    return out


def pixels_to_cells(points, stride: int):
    """Crop pixels -> heatmap cells (``(..., 2)`` u, v -> column, row; see the module docstring).
    Works on numpy arrays and torch tensors; extra trailing columns are dropped."""
    return (points[..., :2] - 0.5 * (stride - 1)) / stride


def heatmap_targets(points: np.ndarray, amplitude: np.ndarray, size: int, stride: int, sigma: float) -> np.ndarray:
    """Gaussian heatmaps of keypoints in a crop.

    Args:
        points: (J, 2) crop pixels (u, v).
        amplitude: (J,) peak value per joint (0: no target; e.g. 1 visible, 0.5 occluded).
        size: crop size in pixels; the heatmaps are ``size // stride`` square.
        stride: crop pixels per heatmap cell.
        sigma: Gaussian standard deviation in heatmap cells.

    Returns:
        (J, size // stride, size // stride) float32 in [0, 1].
    """
    points = np.asarray(points, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != 2:
        raise ValueError(f"points must be (J, 2), got {points.shape}")
    n = size // stride
    cells = pixels_to_cells(points, stride)  # (J, 2) in cell units
    g = np.arange(n, dtype=np.float64)
    gx = np.exp(-0.5 * ((g[None, :] - cells[:, :1]) / sigma) ** 2)  # (J, n)
    gy = np.exp(-0.5 * ((g[None, :] - cells[:, 1:]) / sigma) ** 2)
    hm = gy[:, :, None] * gx[:, None, :] * np.asarray(amplitude, dtype=np.float64)[:, None, None]
    return hm.astype(np.float32)


def bone_targets(points: torch.Tensor, visible: torch.Tensor, inside: torch.Tensor, bones, cells: int,
                 stride: int, sigma: float, occluded_amplitude: float = 0.5) -> tuple[torch.Tensor, torch.Tensor]:
    """Line heatmaps of the hand's bones in a batch of crops (targets of a ``bones=1`` keypoint network).

    Each bone's map is ``amp * exp(-d^2 / (2 sigma^2))`` with ``d`` the distance (cells) from a
    cell's centre to the segment between the bone's two joints, ``amp`` 1 when both joints are
    visible and ``occluded_amplitude`` otherwise; a bone with a joint outside the crop gets weight 0.

    Args:
        points: (B, J, 2) joints in crop pixels (u, v). visible: (B, J) bool or 0/1.
        inside: (B, J) 0/1, the joint lies in the crop (the joint heatmaps' weights).
        bones: sequence of (parent, child) joint indices (e.g. :data:`~honnotate.perception.networks.BONES`).
        cells: heatmap side in cells. stride: crop pixels per cell. sigma: Gaussian width in cells.

    Returns:
        ``(maps (B, K, cells, cells) float, weights (B, K) float)``, K = ``len(bones)``, on ``points``' device.
    """
    a_idx = torch.tensor([a for a, _ in bones], device=points.device)
    b_idx = torch.tensor([b for _, b in bones], device=points.device)
    p = pixels_to_cells(points.float(), stride)  # (B, J, 2)
    pa, pb = p[:, a_idx], p[:, b_idx]  # (B, K, 2)
    g = torch.arange(cells, dtype=p.dtype, device=p.device)
    grid = torch.stack(torch.meshgrid(g, g, indexing="xy"), -1)  # (cells, cells, 2) x = column, y = row
    ab = (pb - pa)[:, :, None, None, :]
    rel = grid[None, None] - pa[:, :, None, None, :]
    t = ((rel * ab).sum(-1) / (ab * ab).sum(-1).clamp(min=1e-6)).clamp(0.0, 1.0)
    d2 = ((rel - t[..., None] * ab) ** 2).sum(-1)
    vis = visible.float()
    amp = torch.where((vis[:, a_idx] > 0) & (vis[:, b_idx] > 0), torch.ones_like(vis[:, a_idx]),
                      torch.full_like(vis[:, a_idx], float(occluded_amplitude)))
    weights = inside.float()[:, a_idx] * inside.float()[:, b_idx]
    return amp[:, :, None, None] * torch.exp(-0.5 * d2 / sigma ** 2) * weights[:, :, None, None], weights


def decode_heatmaps(heatmaps: torch.Tensor, stride: float, *, smooth: float = 0.0) -> torch.Tensor:
    """Keypoints from heatmaps: arg-max cell, refined to sub-pixel.

    ``smooth == 0``: a parabola through the peak and its two neighbours on each axis (the exact
    maximum of a sampled Gaussian in log space; here on the values, clamped to +-0.5 cell).
    ``smooth > 0``: distribution-aware decoding (DARK; Zhang et al., CVPR 2020): the heatmaps
    are smoothed by a Gaussian of ``smooth`` cells (a network's heatmap is no clean Gaussian:
    smoothing it by the training targets' kernel restores one), and one Newton step on the log of
    the smoothed map, with its full 2x2 Hessian at the arg-max cell, gives the offset (clamped
    to +-1 cell; where the Hessian is not negative definite, the per-axis parabola of the
    smoothed log, clamped to +-0.5).

    Args:
        heatmaps: (B, J, h, w) float, any device.
        stride: crop pixels per heatmap cell.
        smooth: Gaussian standard deviation in cells (0: no smoothing, per-axis fit).

    Returns:
        (B, J, 3) float32: crop pixel ``u, v`` and confidence = peak value of the unsmoothed
        heatmap (clamped >= 0).
    """
    if heatmaps.ndim != 4:
        raise ValueError(f"heatmaps must be (B, J, h, w), got {tuple(heatmaps.shape)}")
    if not smooth >= 0:
        raise ValueError(f"smooth must be >= 0 cells, got {smooth}")
    B, J, h, w = heatmaps.shape
    hm = heatmaps.detach().float()
    flat = hm.reshape(B, J, h * w)
    peak, idx = flat.max(-1)
    iy, ix = idx // w, idx % w
    src = _gaussian_smooth(hm, smooth) if smooth > 0 else hm
    pad = torch.nn.functional.pad(src, (1, 1, 1, 1), mode="replicate").reshape(B, J, (h + 2) * (w + 2))

    def at(dy: int, dx: int) -> torch.Tensor:
        return torch.log(pad.gather(-1, ((iy + 1 + dy) * (w + 2) + ix + 1 + dx).unsqueeze(-1)).squeeze(-1)
                         .clamp(min=1e-6 if smooth == 0 else 1e-10))

    # Log of the clamped values: exact for a Gaussian peak.
    c, l, r, u, d = at(0, 0), at(0, -1), at(0, 1), at(-1, 0), at(1, 0)
    den_x, den_y = l - 2 * c + r, u - 2 * c + d
    off_x = torch.where(den_x < -1e-9, 0.5 * (l - r) / den_x.clamp(max=-1e-9), torch.zeros_like(c)).clamp(-0.5, 0.5)
    off_y = torch.where(den_y < -1e-9, 0.5 * (u - d) / den_y.clamp(max=-1e-9), torch.zeros_like(c)).clamp(-0.5, 0.5)
    if smooth > 0:  # Newton step with the full Hessian where it is negative definite
        gx, gy = 0.5 * (r - l), 0.5 * (d - u)
        dxy = 0.25 * (at(1, 1) - at(1, -1) - at(-1, 1) + at(-1, -1))
        det = den_x * den_y - dxy * dxy
        ok = (det > 1e-12) & (den_x < 0)
        safe = torch.where(ok, det, torch.ones_like(det))
        nx = -(den_y * gx - dxy * gy) / safe
        ny = -(den_x * gy - dxy * gx) / safe
        off_x = torch.where(ok, nx.clamp(-1.0, 1.0), off_x)
        off_y = torch.where(ok, ny.clamp(-1.0, 1.0), off_y)
    x = (ix.float() + off_x) * stride + 0.5 * (stride - 1)
    y = (iy.float() + off_y) * stride + 0.5 * (stride - 1)
    return torch.stack([x, y, peak.clamp(min=0)], -1)


def _gaussian_smooth(hm: torch.Tensor, sigma: float) -> torch.Tensor:
    """(B, J, h, w) -> the same smoothed by a separable Gaussian of ``sigma`` cells (edges
    replicated)."""
    radius = max(1, int(np.ceil(3.0 * sigma)))
    t = torch.arange(-radius, radius + 1, dtype=hm.dtype, device=hm.device)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = k / k.sum()
    B, J, h, w = hm.shape
    x = hm.reshape(B * J, 1, h, w)
    x = torch.nn.functional.conv2d(torch.nn.functional.pad(x, (radius, radius, 0, 0), mode="replicate"), k.view(1, 1, 1, -1))
    x = torch.nn.functional.conv2d(torch.nn.functional.pad(x, (0, 0, radius, radius), mode="replicate"), k.view(1, 1, -1, 1))
    return x.reshape(B, J, h, w)


def resize_crop_map(A: np.ndarray, size: int, new_size: int) -> np.ndarray:
    """(2, 3) image -> crop map of a ``size`` crop -> that of the same image square cut at
    ``new_size`` pixels (the crop map of :func:`crop_transform` with ``new_size``)."""
    s = new_size / float(size)
    out = np.asarray(A, dtype=np.float64) * s
    out[:, 2] += 0.5 * (s - 1.0)  # pixel centres: (size - 1) / 2 -> (new_size - 1) / 2
    return out


def fuse_heatmaps(heatmaps: torch.Tensor, maps: list[np.ndarray], base: np.ndarray, stride: int, *,
                  up: int = 2, cell: float | None = None, cells: int | None = None) -> torch.Tensor:
    """Average the heatmaps of several crops of one image in the frame of a base crop.

    Test-time augmentation: the same hand cropped at other scales or rotations gives heatmaps
    whose errors partly differ; each is resampled (bilinear) onto a grid of the base crop that
    is ``up`` times finer than its heatmaps, and the results are averaged.

    Args:
        heatmaps: (K, J, n, n) float, the heatmaps of K square crops (n cells a side).
        maps: K (2, 3) affine maps image pixels -> crop pixels of those crops.
        base: (2, 3) image -> crop map of the output frame (usually ``maps[0]``).
        stride: crop pixels per heatmap cell. up: refinement of the output grid.
        cell, cells: the output grid's cell side in base crop pixels and its cells a side
            (default ``stride / up`` and ``n * up``): set both to resample the heatmaps of crops
            of another size onto the grid of another network's fused heatmaps.

    Returns:
        (J, m, m) float32 with m = ``cells``, on the device of ``heatmaps``; its cells are
        ``cell`` crop pixels of the base crop (decode them with that stride).
    """
    if heatmaps.ndim != 4 or heatmaps.shape[0] != len(maps):
        raise ValueError(f"expected (K, J, n, n) heatmaps of K = {len(maps)} crops, got {tuple(heatmaps.shape)}")
    n = heatmaps.shape[-1]
    fine = stride / up if cell is None else float(cell)
    m = n * up if cells is None else int(cells)
    g = np.arange(m) * fine + 0.5 * (fine - 1)  # fine cell centres, base crop pixels
    gu, gv = np.meshgrid(g, g)
    image_pts = apply_affine(invert_affine(base), np.stack([gu, gv], -1))
    grids = [2.0 * pixels_to_cells(apply_affine(A, image_pts), stride) / (n - 1) - 1.0 for A in maps]
    grid = torch.from_numpy(np.stack(grids)).to(device=heatmaps.device, dtype=torch.float32)
    sampled = torch.nn.functional.grid_sample(heatmaps.float(), grid, mode="bilinear", padding_mode="zeros",
                                              align_corners=True)
    return sampled.mean(0)
