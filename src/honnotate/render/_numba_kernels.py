"""Numba CPU kernels of the rasteriser (the fast CPU path of :func:`honnotate.render.rasterize`).

Two kernels only, to keep first-call compile time small (both are cached on disk):
``_setup_kernel`` computes per (image, face) the pixel bounding box and the inverse signed
area; ``_raster_kernel`` scans each triangle's bounding box inside horizontal bands of the
image with a z-buffer. Bands of one image are independent, so images x bands run in parallel
without races. Faces are visited in ascending order with a strict depth test, so ties go to
the lowest face id (the torch path uses the same rule).
"""

from __future__ import annotations

import math
import os

import numba
import numpy as np
from numba import njit, prange

# numba's OpenMP layer spin-waits in the same OpenMP runtime torch uses, which slowed torch ops
# after every kernel call ~4x here (2 cores); the workqueue layer does not. An explicit
# NUMBA_THREADING_LAYER wins; the choice only takes effect before numba's first parallel launch.
if "NUMBA_THREADING_LAYER" not in os.environ:
    numba.config.THREADING_LAYER = "workqueue"

__all__: list[str] = []

_PARALLEL_MIN_PIXELS = 1_000_000


@njit(parallel=True, cache=True, fastmath=False)
def _setup_kernel(screen, faces, height, width, near, bbox, inv_area):  # pragma: no cover - jit
    n_img = screen.shape[0]
    n_face = faces.shape[0]
    for task in prange(n_img * n_face):
        n = task // n_face
        f = task - n * n_face
        i0 = faces[f, 0]
        i1 = faces[f, 1]
        i2 = faces[f, 2]
        x0 = screen[n, i0, 0]
        y0 = screen[n, i0, 1]
        z0 = screen[n, i0, 2]
        x1 = screen[n, i1, 0]
        y1 = screen[n, i1, 1]
        z1 = screen[n, i1, 2]
        x2 = screen[n, i2, 0]
        y2 = screen[n, i2, 1]
        z2 = screen[n, i2, 2]
        bbox[n, f, 0] = 0
        bbox[n, f, 1] = -1
        bbox[n, f, 2] = 0
        bbox[n, f, 3] = -1
        if not (z0 >= near and z1 >= near and z2 >= near):  # culled (also catches NaN)
            continue
        area = (x1 - x0) * (y2 - y0) - (x2 - x0) * (y1 - y0)
        if area == 0.0 or not math.isfinite(area):
            continue
        xmin = max(math.ceil(min(x0, min(x1, x2))), 0.0)
        xmax = min(math.floor(max(x0, max(x1, x2))), width - 1.0)
        ymin = max(math.ceil(min(y0, min(y1, y2))), 0.0)
        ymax = min(math.floor(max(y0, max(y1, y2))), height - 1.0)
        if xmin > xmax or ymin > ymax:
            continue
        bbox[n, f, 0] = int(xmin)
        bbox[n, f, 1] = int(xmax)
        bbox[n, f, 2] = int(ymin)
        bbox[n, f, 3] = int(ymax)
        inv_area[n, f] = 1.0 / area


@njit(parallel=True, cache=True, fastmath=False)
def _raster_kernel(screen, faces, bbox, inv_area, n_bands, face_id, depth, bary):  # pragma: no cover - jit
    n_img = screen.shape[0]
    n_face = faces.shape[0]
    height = face_id.shape[1]
    for task in prange(n_img * n_bands):
        n = task // n_bands
        band = task - n * n_bands
        band_y0 = (band * height) // n_bands
        band_y1 = ((band + 1) * height) // n_bands - 1
        for f in range(n_face):
            ymin = max(bbox[n, f, 2], band_y0)
            ymax = min(bbox[n, f, 3], band_y1)
            if ymin > ymax:
                continue
            xmin = bbox[n, f, 0]
            xmax = bbox[n, f, 1]
            if xmin > xmax:
                continue
            i0 = faces[f, 0]
            i1 = faces[f, 1]
            i2 = faces[f, 2]
            x0 = screen[n, i0, 0]
            y0 = screen[n, i0, 1]
            x1 = screen[n, i1, 0]
            y1 = screen[n, i1, 1]
            x2 = screen[n, i2, 0]
            y2 = screen[n, i2, 1]
            iz0 = 1.0 / screen[n, i0, 2]
            iz1 = 1.0 / screen[n, i1, 2]
            iz2 = 1.0 / screen[n, i2, 2]
            ia = inv_area[n, f]
            for y in range(ymin, ymax + 1):
                py = float(y)
                for x in range(xmin, xmax + 1):
                    px = float(x)
                    # screen-space barycentrics: signed sub-areas over the signed area
                    b0 = ((x1 - px) * (y2 - py) - (x2 - px) * (y1 - py)) * ia
                    b1 = ((x2 - px) * (y0 - py) - (x0 - px) * (y2 - py)) * ia
                    b2 = ((x0 - px) * (y1 - py) - (x1 - px) * (y0 - py)) * ia
                    if b0 < 0.0 or b1 < 0.0 or b2 < 0.0:
                        continue
                    # perspective-correct: 1/z is linear in screen space
                    w0 = b0 * iz0
                    w1 = b1 * iz1
                    w2 = b2 * iz2
                    z = 1.0 / (w0 + w1 + w2)
                    z32 = np.float32(z)  # compare as stored: same tie rule as the torch path
                    if z32 < depth[n, y, x]:
                        depth[n, y, x] = z32
                        face_id[n, y, x] = f
                        bary[n, y, x, 0] = w0 * z
                        bary[n, y, x, 1] = w1 * z
                        bary[n, y, x, 2] = w2 * z


def rasterize_numba(screen: np.ndarray, faces: np.ndarray, height: int, width: int, near: float):
    """Numba rasterisation of float64 ``screen`` (N, V, 3) [u, v, z] with int32 ``faces`` (F, 3).

    Returns numpy ``face_id`` (N, H, W) int32 (-1 background), ``depth`` (N, H, W) float32
    (+inf background) and ``bary`` (N, H, W, 3) float32 (perspective-correct).
    """
    n_img, n_face = screen.shape[0], faces.shape[0]
    saved = numba.get_num_threads()
    # small jobs run on one thread: a single 320x240 image takes < 1 ms, less than the cost of
    # waking (possibly contended) worker threads
    threads = saved if n_img * height * width >= _PARALLEL_MIN_PIXELS else 1
    numba.set_num_threads(threads)
    try:
        bbox = np.empty((n_img, n_face, 4), dtype=np.int64)
        inv_area = np.zeros((n_img, n_face), dtype=np.float64)
        _setup_kernel(screen, faces, float(height), float(width), float(near), bbox, inv_area)
        # enough bands to keep every thread busy (several per thread for load balance)
        n_bands = 1 if threads == 1 else max(1, min(height, -(-4 * threads // n_img)))
        face_id = np.full((n_img, height, width), -1, dtype=np.int32)
        depth = np.full((n_img, height, width), np.inf, dtype=np.float32)
        bary = np.zeros((n_img, height, width, 3), dtype=np.float32)
        _raster_kernel(screen, faces, bbox, inv_area, n_bands, face_id, depth, bary)
    finally:
        numba.set_num_threads(saved)
    return face_id, depth, bary
