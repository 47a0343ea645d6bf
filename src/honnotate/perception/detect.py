"""Inference: segmentation and 2D hand keypoints for images and whole capture sequences.

:class:`Detector` runs both networks on one RGB image: the segmentation network at its
training size on the image and on its mirror image (logits averaged, resized back to the
image: test-time augmentation), then the keypoint network on a square crop
around the hand regions of the predicted mask (when the mask has several large regions, the
candidate box whose single crop gives the most confident keypoints: a skin-coloured table taken
for hand must not stretch or steal the crop; then by default three crops at different rotations,
their heatmaps averaged: test-time augmentation); keypoints are decoded from the last stage's
heatmaps (arg-max + sub-pixel refinement) and mapped back to image pixels, with the heatmap
peak as confidence; when the wrist cut (below) changes the hand mask, they are found again in the
box of the cut mask and the mask cut again at their wrist (``redetect``). With the frame's depth and focal length the hand box is at least 11.4 cm across
at the hand's depth (a hand mostly hidden by the object leaves a few fingertips in the mask:
:func:`~honnotate.perception.crops.floor_box_side`). RGB-D keypoint weights (architecture ``depth=1``) also see the frame's depth
in the crop (:func:`~honnotate.perception.crops.depth_channels`); RGB-D segmentation weights (the
shipped seg18) the frame's depth map (:func:`~honnotate.perception.crops.image_depth_channels`). :func:`detect_sequence` writes the cue files of a capture with the
:mod:`honnotate.io.cues` writers, so detections and external detectors' cues read the same;
with three or more calibrated cameras it then makes each frame's keypoints agree across them
(:mod:`honnotate.perception.multiview`; ``fuse_views``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from honnotate.perception.crops import (
    apply_affine,
    crop_transform,
    decode_heatmaps,
    depth_channels,
    far_from_object,
    floor_box_side,
    fuse_heatmaps,
    hand_axis_angle,
    hand_box_candidates,
    hand_box_from_mask,
    image_depth_channels,
    invert_affine,
    resize_crop_map,
    warp_image,
    wrist_cut,
)
from honnotate.perception.multiview import FuseSummary, fuse_sequence_keypoints
from honnotate.perception.networks import FOREARM_CLASS, NUM_CLASSES, full_arch
from honnotate.perception.weights import (
    KP_FINE_FILE,
    KP_UPRIGHT_FILE,
    SEG_RGB_FILE,
    WEIGHTS_FILES,
    WeightsError,
    load_weights,
    weights_path,
)

__all__ = ["Detection", "Detector", "DetectSummary", "detect_sequence", "parse_seg_zoom", "seg_input_size", "TTA_DEFAULT", "MIN_BOX_M", "DECODE_SMOOTH_PX",
           "SEG_ZOOM_DEFAULT", "UPRIGHT_WEIGHT"]

#: Test-time augmentation of the keypoint network: (crop scale, rotation in degrees) of each
#: crop whose heatmaps are averaged. Three rotations (kp10 weights, PCK@10px on 40 frames of 20
#: generated scenes other than the benchmark's, ``benchmarks/perception.py --seed-base 2000
#: [--tta ...]``, before the detector chose among hand boxes): one crop 0.786, three rotations
#: 0.814, three scales (1, 0.87, 1.15; the earlier default) 0.797; three keypoint network passes.
TTA_DEFAULT: tuple[tuple[float, float], ...] = ((1.0, 0.0), (1.0, -20.0), (1.0, 20.0))
#: Smallest hand box side in metres at the hand's depth (see :class:`Detector`): 0.6 x 19 cm.
MIN_BOX_M = 0.114
#: Gaussian (crop pixels) of the distribution-aware decoding, ``Detector(decode_smooth_px=...)``:
#: the training targets' kernel, ``KeypointCropConfig.sigma`` 1.2 cells x stride 4. Off by default
#: (see :class:`Detector`).
DECODE_SMOOTH_PX = 4.8
#: Share of the upright keypoint network's heatmaps in the average (``Detector(upright_weight)``).
UPRIGHT_WEIGHT = 1.0 / 3.0
#: Segmentation input sizes, as multiples of the trained input (:func:`seg_input_size`), whose
#: logits are averaged (see :class:`Detector`): the trained input alone. seg14 (shipped until seg18, its RGB-D growth) is
#: trained at 640x480, the captures' resolution; on 20 scenes x 2 frames of seeds 9000+ and of
#: 9500+ with a forearm (sets no reported figure uses; ``runs/``-style script over the frames of
#: ``benchmarks/perception.py --seed-base 9000`` / ``9500``) it scores hand IoU 0.882 and 0.887,
#: object IoU 0.957 and 0.964, PCK@10px 0.907 and 0.903 at 640x480 alone, and 0.887 and 0.883,
#: 0.952 and 0.963, 0.899 and 0.892 with 320x240 added (``(0.5, 1.0)``). seg13, trained at
#: 320x240, with 640x480 added (``(1.0, 2.0)``, the default from 2026-12-05 06:00 to 08:40):
#: 0.879 and 0.887, 0.938 and 0.962, 0.896 and 0.900; 320x240 alone 0.860 and 0.857.
SEG_ZOOM_DEFAULT: tuple[float, ...] = (1.0,)


@dataclass(frozen=True)
class Detection:
    """labels: (H, W) uint8 in {0 background, 1 object, 2 hand}; keypoints: (21, 3) float32
    u, v (image pixels) and confidence in [0, 1] (all 0 when no hand is found), MANO order;
    box: (cu, cv, side) of the hand crop in pixels, or None."""

    labels: np.ndarray
    keypoints: np.ndarray
    box: tuple[float, float, float] | None


def parse_seg_zoom(text: str) -> tuple[float, ...]:
    """Segmentation input scales from text such as ``"1,2"`` (comma-separated; ValueError naming
    the text otherwise: ``honnotate detect --seg-zoom`` and the perception benchmark)."""
    try:
        zoom = tuple(float(z) for z in text.split(","))
    except ValueError:
        raise ValueError(f"--seg-zoom must list input scales such as 1,2, got {text!r}") from None
    if not all(np.isfinite(z) and z > 0 for z in zoom):
        raise ValueError(f"--seg-zoom must list input scales > 0, got {text!r}")
    return zoom


def seg_input_size(trained: tuple[int, int], zoom: float) -> tuple[int, int]:
    """(width, height) of a segmentation input ``zoom`` times the ``trained`` (width, height),
    each down to a multiple of 16 (at least 16): 320x240 x 1.5 is 480x352."""
    return tuple(max(16, int(side * zoom) // 16 * 16) for side in trained)


class Detector:
    """Both perception networks, loaded from a weights folder.

    Args:
        weights_dir: folder with ``segmentation.pt`` and ``keypoints.pt`` (None: the shipped weights).
        device: "auto" (CUDA when present), "cpu", "cuda:0", ...
        keypoints: load the keypoint network (False: segmentation only; no keypoints are found).
        tta: (crop scale, rotation in degrees) of the crops whose keypoint heatmaps are averaged
            (:data:`TTA_DEFAULT`; ``((1.0, 0.0),)``: one crop, no augmentation).
        choose_box: when the hand mask has several large regions, try the boxes of
            :func:`~honnotate.perception.crops.hand_box_candidates` (one keypoint pass each) and
            keep the one with the highest mean heatmap peak (False: always the box of
            :func:`~honnotate.perception.crops.hand_box_from_mask`). On 40 frames of 20 held-out
            scenes (kp10 weights, ``benchmarks/perception.py --seed-base 2000``) PCK@10px 0.855
            against 0.814 (the crops around the true hand mask: 0.855).
        min_box_m: with the frame's depth and focal length, the hand box is at least this many
            metres across at the hand's depth (:func:`~honnotate.perception.crops.floor_box_side`;
            0: off). The default, 0.6 x a 19 cm hand, was chosen on captures the benchmark does not
            use (kp11; see docs/design.md): PCK@10px 0.874 against 0.889 without and with it, on
            views with at most 10 visible joints 0.812 against 0.844.
        cut_wrist: end the hand mask at the detected wrist when it runs on into the forearm
            (:func:`~honnotate.perception.crops.wrist_cut`); with weights that have a forearm class
            (:attr:`forearm_class`) hand and forearm are cut as one there, so the hand ends at the
            keypoints' wrist rather than where the network put the hand's end; without the cut
            (or when the mask does not run on) the forearm is background. ``benchmarks/perception.py``
            row "without the wrist cut": shipped weights (seg14, a forearm class), hand IoU 0.850
            against 0.903 without and with it (0.898 with one keypoint pass and one cut) on its scenes with a forearm (seg13 at 320x240: 0.822
            against 0.857); seg11 there 0.802
            against 0.839 (``--seed-base 2000``: 0.753 against 0.791), without a forearm
            (``--no-forearm``) 0.876 against 0.878.
        redetect: when the wrist cut changed the hand mask, find the keypoints again in the box
            of the cut mask (one more keypoint pass there) and cut the network's hand and forearm
            again at that pass's wrist (the default since 2026-12-05 afternoon). Chosen on two
            tuning sets no reported figure uses (40 scenes x 2 frames each, seeds 9000+ and 9500+:
            ``benchmarks/perception.py --weights src/honnotate/assets/weights --seed-base 9000
            --sequences 40``, its default and "without the second keypoint pass" rows): hand IoU 0.888 to 0.894 and 0.900 to
            0.906, PCK@10px 0.890 to 0.890 and 0.904 to 0.903 (the pass without the second cut,
            the option before: hand IoU unchanged); then on the reported sets hand IoU 0.898 to
            0.903, 0.846 to 0.872 (``--seed-base 2000``), 0.846 to 0.851 (``--seed-base 7000
            --sequences 40``), PCK@10px 0.897 to 0.906, 0.865 to 0.895, 0.861 to 0.879: the first
            box often holds bare forearm taken for hand. Off: one keypoint pass, one cut.
        seg_flip: average the segmentation logits of the image and of its mirror image (flipped
            left-right: a right hand seen as a left one, which the networks before seg12 never saw
            in training). Row "one segmentation pass": seg14, hand IoU 0.892 to
            0.903 and object IoU 0.958 to 0.959 on the benchmark's scenes with a forearm (one
            keypoint pass and cut: 0.885 to 0.898); seg13 at
            320x240: 0.849 to 0.857, 0.944 to 0.945; seg11: 0.839 to
            0.853 there, 0.791 to 0.814 with ``--seed-base 2000``, 0.791 to 0.798 on the seeds-7000
            scenes (object IoU +0.002 to +0.006). One more segmentation pass (about 25 ms on 2 cores).
        seg_zoom: segmentation input sizes as multiples of the trained input
            (:func:`seg_input_size`), their logits resized to the image and averaged
            (:data:`SEG_ZOOM_DEFAULT`: the trained size alone). Row "with a half-size input
            added": see BENCHMARKS.md; each size is one more segmentation pass (two with
            ``seg_flip``; 640x480 is four times the pixels of 320x240).
        object_gate_m: with the frame's depth and focal length, hand pixels farther than this
            many metres from every object pixel are taken for forearm (background without a
            forearm class) before the keypoints are found, when the hand touches the object
            (:func:`~honnotate.perception.crops.far_from_object`; 0: off, the default).
        rgb_fallback: when ``segmentation.pt`` takes RGB-D images and the folder also holds an RGB
            network of the same classes (:data:`~honnotate.perception.weights.SEG_RGB_FILE`, as the
            shipped weights do), frames without a depth map are segmented by that network (False,
            or no such file: by the RGB-D network on a map without measurements). BENCHMARKS.md
            section perception, column "no depth map".
        decode_smooth_px: when > 0, the (fused) heatmaps are smoothed by a Gaussian of this many
            crop pixels before the sub-pixel decoding, a Newton step on the smoothed log
            (:func:`~honnotate.perception.crops.decode_heatmaps` with ``smooth``; DARK, Zhang et al.
            2020; :data:`DECODE_SMOOTH_PX` is the training targets' kernel); 0, the default: the
            per-axis parabola. With kp13 (BENCHMARKS.md section perception, row and column
            "distribution-aware decoding") PCK@10px gains a little, near the noise (four reported
            held-out sets together 0.878 to 0.881, tuning sets 0.892 and 0.913 either way, 1900
            joints of 40 generated 5-camera captures it never saw 0.863 to 0.868, a one-off
            script), and the annotation with such cues moved by 1-3 mm either way (section
            annotate_cues' note: single 7.26 to 8.16 mm; multi, each view's keypoints 12.99 to
            14.23, fused 14.59 to 11.35): no gain shown, off.
        fine_keypoints: when the weights folder also holds a second keypoint network
            (:data:`~honnotate.perception.weights.KP_FINE_FILE`, trained on crops of the same hand
            square at a larger size: finer pixels for large hands), its heatmaps of the same crops
            (``tta``) are resampled onto the fused grid and averaged with the first network's
            (:func:`~honnotate.perception.crops.fuse_heatmaps`); the choice among hand boxes uses
            the first network alone. False, or no such file: the first network alone.
        upright_keypoints: when the weights folder also holds a keypoint network trained on
            upright crops (:data:`~honnotate.perception.weights.KP_UPRIGHT_FILE`, ``honnotate
            train keypoints --upright``), the keypoints of the networks above give the hand's
            orientation (:func:`~honnotate.perception.crops.hand_axis_angle`: wrist to finger
            bases), the same squares are cut again turned by it (``tta`` rotations about it), and
            that network's heatmaps are resampled onto the fused grid and averaged in with weight
            ``upright_weight``. False, or no such file: no upright pass.
        upright_weight: the upright network's share of the averaged heatmaps, in (0, 1].

    Raises:
        WeightsError: a weights file is missing, corrupt or mismatched (the message names it).
    """

    def __init__(self, weights_dir: str | Path | None = None, device: str | torch.device = "auto", *,
                 keypoints: bool = True, tta: tuple[tuple[float, float], ...] = TTA_DEFAULT,
                 choose_box: bool = True, min_box_m: float = MIN_BOX_M, cut_wrist: bool = True,
                 redetect: bool = True, seg_flip: bool = True,
                 seg_zoom: tuple[float, ...] = SEG_ZOOM_DEFAULT, object_gate_m: float = 0.0,
                 rgb_fallback: bool = True, decode_smooth_px: float = 0.0, fine_keypoints: bool = True,
                 upright_keypoints: bool = True, upright_weight: float = UPRIGHT_WEIGHT) -> None:
        from honnotate.perception.train import resolve_device

        self.tta = tuple((float(scale), float(angle)) for scale, angle in tta)
        if not self.tta or any(scale <= 0 for scale, _ in self.tta):
            raise ValueError(f"tta must list (scale > 0, degrees) pairs, got {tta!r}")
        self.choose_box = bool(choose_box)
        if not min_box_m >= 0:
            raise ValueError(f"min_box_m must be >= 0, got {min_box_m}")
        self.min_box_m = float(min_box_m)
        self.cut_wrist = bool(cut_wrist)
        self.redetect = bool(redetect)
        self.seg_flip = bool(seg_flip)
        if not object_gate_m >= 0:
            raise ValueError(f"object_gate_m must be >= 0, got {object_gate_m}")
        self.object_gate_m = float(object_gate_m)
        self.seg_zoom = tuple(float(z) for z in seg_zoom)
        if not self.seg_zoom or not all(np.isfinite(z) and z > 0 for z in self.seg_zoom):
            raise ValueError(f"seg_zoom must list input scales > 0, got {seg_zoom!r}")
        if not decode_smooth_px >= 0:
            raise ValueError(f"decode_smooth_px must be >= 0, got {decode_smooth_px}")
        self.decode_smooth_px = float(decode_smooth_px)
        if not 0 < upright_weight <= 1:
            raise ValueError(f"upright_weight must be in (0, 1], got {upright_weight}")
        self.upright_weight = float(upright_weight)
        self.device = resolve_device(device)
        self.seg, self.seg_info = load_weights("segmentation", weights_dir, device=self.device)
        self.seg_size = (int(self.seg_info["input"]["width"]), int(self.seg_info["input"]["height"]))
        #: (width, height) of each segmentation input (``seg_zoom`` x the trained input, down to multiples of 16)
        self.seg_sizes = tuple(seg_input_size(self.seg_size, z) for z in self.seg_zoom)
        seg_arch = full_arch("segmentation", self.seg_info.get("arch"))
        #: the segmentation network takes RGB-D images (architecture ``depth=1``: ``segment_classes`` needs the depth)
        self.seg_needs_depth = bool(seg_arch["depth"])
        self._warned_no_depth = False
        #: the segmentation network has a forearm class (architecture ``num_classes=4``)
        self.forearm_class = seg_arch["num_classes"] > NUM_CLASSES
        #: the RGB segmentation network run on frames without a depth map (``rgb_fallback``), or None
        self.seg_rgb, self.seg_rgb_sizes = None, ()
        rgb_path = weights_path("segmentation", weights_dir, SEG_RGB_FILE)
        if self.seg_needs_depth and rgb_fallback and rgb_path.is_file():
            self.seg_rgb, rgb_info = load_weights("segmentation", weights_dir, device=self.device, file=SEG_RGB_FILE)
            rgb_arch = full_arch("segmentation", rgb_info.get("arch"))
            if rgb_arch["depth"] or rgb_arch["num_classes"] != seg_arch["num_classes"]:
                raise WeightsError(f"{rgb_path}: the segmentation for frames without depth must be an RGB network "
                                   f"(depth 0) with the {seg_arch['num_classes']} classes of "
                                   f"{WEIGHTS_FILES['segmentation']}; it has depth {rgb_arch['depth']} and "
                                   f"{rgb_arch['num_classes']} classes")
            rgb_size = (int(rgb_info["input"]["width"]), int(rgb_info["input"]["height"]))
            self.seg_rgb_sizes = tuple(seg_input_size(rgb_size, z) for z in self.seg_zoom)
        self.kp, self.kp_info, self.crop_size, self.margin = None, {}, 0, 0.0
        if keypoints:  # False: segmentation only (keypoints() then finds no hand)
            self.kp, self.kp_info = load_weights("keypoints", weights_dir, device=self.device)
            self.crop_size = int(self.kp_info["input"]["crop_size"])
            self.margin = float(self.kp_info["input"]["margin"])
            if self.kp_info["input"].get("upright"):
                raise WeightsError(f"{weights_path('keypoints', weights_dir)}: a network trained on upright crops "
                                   f"(--upright) needs another network's keypoints for the hand's orientation: name "
                                   f"it {KP_UPRIGHT_FILE} beside a {WEIGHTS_FILES['keypoints']} trained without --upright")
        #: the keypoint network takes RGB-D crops (``keypoints()`` then needs the depth map)
        self.needs_depth = bool(self.kp is not None and full_arch("keypoints", self.kp_info.get("arch"))["depth"])
        #: the second keypoint network (``fine_keypoints``) or None, and its crop size
        self.kp_fine, self.kp_fine_info, self.fine_crop_size = self._companion(
            weights_dir, KP_FINE_FILE, fine_keypoints, upright=False, role="the second keypoint network")
        #: the upright keypoint network (``upright_keypoints``) or None, and its crop size
        self.kp_upright, self.kp_upright_info, self.upright_crop_size = self._companion(
            weights_dir, KP_UPRIGHT_FILE, upright_keypoints, upright=True, role="the upright keypoint network")

    def _companion(self, weights_dir, file: str, wanted: bool, *, upright: bool, role: str):
        """(network, info, crop size) of a keypoint file averaged in with ``keypoints.pt``, or
        (None, {}, 0) when not wanted or absent. WeightsError naming the file unless it crops the
        hand square of ``keypoints.pt`` (same margin, same input channels), turned upright or
        not as ``upright`` says."""
        path = weights_path("keypoints", weights_dir, file)
        if self.kp is None or not wanted or not path.is_file():
            return None, {}, 0
        net, info = load_weights("keypoints", weights_dir, device=self.device, file=file)
        spec = info["input"]
        depth = bool(full_arch("keypoints", info.get("arch"))["depth"])
        is_upright = bool(spec.get("upright"))
        if is_upright != upright or depth != self.needs_depth or abs(float(spec["margin"]) - self.margin) > 1e-6:
            raise WeightsError(f"{path}: {role} must be trained on {'upright' if upright else 'image-aligned'} crops"
                               f"{' (--upright)' if upright else ' (without --upright)'} of the hand square of "
                               f"{WEIGHTS_FILES['keypoints']} (margin {self.margin}, depth {int(self.needs_depth)}); "
                               f"it has upright {int(is_upright)}, margin {spec['margin']}, depth {int(depth)}")
        return net, info, int(spec["crop_size"])

    def segment(self, rgb: np.ndarray, depth: np.ndarray | None = None) -> np.ndarray:
        """(H, W, 3) uint8 RGB -> (H, W) uint8 labels {0 background, 1 object, 2 hand} (the
        network's own hand mask: no wrist cut; a forearm class is background); ``depth`` as
        for :meth:`segment_classes`."""
        return self.cue_labels(self.segment_classes(rgb, depth))

    def cue_labels(self, classes: np.ndarray) -> np.ndarray:
        """(H, W) network classes (:meth:`segment_classes`) -> cue labels {0, 1, 2}: a forearm
        class is background (the network's own hand mask, before any wrist cut)."""
        return np.where(classes == FOREARM_CLASS, 0, classes).astype(np.uint8) if self.forearm_class else classes

    @torch.no_grad()
    def segment_classes(self, rgb: np.ndarray, depth: np.ndarray | None = None) -> np.ndarray:
        """(H, W, 3) uint8 RGB -> (H, W) uint8 labels of the network's classes: {0 background,
        1 object, 2 hand}, and 3 forearm when it has that class (:attr:`forearm_class`); the
        arg-max of the logits, resized to (H, W), averaged over the input sizes (``seg_zoom``)
        and over the image and its mirror image (``seg_flip``). ``depth``: (H, W) metres, 0 = no
        measurement, the input of an RGB-D segmentation network (:attr:`seg_needs_depth`; without
        one the RGB network :attr:`seg_rgb` segments the frame when the folder has one, else the
        RGB-D network runs on a map with no measurement; either with a warning, once per detector;
        BENCHMARKS.md section perception, column "no depth map"), and ignored by an RGB one.
        ValueError: a depth map of another size than the image."""
        import cv2
        from torch.nn.functional import interpolate

        rgb = _check_rgb(rgb)
        H, W = rgb.shape[:2]
        net, sizes, with_depth = self.seg, self.seg_sizes, self.seg_needs_depth
        if self.seg_needs_depth:
            if depth is None:
                if not self._warned_no_depth:
                    import warnings

                    warnings.warn("the segmentation network takes RGB-D images (architecture depth=1) and got no depth "
                                  "map: " + (f"the RGB network ({SEG_RGB_FILE}) segments such frames, less accurately"
                                             if self.seg_rgb is not None else "it runs without depth measurements, less "
                                             "accurately") + " (pass the frame's depth map, registered to the colour "
                                  "image)", stacklevel=3)
                    self._warned_no_depth = True
                if self.seg_rgb is not None:
                    net, sizes, with_depth = self.seg_rgb, self.seg_rgb_sizes, False
                else:
                    depth = np.zeros((H, W), np.float32)
            if depth is not None:
                depth = np.asarray(depth, dtype=np.float32)
                if depth.shape != (H, W):
                    raise ValueError(f"depth map {depth.shape} does not match the image {(H, W)}")
        image = torch.from_numpy(rgb).to(self.device).permute(2, 0, 1)[None].float() / 255.0
        total = None
        for size in sizes:
            x = interpolate(image, size=size[::-1], mode="bilinear", align_corners=False, antialias=True)
            if with_depth:  # nearest-neighbour: no values mixed across depth edges
                d = image_depth_channels(cv2.resize(depth, size, interpolation=cv2.INTER_NEAREST))
                x = torch.cat([x, torch.from_numpy(d).to(x).permute(2, 0, 1)[None]], 1)
            if self.seg_flip:  # one batch: the image and its mirror image
                both = net(torch.cat([x, x.flip(-1)]))
                logits = 0.5 * (both[:1] + both[1:].flip(-1))
            else:
                logits = net(x)
            logits = interpolate(logits, size=(H, W), mode="bilinear", align_corners=False)
            total = logits if total is None else total + logits
        return total.argmax(1)[0].to(torch.uint8).cpu().numpy()

    @torch.no_grad()
    def keypoints(self, rgb: np.ndarray, labels: np.ndarray, depth: np.ndarray | None = None,
                  fx: float | None = None) -> tuple[np.ndarray, tuple[float, float, float] | None]:
        """2D keypoints in the crop around the hand of ``labels``.

        Args:
            rgb: (H, W, 3) uint8. labels: (H, W) integer (2 = hand). depth: (H, W) metres (0 = no
                measurement), registered to ``rgb``; needed by RGB-D keypoint weights
                (:attr:`needs_depth`); with ``fx`` (focal length, pixels) it sets the smallest
                hand box (``min_box_m``).

        Returns:
            ``((21, 3) float32 u, v, confidence; box or None)``, the box of the crop
            ``(cu, cv, side)`` pixels.

        Raises:
            ValueError: RGB-D weights without ``depth``, or a depth map of another size.
        """
        rgb = _check_rgb(rgb)
        mask = np.asarray(labels) == 2
        image = rgb.astype(np.float32) / 255.0
        if depth is not None:
            depth = np.asarray(depth, dtype=np.float32)
            if depth.shape != rgb.shape[:2]:
                raise ValueError(f"depth map {depth.shape} does not match the RGB image {rgb.shape[:2]}")
        if self.needs_depth:
            if depth is None:
                raise ValueError("these keypoint weights take RGB-D crops (arch depth=1): pass the frame's depth map")
            image = (image, depth)
        boxes = hand_box_candidates(mask) if self.choose_box else [hand_box_from_mask(mask)]
        if self.kp is None or not boxes or boxes[0] is None:
            return np.zeros((21, 3), np.float32), None
        box = self._choose_box(image, boxes) if len(boxes) > 1 else boxes[0]
        if depth is not None and fx is not None:
            box = floor_box_side(box, mask, depth, fx, self.min_box_m)
        maps = [crop_transform(box[0], box[1], box[2] * self.margin * scale, self.crop_size, angle=np.deg2rad(angle))
                for scale, angle in self.tta]
        hm = self._heatmaps(image, maps)
        stride = self.kp.stride
        if len(maps) > 1 or self.kp_fine is not None or self.kp_upright is not None:  # fused on a 2x finer grid of the first crop
            fused = fuse_heatmaps(hm, maps, maps[0], stride, up=2)
            if self.kp_fine is not None:  # the second network's heatmaps of the same squares, averaged in
                fine_maps = [resize_crop_map(A, self.crop_size, self.fine_crop_size) for A in maps]
                fused = 0.5 * (fused + fuse_heatmaps(self._heatmaps(image, fine_maps, "fine"), fine_maps, maps[0],
                                                     self.kp_fine.stride, cell=stride / 2, cells=fused.shape[-1]))
            if self.kp_upright is not None:  # the squares turned by the hand's orientation so far
                first = decode_heatmaps(fused[None], stride / 2)[0].cpu().numpy().astype(np.float64)
                angle = hand_axis_angle(apply_affine(invert_affine(maps[0]), first[:, :2]))
                up_maps = [crop_transform(box[0], box[1], box[2] * self.margin * scale, self.upright_crop_size,
                                          angle=angle + np.deg2rad(a)) for scale, a in self.tta]
                up = fuse_heatmaps(self._heatmaps(image, up_maps, "upright"), up_maps, maps[0], self.kp_upright.stride,
                                   cell=stride / 2, cells=fused.shape[-1])
                fused = (1.0 - self.upright_weight) * fused + self.upright_weight * up
            hm, stride = fused[None], stride / 2
        kp = decode_heatmaps(hm, stride, smooth=self.decode_smooth_px / stride)[0].cpu().numpy().astype(np.float64)
        uv = apply_affine(invert_affine(maps[0]), kp[:, :2])
        conf = np.clip(kp[:, 2], 0.0, 1.0)
        return np.concatenate([uv, conf[:, None]], 1).astype(np.float32), box

    def _heatmaps(self, image: np.ndarray | tuple[np.ndarray, np.ndarray], maps: list[np.ndarray],
                  which: str = "first") -> torch.Tensor:
        """(H, W, 3) float32 image (or the pair image, (H, W) depth metres for RGB-D weights),
        crop maps (2, 3) -> last-stage heatmaps (len(maps), 21, S/4, S/4) of the keypoint
        network ``which``: "first", "fine" (the second network) or "upright", crops of its side S."""
        net, side = {"first": (self.kp, self.crop_size), "fine": (self.kp_fine, self.fine_crop_size),
                     "upright": (self.kp_upright, self.upright_crop_size)}[which]
        size = (side, side)
        if isinstance(image, tuple):
            rgb, depth = image
            crops = np.stack([np.concatenate([warp_image(rgb, A, size, border="constant"), depth_channels(
                warp_image(depth, A, size, nearest=True, border="constant"))], 2) for A in maps])
        else:
            crops = np.stack([warp_image(image, A, size, border="constant") for A in maps])
        return net(torch.from_numpy(np.ascontiguousarray(crops.transpose(0, 3, 1, 2))).to(self.device))[-1]

    def _choose_box(self, image: np.ndarray, boxes: list[tuple[float, float, float]]) -> tuple[float, float, float]:
        """The box whose single crop gives the highest mean keypoint confidence (heatmap peak)."""
        hm = self._heatmaps(image, [crop_transform(b[0], b[1], b[2] * self.margin, self.crop_size) for b in boxes])
        score = hm.flatten(2).amax(-1).clamp(0.0, 1.0).mean(1)
        return boxes[int(score.argmax())]

    def cut_at_wrist(self, classes: np.ndarray, keypoints: np.ndarray) -> np.ndarray:
        """(H, W) cue labels {0, 1, 2} of the network's ``classes`` (:meth:`segment_classes`)
        with the hand ended at the wrist of ``keypoints`` ((21, 3) u, v, confidence;
        :func:`~honnotate.perception.crops.wrist_cut`): with a forearm class, hand and forearm
        cut as one there; where nothing is cut, the hand class alone (the forearm background)."""
        labels = self.cue_labels(classes)
        if not self.forearm_class:
            return wrist_cut(labels, keypoints)
        skin = np.where(classes == FOREARM_CLASS, 2, classes).astype(np.uint8)
        cut = wrist_cut(skin, keypoints)
        return labels if cut is skin else cut

    def __call__(self, rgb: np.ndarray, depth: np.ndarray | None = None, fx: float | None = None) -> Detection:
        """Segmentation and keypoints of one (H, W, 3) uint8 RGB image (see :class:`Detection`);
        ``depth`` (H, W) metres and ``fx`` the focal length in pixels (see :meth:`keypoints`)."""
        classes = self.segment_classes(rgb, depth)
        if self.object_gate_m > 0 and depth is not None and fx is not None:
            far = far_from_object(classes == 2, classes == 1, np.asarray(depth, dtype=np.float32), float(fx),
                                  self.object_gate_m)
            if far.any():
                classes = np.where(far, FOREARM_CLASS if self.forearm_class else 0, classes).astype(np.uint8)
        labels = self.cue_labels(classes)
        kp, box = self.keypoints(rgb, labels, depth, fx)
        if self.cut_wrist and box is not None:
            cut = self.cut_at_wrist(classes, kp)
            if self.redetect and not np.array_equal(cut == 2, labels == 2):  # the hand box of the cut mask
                kp2, box2 = self.keypoints(rgb, cut, depth, fx)
                if box2 is not None:  # and the cut again at the second pass's wrist
                    kp, box = kp2, box2
                    cut = self.cut_at_wrist(classes, kp)
            labels = cut
        return Detection(labels=labels, keypoints=kp, box=box)


def _calibration(seq, camera_id: str):
    """A camera's calibration (intrinsics and extrinsics), or None when it cannot be read."""
    try:
        return seq.calibration(camera_id)
    except (FileNotFoundError, ValueError):
        return None


def _check_rgb(rgb: np.ndarray) -> np.ndarray:
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"expected an RGB image of shape (H, W, 3) uint8, got {rgb.shape} {rgb.dtype}")
    return rgb


@dataclass(frozen=True)
class DetectSummary:
    """written: cue files written; skipped: existing cue files kept; frames: frame x camera
    pairs processed; seconds: wall time of the networks; fused: the multi-view fusion's summary
    (``fuse_views=True``) or None."""

    written: int
    skipped: int
    frames: int
    seconds: float
    fused: FuseSummary | None = None


def detect_sequence(sequence: str | Path, weights_dir: str | Path | None = None, *,
                    cameras: list[str] | None = None, overwrite: bool = False, device: str = "auto",
                    detector: Detector | None = None, fuse_views: bool | None = None,
                    progress: Callable[[int, int], None] | None = None) -> DetectSummary:
    """Write ``segmentation/<cam>/<frame>.png`` and ``keypoints2d/<cam>/<frame>.json`` for a capture.

    Args:
        sequence: capture folder (``rgb/<cam>/<frame>``).
        weights_dir: weights folder (None: shipped weights). cameras: camera ids (default all).
        overwrite: replace existing cue files (else they are kept and the frame is skipped
            when both exist).
        device: where the networks run. detector: an already loaded :class:`Detector`.
        fuse_views: then make the keypoints of each frame agree across the cameras
            (:func:`honnotate.perception.multiview.fuse_sequence_keypoints`; 3 or more cameras,
            calibrated; the per-view detections are kept in ``keypoints2d_views/``). It fuses
            every keypoint file of those cameras, existing ones kept by this run included.
            None (default): when there are 3 or more cameras, all with extrinsics (on the
            5-camera annotation benchmark capture the hand error with detected cues fell from
            14.1 to 12.2 mm, BENCHMARKS annotate_cues); True: required (ValueError otherwise).
        progress: called as ``progress(done, total)`` per frame x camera.

    Raises:
        WeightsError (weights), KeyError (unknown camera, naming the sequence), FileNotFoundError,
        ValueError (``fuse_views`` with fewer than 3 cameras, before anything is detected).
    """
    import time

    from honnotate.io.cues import write_keypoints2d, write_segmentation
    from honnotate.io.sequence import open_sequence

    seq = open_sequence(sequence)
    cams = list(cameras) if cameras else seq.camera_ids
    for c in cams:
        if c not in seq.camera_ids:
            raise KeyError(f"{seq.root}: no camera {c!r}; cameras are {seq.camera_ids}")
    if fuse_views and len(cams) < 3:
        raise ValueError(f"{seq.root}: fusing keypoints across views needs at least 3 cameras, got {len(cams)}")
    if fuse_views is None:
        fuse_views = len(cams) >= 3 and all(_calibration(seq, c) is not None for c in cams)
    det = detector or Detector(weights_dir, device)
    jobs = [(c, f) for c in cams for f in seq.frame_ids]
    written = skipped = 0
    seconds = 0.0
    for i, (cam, frame) in enumerate(jobs):
        seg_path = seq.root / "segmentation" / cam / f"{frame}.png"
        kp_path = seq.root / "keypoints2d" / cam / f"{frame}.json"
        todo = [p for p in (seg_path, kp_path) if overwrite or not p.exists()]
        skipped += 2 - len(todo)
        if todo:
            t0 = time.perf_counter()
            rgb = seq.rgb(cam, frame)
            depth = seq.depth(cam, frame) if det.needs_depth or seq.path("depth", cam, frame) is not None else None
            if depth is not None and depth.shape != rgb.shape[:2] and not det.needs_depth:
                depth = None  # not registered to the colour image: no box floor, segmentation without depth
                # (RGB-D keypoint weights raise)
            calib = _calibration(seq, cam) if depth is not None else None
            d = det(rgb, depth, float(calib.K[0, 0]) if calib is not None else None)
            seconds += time.perf_counter() - t0
            if seg_path in todo:
                write_segmentation(seg_path, d.labels, durable=False)
            if kp_path in todo:
                write_keypoints2d(kp_path, d.keypoints, durable=False)
            written += len(todo)
        if progress:
            progress(i + 1, len(jobs))
    fused = fuse_sequence_keypoints(seq.root, cameras=cams) if fuse_views else None
    return DetectSummary(written=written, skipped=skipped, frames=len(jobs), seconds=seconds, fused=fused)
