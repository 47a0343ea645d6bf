"""Everything the energy compares against, loaded once per sequence.

:func:`load_observations` reads the cues and depth of the selected frames and cameras of a
capture into tensors at the tracking resolution (a fraction of the capture size), fused and
subsampled segmented point clouds at full resolution, and per-frame availability flags. Frames
and cameras with missing files are not an error: their pixels are marked invalid and the frame
is flagged (the temporal terms bridge it); a frame whose colour/depth sizes disagree with the
calibration is an error naming the file.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from honnotate.annotate.correspondence import segmented_point_clouds
from honnotate.geometry.camera import Camera
from honnotate.render.renderer import HAND_LABEL, OBJECT_LABEL

__all__ = ["Observations", "load_observations", "resample_labels", "resample_depth", "FLAG_NAMES"]

#: Availability / quality flags, one bit each in :attr:`Observations.flags` and the outputs.
FLAG_NAMES: tuple[str, ...] = (
    "no_keypoints",        # no camera has >= 6 confident keypoints
    "empty_hand_mask",     # no camera shows hand pixels
    "empty_object_mask",   # no camera shows object pixels
    "no_depth",            # no camera has depth measurements on the hand or object
    "missing_cue_file",    # a segmentation or keypoint file is absent for some camera
    "object_out_of_view",  # the annotated object projects outside every image
    "low_iou",             # rendered silhouettes disagree with the segmentation
    "high_keypoint_error",  # joints reproject far from the keypoint cues
    "high_depth_residual",  # rendered depth far from the measured depth
)


def flag_bit(name: str) -> int:
    """Bit value of a flag name of :data:`FLAG_NAMES`."""
    return 1 << FLAG_NAMES.index(name)


@dataclass
class Observations:
    """Cues and depth of T frames x C cameras.

    Attributes:
        frame_ids: T frame names. camera_ids: C camera ids.
        cameras: C :class:`Camera` at the capture size (float32, CPU).
        width, height: capture size (pixels, camera 0; all cameras are resampled to the
            tracking size ``(round(scale * width), round(scale * height))``).
        scale: tracking-size fraction of the capture size.
        segmentation: (T, C, h, w) uint8 labels at the tracking size (0 background, 1 object,
            2 hand). seg_valid: (T, C) bool (cue file present).
        depth: (T, C, h, w) float32 metres at the tracking size (0: no measurement).
        keypoints: (T, C, 21, 3) float32 (u, v at the capture size, confidence; 0 confidence
            where missing).
        clouds: label (1 object, 2 hand) -> ((T, N, 3) float32 world points, (T, N) bool valid).
        flags: (T,) int64 bit flags (:data:`FLAG_NAMES`).
        mask_fraction: (T, C) object-mask area fraction per camera.
    """

    frame_ids: list[str]
    camera_ids: list[str]
    cameras: list[Camera]
    width: int
    height: int
    scale: float
    segmentation: torch.Tensor
    seg_valid: torch.Tensor
    depth: torch.Tensor
    keypoints: torch.Tensor
    clouds: dict[int, tuple[torch.Tensor, torch.Tensor]]
    flags: np.ndarray
    mask_fraction: np.ndarray

    @property
    def num_frames(self) -> int:
        return len(self.frame_ids)

    @property
    def num_cameras(self) -> int:
        return len(self.camera_ids)

    def size_at(self, scale: float) -> tuple[int, int]:
        """(width, height) in pixels at ``scale`` of the capture size."""
        return max(1, round(self.width * scale)), max(1, round(self.height * scale))

    def maps_at(self, scale: float, frames: np.ndarray | slice | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(segmentation, depth) of ``frames`` at ``scale`` of the capture size (<= :attr:`scale`):
        both by nearest sampling."""
        idx = slice(None) if frames is None else frames
        seg, dep = self.segmentation[idx], self.depth[idx]
        if abs(scale - self.scale) < 1e-9:
            return seg, dep
        w, h = self.size_at(scale)
        return resample_labels(seg, h, w), resample_depth(dep, h, w)


def resample_labels(labels: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """(..., H, W) integer labels to (..., height, width), nearest pixel centre."""
    shp = labels.shape
    x = labels.reshape(-1, 1, shp[-2], shp[-1]).float()
    y = F.interpolate(x, size=(height, width), mode="nearest-exact")
    return y.reshape(*shp[:-2], height, width).to(labels.dtype)


def resample_depth(depth: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """(..., H, W) metres (0 = missing) to (..., height, width), nearest pixel centre (no mixing
    of foreground and background depth at edges)."""
    shp = depth.shape
    x = depth.reshape(-1, 1, shp[-2], shp[-1]).float()
    y = F.interpolate(x, size=(height, width), mode="nearest-exact")
    return y.reshape(*shp[:-2], height, width)


def _subsample(points: torch.Tensor, n: int, rng: np.random.Generator) -> torch.Tensor:
    if points.shape[0] <= n:
        return points
    return points[torch.as_tensor(np.sort(rng.choice(points.shape[0], n, replace=False)))]


def load_observations(sequence, frame_ids: list[str] | None = None, camera_ids: list[str] | None = None,
                      scale: float = 0.5, cloud_points: int = 600, max_depth: float = 0.75,
                      conf_threshold: float = 0.1, progress=None, seed: int = 0) -> Observations:
    """Read cues and depth of a :class:`~honnotate.io.CaptureSequence`.

    Args:
        sequence: the capture. frame_ids / camera_ids: subsets (None: all).
        scale: tracking resolution as a fraction of the capture size.
        cloud_points: observed points kept per label and frame (uniform subsample of the fused
            full-resolution cloud).
        max_depth: depth beyond this is ignored, metres.
        progress: optional callable ``progress(done, total)``.

    Returns:
        :class:`Observations`.
    """
    frames = list(sequence.frame_ids if frame_ids is None else frame_ids)
    cams = list(sequence.camera_ids if camera_ids is None else camera_ids)
    if not frames:
        raise ValueError(f"{sequence.root}: no frames to annotate (rgb/<cam>/ is empty or the frame selection is empty)")
    unknown = [c for c in cams if c not in sequence.camera_ids]
    if unknown:
        raise ValueError(f"{sequence.root}: unknown camera(s) {unknown}; the sequence has {sequence.camera_ids}")
    cameras = [sequence.cameras[c] for c in cams]
    W0, H0 = cameras[0].width, cameras[0].height
    w, h = max(1, round(W0 * scale)), max(1, round(H0 * scale))
    T, C = len(frames), len(cams)
    seg = torch.zeros(T, C, h, w, dtype=torch.uint8)
    seg_valid = torch.zeros(T, C, dtype=torch.bool)
    depth = torch.zeros(T, C, h, w, dtype=torch.float32)
    kps = torch.zeros(T, C, 21, 3, dtype=torch.float32)
    flags = np.zeros(T, np.int64)
    mask_fraction = np.zeros((T, C))
    rng = np.random.default_rng(seed)
    clouds: dict[int, list[torch.Tensor]] = {OBJECT_LABEL: [], HAND_LABEL: []}
    for t, fid in enumerate(frames):
        per_label: dict[int, list[torch.Tensor]] = {OBJECT_LABEL: [], HAND_LABEL: []}
        n_kp_best = 0
        hand_px = obj_px = 0
        depth_on_fg = 0
        missing = False
        for c, cid in enumerate(cams):
            cam = cameras[c]
            s = sequence.segmentation(cid, fid)
            d = sequence.depth(cid, fid) if sequence.path("depth", cid, fid) is not None else None
            k = sequence.keypoints2d(cid, fid)
            missing |= s is None or k is None
            for name, arr in (("segmentation", s), ("depth", d)):
                if arr is not None and tuple(arr.shape) != (cam.height, cam.width):
                    raise ValueError(f"{sequence.path(name, cid, fid)}: size {arr.shape[1]}x{arr.shape[0]} differs "
                                     f"from camera {cid!r}'s {cam.width}x{cam.height} (calibration / colour frames)")
            if k is not None:
                kk = torch.as_tensor(np.asarray(k, dtype=np.float32))
                ok = torch.isfinite(kk).all(-1) & (kk[:, 2] > conf_threshold)
                kk = torch.where(ok[:, None], kk, torch.zeros_like(kk))
                # keypoints are stored at the camera's own size; express them at camera 0's
                kk[:, 0] *= W0 / cam.width
                kk[:, 1] *= H0 / cam.height
                kps[t, c] = kk
                n_kp_best = max(n_kp_best, int(ok.sum()))
            if s is not None:
                st = torch.as_tensor(np.asarray(s))
                seg[t, c] = resample_labels(st, h, w)
                seg_valid[t, c] = True
                hand_px += int((st == HAND_LABEL).sum())
                obj_px += int((st == OBJECT_LABEL).sum())
                mask_fraction[t, c] = float((st == OBJECT_LABEL).float().mean())
            if d is not None:
                dt = torch.as_tensor(np.asarray(d, dtype=np.float32))
                dt = torch.where((dt > 0) & (dt <= max_depth), dt, torch.zeros_like(dt))
                depth[t, c] = resample_depth(dt, h, w)
                if s is not None:
                    fg = torch.as_tensor(np.asarray(s)) > 0
                    depth_on_fg += int(((dt > 0) & fg).sum())
                    cl = segmented_point_clouds(dt[None], torch.as_tensor(np.asarray(s))[None], cam.K[None],
                                                cam.cam_to_world[None], max_depth)
                    for lab, p in cl.items():
                        per_label[lab].append(p)
        for lab in clouds:
            pts = torch.cat(per_label[lab]) if per_label[lab] else torch.zeros(0, 3)
            clouds[lab].append(_subsample(pts, cloud_points, rng))
        if n_kp_best < 6:
            flags[t] |= flag_bit("no_keypoints")
        if hand_px == 0:
            flags[t] |= flag_bit("empty_hand_mask")
        if obj_px == 0:
            flags[t] |= flag_bit("empty_object_mask")
        if depth_on_fg == 0:
            flags[t] |= flag_bit("no_depth")
        if missing:
            flags[t] |= flag_bit("missing_cue_file")
        if progress is not None:
            progress(t + 1, T)
    padded = {}
    for lab, lst in clouds.items():
        n = max(1, max(int(p.shape[0]) for p in lst))
        pts = torch.zeros(T, n, 3)
        ok = torch.zeros(T, n, dtype=torch.bool)
        for t, p in enumerate(lst):
            pts[t, : p.shape[0]] = p
            ok[t, : p.shape[0]] = True
        padded[lab] = (pts, ok)
    return Observations(frames, cams, cameras, W0, H0, scale, seg, seg_valid, depth, kps, padded, flags, mask_fraction)
