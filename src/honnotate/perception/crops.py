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
    "crop_transform",
    "apply_affine",
    "invert_affine",
    "warp_image",
    "heatmap_targets",
    "pixels_to_cells",
    "decode_heatmaps",
]


def hand_box_from_mask(hand_mask: np.ndarray, *, min_pixels: int = 20) -> tuple[float, float, float] | None:
    """Square box around the largest connected hand region of a mask.

    Args:
        hand_mask: (H, W) bool, True on hand pixels.
        min_pixels: regions smaller than this are ignored (spurious detections).

    Returns:
        ``(cu, cv, side)``: box centre and side in pixels (side = longest extent of the region,
        at least 8 px), or None when no region is large enough.
    """
    import cv2

    mask = np.asarray(hand_mask)
    if mask.ndim != 2:
        raise ValueError(f"hand_mask must be (H, W), got shape {mask.shape}")
    n, comp, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    if n <= 1:
        return None
    areas = stats[1:, cv2.CC_STAT_AREA]
    best = int(np.argmax(areas)) + 1
    if areas[best - 1] < min_pixels:
        return None
    # Keep regions close to the largest one too (fingers split off by an occluding object).
    x, y, w, h = (int(stats[best, k]) for k in (cv2.CC_STAT_LEFT, cv2.CC_STAT_TOP, cv2.CC_STAT_WIDTH, cv2.CC_STAT_HEIGHT))
    x0, y0, x1, y1 = x, y, x + w - 1, y + h - 1
    reach = 0.5 * max(w, h)
    for k in range(1, n):
        if k == best or stats[k, cv2.CC_STAT_AREA] < min_pixels:
            continue
        kx, ky, kw, kh = (int(stats[k, s]) for s in (cv2.CC_STAT_LEFT, cv2.CC_STAT_TOP, cv2.CC_STAT_WIDTH, cv2.CC_STAT_HEIGHT))
        if kx <= x1 + reach and kx + kw - 1 >= x0 - reach and ky <= y1 + reach and ky + kh - 1 >= y0 - reach:
            x0, y0, x1, y1 = min(x0, kx), min(y0, ky), max(x1, kx + kw - 1), max(y1, ky + kh - 1)
    side = max(x1 - x0 + 1, y1 - y0 + 1, 8)
    return 0.5 * (x0 + x1), 0.5 * (y0 + y1), float(side)


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


def decode_heatmaps(heatmaps: torch.Tensor, stride: int) -> torch.Tensor:
    """Keypoints from heatmaps: arg-max cell, refined to sub-pixel by a quadratic fit.

    The refinement fits a parabola through the peak and its two neighbours on each axis (the
    exact maximum of a sampled Gaussian in log space; here on the values, clamped to +-0.5 cell).

    Args:
        heatmaps: (B, J, h, w) float, any device.
        stride: crop pixels per heatmap cell.

    Returns:
        (B, J, 3) float32: crop pixel ``u, v`` and confidence = peak value (clamped >= 0).
    """
    if heatmaps.ndim != 4:
        raise ValueError(f"heatmaps must be (B, J, h, w), got {tuple(heatmaps.shape)}")
    B, J, h, w = heatmaps.shape
    hm = heatmaps.detach().float()
    flat = hm.reshape(B, J, h * w)
    peak, idx = flat.max(-1)
    iy, ix = idx // w, idx % w
    pad = torch.nn.functional.pad(hm, (1, 1, 1, 1), mode="replicate").reshape(B, J, (h + 2) * (w + 2))

    def at(dy: int, dx: int) -> torch.Tensor:
        return pad.gather(-1, ((iy + 1 + dy) * (w + 2) + ix + 1 + dx).unsqueeze(-1)).squeeze(-1)

    # Log of the clamped values: exact for a Gaussian peak.
    c, l, r, u, d = (torch.log(v.clamp(min=1e-6)) for v in (peak, at(0, -1), at(0, 1), at(-1, 0), at(1, 0)))
    den_x, den_y = l - 2 * c + r, u - 2 * c + d
    off_x = torch.where(den_x < -1e-9, 0.5 * (l - r) / den_x.clamp(max=-1e-9), torch.zeros_like(c)).clamp(-0.5, 0.5)
    off_y = torch.where(den_y < -1e-9, 0.5 * (u - d) / den_y.clamp(max=-1e-9), torch.zeros_like(c)).clamp(-0.5, 0.5)
    x = (ix.float() + off_x) * stride + 0.5 * (stride - 1)
    y = (iy.float() + off_y) * stride + 0.5 * (stride - 1)
    return torch.stack([x, y, peak.clamp(min=0)], -1)
