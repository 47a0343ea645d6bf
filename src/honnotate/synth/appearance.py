"""Hand appearance for generated images: where a hand's palm side and nails are, and its colours.

A hand of one skin tone all over gives a network only shape and shading to tell one finger from
the next. Real hands have nails on the back of the fingertips and a lighter palm; this module
finds those regions on any MANO-topology hand model and colours them.

* :func:`hand_regions` (pure geometry, once per model): per vertex, how much it faces the palm
  side (``palmar`` in [0, 1]) and how much it is nail (``nail`` in [0, 1]). Each vertex belongs
  to its nearest bone; the palm side of a finger is the way its fingertip moves when its last
  joint flexes (in the direction of the joint's larger limit), which holds for the thumb too.
* :func:`hand_colors`: (V, 3) albedo in [0, 1] of a skin tone with those regions.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from honnotate.geometry.mesh import vertex_normals
from honnotate.models.joints import FINGER_JOINTS, KEYPOINT_PARENTS, SKELETON_BONES, TIP_INDICES
from honnotate.models.limits import model_joint_limits

__all__ = ["HandRegions", "hand_regions", "hand_colors"]

#: Palm albedo is the skin tone moved this far toward ``_PALM`` (palms carry less pigment).
_PALM = np.array([0.93, 0.74, 0.64])
_NAIL = np.array([0.95, 0.82, 0.80])


@dataclass(frozen=True)
class HandRegions:
    """Per-vertex regions of a hand mesh. palmar, nail: (V,) float64 in [0, 1]."""

    palmar: np.ndarray
    nail: np.ndarray


def _smoothstep(lo: float, hi: float, x: np.ndarray) -> np.ndarray:
    t = np.clip((x - lo) / (hi - lo), 0.0, 1.0)
    return t * t * (3 - 2 * t)


def hand_regions(hand, betas: np.ndarray | None = None, flex: float = 0.8) -> HandRegions:
    """Palm side and nails of ``hand`` (a :class:`honnotate.models.hand.HandModel`) in its rest
    pose (shape ``betas``, default the mean).

    Args:
        hand: the hand model (any side; MANO or the open hand).
        betas: (num_betas,) shape, or None for zeros.
        flex: radians of the distal-joint flexion that finds each finger's palm side.
    """
    dtype = next(hand.buffers()).dtype
    b = torch.zeros(1, hand.num_betas, dtype=dtype) if betas is None else torch.as_tensor(betas, dtype=dtype)[None]
    zero = torch.zeros(1, 3, dtype=dtype)
    lim = model_joint_limits(hand.data)
    anat = torch.zeros(1, 15, 3, dtype=dtype)
    for tip in TIP_INDICES:
        j = KEYPOINT_PARENTS[tip] - 1  # the pose joint moving the tip (pose joints are keypoints 1..15)
        axis = int(np.argmax(lim[j, :, 1] - lim[j, :, 0]))  # the flexion axis has the widest range
        anat[0, j, axis] = flex if abs(lim[j, axis, 1]) >= abs(lim[j, axis, 0]) else -flex
    with torch.no_grad():
        rest = hand(zero, torch.zeros(1, 45, dtype=dtype), b)
        bent = hand(zero, hand.anatomical_to_pose(anat), b)
    V = rest.vertices[0].double().numpy()
    J = rest.joints[0].double().numpy()
    Jb = bent.joints[0].double().numpy()
    normals = vertex_normals(rest.vertices[0], torch.as_tensor(hand.faces)).double().numpy()
    # each finger's palm-side direction: the tip's displacement across its distal bone
    finger_dir = {}
    for tip in TIP_INDICES:
        bone = J[tip] - J[KEYPOINT_PARENTS[tip]]
        bone /= np.linalg.norm(bone)
        d = Jb[tip] - J[tip]
        d -= (d @ bone) * bone
        finger_dir[tip] = d / max(np.linalg.norm(d), 1e-12)
    tip_of = {k: ids[-1] for ids in FINGER_JOINTS.values() for k in ids}  # keypoint -> its finger's tip
    dist, along = [], []
    for p, c in SKELETON_BONES:
        ab = J[c] - J[p]
        s = np.clip(((V - J[p]) @ ab) / (ab @ ab), 0.0, 1.0)
        dist.append(np.linalg.norm(V - (J[p] + s[:, None] * ab), axis=1))
        along.append(s)
    nearest = np.argmin(np.stack(dist, 1), 1)
    s_along = np.stack(along, 1)[np.arange(len(V)), nearest]
    dirs = np.stack([finger_dir[tip_of[c]] for _, c in SKELETON_BONES])[nearest]
    facing = np.einsum("ij,ij->i", normals, dirs)
    palmar = _smoothstep(-0.15, 0.45, facing)
    distal = np.array([c in TIP_INDICES for _, c in SKELETON_BONES])[nearest]
    nail = distal * _smoothstep(0.35, 0.6, s_along) * _smoothstep(0.45, 0.8, -facing)
    return HandRegions(palmar=palmar, nail=nail)


def hand_colors(regions: HandRegions, tone: np.ndarray, rng: np.random.Generator, noise: float = 0.03) -> np.ndarray:
    """(V, 3) albedo in [0, 1]: the skin ``tone`` (3,), lighter toward the palm, nails pale pink,
    with per-vertex brightness noise of relative std ``noise``. Draws from ``rng``."""
    tone = np.asarray(tone, dtype=np.float64)
    palm = tone + rng.uniform(0.3, 0.6) * (_PALM - tone)
    nail = tone + rng.uniform(0.5, 0.8) * (_NAIL - tone)
    p = regions.palmar[:, None]
    n = regions.nail[:, None]
    col = (1 - p) * tone + p * palm
    col = (1 - n) * col + n * nail
    return np.clip(col * (1 + rng.normal(0, noise, (len(col), 1))), 0, 1)
