"""Typed configuration of the annotation pipeline (saved beside every output).

Defaults follow the public HOnnotate code (../shared/reference: object tracking 25 Adam steps
per frame at 320x240; grasp pose 150 steps over 11 frames with the fingers frozen for the first
35; hand+object tracking 50 steps per frame at 320x240; refinement 40 steps per batch of 20
frames at 160x120; Adam beta1 = 0.5) and the paper (multi-camera: tracking, then the joint
optimisation over all frames in batches of 20). Resolutions are given as a fraction of the
capture's image size (0.5 of 640x480 = 320x240).

Departures from the reference code, all documented in ``docs/design.md``:

- Adam learning rates are per parameter group: rotations and finger angles 0.01 rad (the
  reference), translations 0.001 m (the reference's 0.01 on metres makes 1 cm steps) and a
  linear decay to ``lr_final_fraction`` over each stage, so the last steps settle instead of
  dithering at the step size.
- Stage weights are the reference's, rescaled to honnotate's term definitions (our silhouette
  and depth terms are means over pixels summed over pyramid levels, E_3D is a mean squared
  distance). The presets live in :mod:`honnotate.annotate.weights`.

Load a file with :func:`load_config` (JSON or YAML, partial: missing keys keep their
defaults; unknown keys are an error naming the key).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from honnotate.annotate.weights import TERM_NAMES, TermSettings, TermWeights

__all__ = [
    "StageConfig",
    "ObjectInitConfig",
    "HandInitConfig",
    "QualityConfig",
    "MultiCameraSchedule",
    "SingleCameraSchedule",
    "AnnotateConfig",
    "load_config",
    "save_config",
    "ConfigError",
]


class ConfigError(ValueError):
    """An annotation config file or value is invalid (the message names the file and key)."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _weights_dict(**kw: float) -> dict[str, float]:
    return {k: float(v) for k, v in kw.items()}


#: Data-term weights of the batch refinements, which render at 0.25 of the capture size. There a
#: silhouette pixel spans ~4 capture pixels, so the tracking stages' silhouette and depth weights
#: (mask 20, depth 2e4) pull the object off by a pixel's quantisation (multi-camera mug: 0.81 mm
#: after tracking, 1.80 mm after refinement). The resolution-free point-to-surface terms take over
#: (mask 2, depth 5e3, E_3D hand 5e4, object 1e5), and the refinement improves hand and object
#: over tracking on every capture of benchmarks/annotate.py (BENCHMARKS.md, section annotate).
_REFINEMENT_DATA_WEIGHTS = {"mask": 2.0, "depth": 5e3, "points3d_hand": 5e4, "points3d_object": 1e5}
#: Data-term weights of the stages at 0.5 of the capture size (tracking, grasp).
_TRACKING_DATA_WEIGHTS = {"mask": 20.0, "depth": 2e4, "points3d_hand": 2e4, "points3d_object": 2e4}


class StageConfig(_Model):
    """One optimisation stage.

    steps: Adam steps per frame (per-frame stages) or per batch (batch stages);
    scale: render resolution as a fraction of the capture size; lr: learning rate of rotations and
    finger angles (radians); lr_translation: of translations (metres); lr_final_fraction: the
    learning rate decays linearly to this fraction at the last step; beta1: Adam beta1 (reference
    0.5); weights: term name -> weight (terms not named get 0; names from
    :data:`honnotate.annotate.weights.TERM_NAMES`).
    """

    steps: int = Field(ge=0)
    scale: float = Field(gt=0, le=1)
    lr: float = Field(default=0.01, gt=0)
    lr_translation: float = Field(default=0.001, gt=0)
    lr_final_fraction: float = Field(default=0.1, gt=0, le=1)
    beta1: float = Field(default=0.5, ge=0, lt=1)
    weights: dict[str, float]

    @field_validator("weights")
    @classmethod
    def _names(cls, v: dict[str, float]) -> dict[str, float]:
        unknown = sorted(set(v) - set(TERM_NAMES))
        if unknown:
            raise ValueError(f"unknown term name(s) {unknown}; expected names from {list(TERM_NAMES)}")
        bad = [k for k, x in v.items() if not x >= 0]
        if bad:
            raise ValueError(f"weights must be >= 0: {bad}")
        return v

    def term_weights(self) -> TermWeights:
        """The weights as :class:`TermWeights`."""
        return TermWeights(**self.weights)


class ObjectInitConfig(_Model):
    """Automatic first-frame object pose: ``candidates`` ICP hypotheses (of
    ``directions`` x ``inplane`` start rotations) are each refined by ``steps`` Adam steps on the
    rendered silhouette + depth energy at ``scale`` in every camera, and the lowest energy wins
    (this removes the 180-degree flips a point cloud alone cannot tell apart); ``anchors``: the
    ICP starts also put the visible cloud on that many points spread over the mesh (partial
    views). ``min_points``:
    fewest object points for a frame to start from (else the next frame is used).

    One view often cannot tell a pose from a near-symmetric one (the mustard bottle's cap hidden
    by the hand, the mug's handle behind it). Hypotheses whose energy is within ``ambiguity``
    (relative) of the best, at most ``verify_hypotheses``, are each tracked over the next
    ``verify_frames`` frames (``verify_steps`` Adam steps per frame after an ICP warm start) and
    the one with the lowest mean energy over those frames wins: as the object turns, the wrong
    pose stops fitting. They are tracked in lockstep, ``verify_chunk`` frames at a time; after
    ``verify_min_frames`` frames a hypothesis whose mean energy is above ``1 + verify_margin``
    times the lowest is dropped, and verification ends when one is left."""

    candidates: int = Field(default=6, ge=1)
    directions: int = Field(default=40, ge=1)
    inplane: int = Field(default=4, ge=1)
    anchors: int = Field(default=6, ge=0)
    steps: int = Field(default=40, ge=0)
    scale: float = Field(default=0.5, gt=0, le=1)
    min_points: int = Field(default=200, ge=10)
    ambiguity: float = Field(default=0.1, ge=0)
    verify_hypotheses: int = Field(default=3, ge=1)
    verify_frames: int = Field(default=200, ge=1)
    verify_steps: int = Field(default=5, ge=1)
    verify_chunk: int = Field(default=10, ge=1)
    verify_min_frames: int = Field(default=20, ge=1)
    verify_margin: float = Field(default=0.5, ge=0)


class HandInitConfig(_Model):
    """Hand initialisation from 2D keypoints (paper Eq. 11 / 12).

    iterations: LM iterations per frame; grasp_frames: frames of the single-camera shared grasp
    (reference: 25 chosen by farthest-point sampling of the object rotation); conf_threshold:
    keypoints with lower confidence are ignored; limit_weight: nu of Eq. 11 (paper 50);
    shape_frames: frames of the multi-camera shape fit (shared betas); shape_prior: weight of
    |betas|^2 in that fit (pixels^2); max_object_energy_ratio: the single-camera grasp is fitted
    only on frames whose object-only energy after the object tracking is at most this times the
    median over the sequence (a frame where the tracking lost the object would tie the hand to a
    wrong object pose; 0: no gate); grasp_starts: starts of the shared finger pose in the
    single-camera grasp fit (the weighted mean of the per-frame fits and the finger poses of the
    best-fitting frames; the lowest robust cost wins; 1: the mean only); consensus_px,
    consensus_views: with several cameras, the views of a joint whose keypoint misses the point
    on which at least ``consensus_views`` views agree by more than ``consensus_px`` pixels are
    dropped for every stage (:mod:`honnotate.annotate.consensus`; 0: off; on the 5-camera
    benchmark capture with simulated detector errors it lowers the hand error from 2.97 to
    2.14 mm, with the shipped networks' cues it is neutral: benchmarks/annotate.py --compare-cues).
    """

    iterations: int = Field(default=40, ge=1)
    grasp_frames: int = Field(default=25, ge=1)
    conf_threshold: float = Field(default=0.1, ge=0, lt=1)
    limit_weight: float = Field(default=50.0, ge=0)
    shape_frames: int = Field(default=12, ge=1)
    shape_prior: float = Field(default=5.0, ge=0)
    max_object_energy_ratio: float = Field(default=2.0, ge=0)
    grasp_starts: int = Field(default=3, ge=1)
    consensus_px: float = Field(default=15.0, ge=0)
    consensus_views: int = Field(default=3, ge=3)


class QualityConfig(_Model):
    """Per-frame review flags (see :mod:`honnotate.annotate.quality`): a frame is flagged when
    the rendered hand or object silhouette overlaps its segmentation cue with IoU below
    ``min_iou``, the median keypoint reprojection error exceeds ``max_keypoint_px`` (pixels at the
    capture size), or the median absolute depth residual on the hand/object exceeds
    ``max_depth_residual`` metres; frames lacking a cue are always flagged."""

    min_iou: float = Field(default=0.6, ge=0, le=1)
    max_keypoint_px: float = Field(default=15.0, gt=0)
    max_depth_residual: float = Field(default=0.015, gt=0)


def _refinement_stage(steps: int) -> StageConfig:
    """The batch refinement at 0.25 of the capture size, temporal terms on (both pipelines)."""
    return StageConfig(steps=steps, scale=0.25,
                       weights=_weights_dict(**_REFINEMENT_DATA_WEIGHTS, keypoints2d=2e-4, joint_limits=1.0,
                                             interpenetration=0.5, hand_accel=2.0, object_rot_accel=50.0,
                                             object_trans_vel=50.0))


class MultiCameraSchedule(_Model):
    """Multi-camera pipeline (paper Sec. 4.2): per-frame tracking then the joint optimisation
    over all frames in overlapping batches (``batch_size`` frames, consecutive batches share
    ``batch_overlap`` frames)."""

    tracking: StageConfig = StageConfig(
        steps=50, scale=0.5,
        weights=_weights_dict(**_TRACKING_DATA_WEIGHTS, keypoints2d=2e-4, joint_limits=1.0, interpenetration=0.5))
    refinement: StageConfig = _refinement_stage(60)
    batch_size: int = Field(default=20, ge=1)
    batch_overlap: int = Field(default=5, ge=0)


class SingleCameraSchedule(_Model):
    """Single-camera pipeline (paper Sec. 4.1, the reference code's stages).

    object_tracking: object alone, hand pixels ignored; grasp: Eq. 13 over ``grasp_frames`` of the
    hand initialisation's frames (reference 11; one
    grasp and finger pose shared, per-frame object poses; the fingers frozen for the first
    ``grasp_finger_delay`` steps, reference 35); tracking: object pose per frame with the hand
    rigidly attached through the grasp, each frame started from its tracked neighbour's pose when
    that pose's energy there is below ``tracking_neighbour_ratio`` times its own pose's (0: never;
    the object alone drifts where the hand hides it; :func:`honnotate.annotate.stages.track_frames`);
    refinement: batches of ``batch_size`` frames (shared
    relative wrist pose, per-frame fingers and object poses), temporal terms on.
    """

    object_tracking: StageConfig = StageConfig(
        steps=15, scale=0.5, lr=0.005,
        weights=_weights_dict(mask=20.0, depth=2e4, points3d_object=2e4))
    grasp: StageConfig = StageConfig(
        steps=150, scale=0.5,
        weights=_weights_dict(**_TRACKING_DATA_WEIGHTS, keypoints2d=2e-4, joint_limits=1.0, interpenetration=0.5))
    grasp_finger_delay: int = Field(default=35, ge=0)
    grasp_frames: int = Field(default=11, ge=1)
    tracking: StageConfig = StageConfig(
        steps=25, scale=0.5,
        weights=_weights_dict(**_TRACKING_DATA_WEIGHTS, keypoints2d=2e-4, joint_limits=1.0))
    tracking_neighbour_ratio: float = Field(default=1.0, ge=0)
    refinement: StageConfig = _refinement_stage(40)
    batch_size: int = Field(default=20, ge=1)
    batch_overlap: int = Field(default=5, ge=0)


class AnnotateConfig(_Model):
    """Everything :func:`honnotate.pipeline.annotate.annotate_sequence` needs besides the capture.

    device: "auto" (CUDA when available), "cpu" or a torch device string; frames: optional
    "start:stop[:step]" slice of the frame list; cameras: camera ids to use (None: all);
    mode: "auto" (multi-camera with >= 2 cameras), "single" or "multi"; hand_model: overrides
    meta.yaml's; shape: "auto" (meta.yaml / shape file when given, else estimated), "mean"
    (betas 0) or "estimate"; cloud_points: observed points kept per label and frame for E_3D;
    detect: run honnotate's detector when cue files are missing (else an error says how to make
    them); checkpoint_every: per-frame stages save progress every this many frames.
    """

    device: str = "auto"
    frames: str | None = None
    cameras: list[str] | None = None
    mode: Literal["auto", "single", "multi"] = "auto"
    hand_model: str | None = None
    shape: Literal["auto", "mean", "estimate"] = "auto"
    cloud_points: int = Field(default=600, ge=10)
    detect: bool = True
    checkpoint_every: int = Field(default=10, ge=1)
    #: max_depth 1.5 m, not the reference code's 0.75 m (fitted to its rig): captures reach 0.8 m
    #: and an object's far side lies beyond, so 0.75 m cut objects to a sliver (a mug at 0.79 m lost)
    terms: TermSettings = TermSettings(keypoint_kind="geman_mcclure", keypoint_scale=15.0, max_depth=1.5)
    object_init: ObjectInitConfig = ObjectInitConfig()
    hand_init: HandInitConfig = HandInitConfig()
    multi: MultiCameraSchedule = MultiCameraSchedule()
    single: SingleCameraSchedule = SingleCameraSchedule()
    quality: QualityConfig = QualityConfig()

    @field_validator("frames")
    @classmethod
    def _slice(cls, v: str | None) -> str | None:
        if v is not None:
            parse_frame_slice(v)
        return v

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (JSON-serialisable), the format :func:`load_config` reads."""
        return json.loads(self.model_dump_json())


def parse_frame_slice(text: str) -> slice:
    """``"start:stop[:step]"`` (each part optional) -> slice; errors say what is expected."""
    parts = text.split(":")
    if len(parts) not in (2, 3):
        raise ValueError(f"frames: expected 'start:stop[:step]', got {text!r}")
    try:
        vals = [int(p) if p.strip() else None for p in parts]
    except ValueError:
        raise ValueError(f"frames: expected integers in 'start:stop[:step]', got {text!r}") from None
    if len(vals) == 3 and vals[2] is not None and vals[2] <= 0:
        raise ValueError(f"frames: step must be > 0, got {text!r}")
    return slice(*vals)


def load_config(path: str | Path | None = None, **overrides: Any) -> AnnotateConfig:
    """Read a (partial) config file, JSON or YAML, and apply top-level ``overrides``.

    Raises:
        ConfigError: unreadable file, invalid YAML/JSON, unknown keys or invalid values (the
            message names the file and the key path).
    """
    data: dict[str, Any] = {}
    where = "config"
    if path is not None:
        p = Path(path)
        where = str(p)
        if not p.is_file():
            raise ConfigError(f"{p}: no such config file")
        try:
            text = p.read_text(encoding="utf-8")
            loaded = json.loads(text) if p.suffix.lower() == ".json" else yaml.safe_load(text)
        except (json.JSONDecodeError, yaml.YAMLError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{p}: cannot parse ({exc})") from None
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"{p}: expected a mapping of keys to values, got {type(loaded).__name__}")
        data = _merge(AnnotateConfig().to_dict(), loaded)
    data.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return AnnotateConfig.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"key '{'.'.join(str(x) for x in e['loc']) or '<root>'}': {e['msg']}"
                             for e in exc.errors())
        raise ConfigError(f"{where}: {problems}") from None


def _merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """Recursive dict merge (a stage's ``weights`` mapping is replaced, not merged)."""
    out = dict(base)
    for k, v in update.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict) and k != "weights":
            out[k] = _merge(out[k], v)
        else:
            out[k] = v
    return out


def save_config(path: str | Path, config: AnnotateConfig) -> Path:
    """Write the resolved config as JSON (atomic)."""
    from honnotate.io.files import atomic_write_text

    return atomic_write_text(path, json.dumps(config.to_dict(), indent=2) + "\n")
