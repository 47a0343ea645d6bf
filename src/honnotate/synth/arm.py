"""A forearm for generated captures: the hand of a real capture never floats alone.

Every real recording of a hand holding an object shows the forearm behind the wrist (bare or
in a sleeve). Without it a detector must tell which fingertips it sees from the fingertips
alone; with it, the arm's direction says where the wrist is, as in real images. The arm is
scenery, not annotation: it is rendered (RGB, depth, occlusion) under its own label, written
as background in the segmentation, and appears in no ground truth.

* :func:`wrist_ring` (once per hand model): the vertices of the hand mesh's wrist opening.
* :func:`forearm_mesh` (pure geometry): per frame, a tapered elliptic tube from that opening
  along the forearm direction, with an optional sleeve, as one mesh of fixed topology.
* :func:`draw_forearm`: the random arm of one capture (length, bend at the wrist, sleeve),
  chosen among a few draws to stay out of the object and above the table.

Units: metres; frames: whatever frame the inputs are in (the generator's world frame).
"""

from __future__ import annotations

import colorsys
from dataclasses import dataclass

import numpy as np
import roma
import torch

from honnotate.models.joints import FINGER_JOINTS

__all__ = ["ARM_LABEL", "ForearmSpec", "wrist_ring", "forearm_mesh", "draw_forearm"]

#: Render label of the forearm (written as background in the segmentation).
ARM_LABEL = 4
#: Keypoints (MANO order) that fix the hand's frame: wrist, index, middle and pinky MCP.
_WRIST = 0
_INDEX_MCP, _MIDDLE_MCP, _PINKY_MCP = (FINGER_JOINTS[f][0] for f in ("index", "middle", "pinky"))
_SEGMENTS = 20  # vertices around the tube


def wrist_ring(faces: np.ndarray) -> np.ndarray:
    """Vertex ids (R,) of the longest boundary loop of a hand mesh (its wrist opening), or an
    empty array for a closed mesh. faces: (F, 3) int."""
    f = np.asarray(faces, dtype=np.int64)
    edges = np.sort(np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]]), axis=1)
    uniq, count = np.unique(edges, axis=0, return_counts=True)
    return np.unique(uniq[count == 1])


@dataclass(frozen=True)
class ForearmSpec:
    """The random draws of one capture's forearm.

    length: metres from the wrist to the elbow end. bend: (2,) radians, the forearm direction
    turned from the hand's wrist-to-fingers axis about the palm-width axis (flexion) and the
    palm normal (deviation). swell: (2,) the elbow end's semi-axes over the wrist's (width,
    thickness). sleeve_from: metres from the wrist where a sleeve starts (None: bare arm).
    sleeve_colour: (3,) in [0, 1]. skin_gain: the arm's skin over the hand's tone.
    """

    length: float = 0.26
    bend: tuple[float, float] = (0.0, 0.0)
    swell: tuple[float, float] = (1.2, 1.5)
    sleeve_from: float | None = None
    sleeve_colour: tuple[float, float, float] = (0.3, 0.3, 0.35)
    skin_gain: float = 0.97


def _hand_frame(joints: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(d, w, n), each (N, 3): unit wrist-away-from-fingers axis, palm width (pinky to index,
    orthogonal to d) and their cross product, from joints (N, 21, 3)."""
    d = joints[:, _WRIST] - joints[:, _MIDDLE_MCP]
    d = d / np.linalg.norm(d, axis=-1, keepdims=True)
    w = joints[:, _INDEX_MCP] - joints[:, _PINKY_MCP]
    w = w - (w * d).sum(-1, keepdims=True) * d
    w = w / np.linalg.norm(w, axis=-1, keepdims=True)
    return d, w, np.cross(d, w)


def _rotate(v: np.ndarray, axis: np.ndarray, angle: float) -> np.ndarray:
    """v (N, 3) rotated about unit axes (N, 3) by one angle (radians)."""
    R = roma.rotvec_to_rotmat(torch.as_tensor(axis * angle)).numpy()
    return np.einsum("nij,nj->ni", R, v)


def forearm_mesh(hand_vertices: np.ndarray, joints: np.ndarray, ring: np.ndarray, spec: ForearmSpec,
                 skin: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The forearm of each frame as an elliptic tube from the wrist opening.

    The tube starts 1 cm inside the hand (hidden by it) at the ellipse fitted to the wrist ring,
    runs along the hand's wrist axis turned by ``spec.bend`` and widens to ``spec.swell`` times
    that ellipse at ``spec.length``, where a cap closes it. A sleeve is 25% wider than the arm.

    Args:
        hand_vertices: (N, V, 3) posed hand. joints: (N, 21, 3) its keypoints (MANO order).
        ring: (R,) wrist ring vertex ids (:func:`wrist_ring`; empty: a 5.6 x 4 cm wrist).
        spec: the arm's draws. skin: (3,) hand skin tone in [0, 1].

    Returns:
        ``(vertices (N, A, 3), faces (G, 3) int64, colours (A, 3) in [0, 1])``, the same
        topology every frame.
    """
    hv = np.asarray(hand_vertices, dtype=np.float64)
    J = np.asarray(joints, dtype=np.float64)
    d, w, n = _hand_frame(J)
    if len(ring):
        pts = hv[:, ring]
        centre = pts.mean(1)
        a0 = 0.5 * np.ptp(((pts - centre[:, None]) * w[:, None]).sum(-1), axis=1)
        b0 = 0.5 * np.ptp(((pts - centre[:, None]) * n[:, None]).sum(-1), axis=1)
    else:
        centre, a0, b0 = J[:, _WRIST], np.full(len(J), 0.028), np.full(len(J), 0.02)
    axis = _rotate(d, w, spec.bend[0])
    axis = _rotate(axis, n, spec.bend[1])
    w2 = w - (w * axis).sum(-1, keepdims=True) * axis
    w2 = w2 / np.linalg.norm(w2, axis=-1, keepdims=True)
    n2 = np.cross(axis, w2)
    # Stations along the arm: (distance from the wrist, radius factor, is sleeve).
    L = float(spec.length)
    s = [-0.01, 0.0, 0.03]
    if spec.sleeve_from is not None:
        sf = float(np.clip(spec.sleeve_from, 0.035, L - 0.02))
        s += [sf - 1e-3, sf]
    s += list(np.linspace(0.06, L, 6))
    s = np.array(sorted(set(np.round(s, 6))))
    sleeve = np.array([spec.sleeve_from is not None and x >= float(np.clip(spec.sleeve_from, 0.035, L - 0.02))
                       for x in s])
    t = np.clip(s / L, 0.0, 1.0)
    # the wrist ellipse, 0.92 of it inside the hand, then a smooth widening toward the elbow
    grow = 3 * t ** 2 - 2 * t ** 3
    fa = np.where(s < 0, 0.92, 1.0 + (spec.swell[0] - 1.0) * grow) * np.where(sleeve, 1.25, 1.0)
    fb = np.where(s < 0, 0.92, 1.0 + (spec.swell[1] - 1.0) * grow) * np.where(sleeve, 1.25, 1.0)
    phi = np.linspace(0, 2 * np.pi, _SEGMENTS, endpoint=False)
    cos, sin = np.cos(phi), np.sin(phi)
    # (N, S, P, 3)
    rings = (centre[:, None, None] + s[None, :, None, None] * axis[:, None, None]
             + (a0[:, None, None] * fa[None, :, None] * cos[None, None])[..., None] * w2[:, None, None]
             + (b0[:, None, None] * fb[None, :, None] * sin[None, None])[..., None] * n2[:, None, None])
    S, P = len(s), _SEGMENTS
    cap = centre + L * axis
    verts = np.concatenate([rings.reshape(len(J), S * P, 3), cap[:, None]], axis=1)
    faces = []
    for i in range(S - 1):
        for j in range(P):
            a, b = i * P + j, i * P + (j + 1) % P
            c, e = a + P, b + P
            faces += [(a, b, e), (a, e, c)]
    last = (S - 1) * P
    faces += [(last + j, last + (j + 1) % P, S * P) for j in range(P)]
    skin_c = np.clip(np.asarray(skin, dtype=np.float64) * spec.skin_gain, 0, 1)
    col = np.where(np.repeat(sleeve, P)[:, None], np.asarray(spec.sleeve_colour, dtype=np.float64)[None], skin_c[None])
    col = np.concatenate([col, col[-1:]], axis=0)
    return verts, np.asarray(faces, dtype=np.int64), col


def draw_forearm(rng: np.random.Generator, hand_vertices: np.ndarray, joints: np.ndarray, ring: np.ndarray, *,
                 inside_object=None, table_y: float | None = None, tries: int = 6,
                 sleeve_prob: float = 0.6) -> ForearmSpec:
    """Draw a capture's forearm: a few candidates, the one least inside the object and the table.

    Args:
        rng: the arm's own random stream. hand_vertices (N, V, 3), joints (N, 21, 3): the posed
            hand of every frame (world frame, y down). ring: wrist ring ids.
        inside_object: optional callable ``(points (N, M, 3)) -> (N, M)`` signed distance of
            each frame's points to that frame's posed object, > 0 inside.
        table_y: the table plane's height (world y, down); points below it count as inside.
        tries: candidates drawn; the first one without any collision is taken.

    Returns:
        The chosen :class:`ForearmSpec`.
    """
    best, best_cost = None, np.inf
    for _ in range(max(1, tries)):
        sleeve = rng.random() < sleeve_prob
        hue = rng.uniform(0, 1)
        spec = ForearmSpec(
            length=float(rng.uniform(0.22, 0.30)),
            bend=(float(rng.uniform(-0.45, 0.45)), float(rng.uniform(-0.3, 0.3))),
            swell=(float(rng.uniform(1.1, 1.3)), float(rng.uniform(1.3, 1.7))),
            sleeve_from=float(rng.uniform(0.03, 0.15)) if sleeve else None,
            sleeve_colour=tuple(float(x) for x in colorsys.hsv_to_rgb(hue, rng.uniform(0.0, 0.8), rng.uniform(0.1, 0.9))),
            skin_gain=float(rng.uniform(0.9, 1.02)),
        )
        if inside_object is None and table_y is None:  # nothing to stay out of: the first draw
            return spec
        verts, _, _ = forearm_mesh(hand_vertices, joints, ring, spec, np.full(3, 0.5))
        pts = verts[:, ::3]  # (N, M, 3) a subset of the tube's vertices
        cost = 0.0
        if inside_object is not None:
            cost += float(np.clip(inside_object(pts), 0, None).sum())
        if table_y is not None:
            cost += float(np.clip(pts[..., 1] - table_y, 0, None).sum())
        if cost < best_cost:
            best, best_cost = spec, cost
        if cost == 0.0:
            break
    return best
