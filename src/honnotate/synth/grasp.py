"""Grasp synthesis: place a MANO-format hand on an object and close its fingers to contact.

A grasp is built in the object frame in three steps, and a fourth if it does not hold (all
deterministic given the seed):

1. **Approach.** The object's principal axes (bounding-box extents) give a long axis, an
   approach axis and a wrap axis. The palm faces the object along the approach axis, the
   fingers point along the wrap axis (they wrap around the object), with a random tilt about
   the approach axis and a random offset along the long axis.
2. **Palm contact.** The hand slides along the approach axis until its palm vertices are a
   configured gap away from the surface (power grasp: touching; precision: a few cm away).
3. **Finger closing.** Each finger follows a one-parameter curl synergy (MCP, PIP and DIP
   flexion growing together, anatomical angles clipped to the model's joint limits); a
   bisection finds the largest curl whose deepest vertex penetrates the object by at most
   ``max_penetration``: the finger ends in contact, or closes fully if it misses the object.
4. **Other placements.** If fewer fingers than a grasp needs to hold the object touch it (3 for a
   power grasp, 2 for a precision grasp; e.g. the palm over a mug's open top, the fingers closing
   into the opening), steps 1-3 are repeated with the approach side flipped, the fingers pointing
   the other way, both (then, if ``placements`` > 4, with the approach and wrap axes swapped), a
   fresh tilt and offset each time, up to ``placements`` times; the first placement that holds,
   else the one with the most fingers in contact, is kept.

A lateral grasp (key grip) follows its own recipe (:func:`_lateral_grasp`): the object is pinched
at a thin part, an edge or a rim (a chord of the object short enough for the opened thumb-index
gap, found by marching rays into it) between the thumb pad and the radial side of the curled
index finger; the thumb closes along a key synergy onto the far side of the chord.

Signed distances come from a warp BVH (:class:`~honnotate.geometry.mesh_query.MeshQuery`; positive
inside a watertight mesh). The result is a
:class:`Grasp` (hand parameters in the object frame) with its quality figures: maximum
penetration depth and the fingers in contact.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import roma
import torch

from honnotate.geometry.mesh_query import MeshQuery
from honnotate.models.hand import HandModel

__all__ = ["GraspConfig", "Grasp", "synthesize_grasp", "signed_distance", "FINGER_JOINTS"]

#: The three anatomical joints (indices into the 15 finger joints) of each finger, MANO order.
FINGER_JOINTS = {
    "index": (0, 1, 2), "middle": (3, 4, 5), "pinky": (6, 7, 8), "ring": (9, 10, 11), "thumb": (12, 13, 14),
}


@dataclass(frozen=True)
class GraspConfig:
    """Settings of :func:`synthesize_grasp` (lengths in metres, angles in radians).

    kind: "power" (palm on the object, all fingers wrap), "precision" (palm away, fingertips
        on the object) or "lateral" (key grip: fingers curled, the object pressed between the
        thumb pad and the radial side of the index finger).
    max_penetration: deepest admitted hand vertex inside the object once a finger is closed.
    palm_gap: distance between the palm and the surface (None: 0.002 power, 0.012 precision),
        or for a lateral grasp between the index's radial side and the surface (None: 0.001).
    tilt_range: random rotation of the hand about the approach axis, +-radians (power, precision).
    bisection_steps: iterations of the per-finger curl search (and of the key-grip thumb closure).
    placements: hand placements tried at most (power, precision; 1 to 8): the drawn one, then other
        approach sides and finger directions (5-8: approach and wrap axes swapped), until enough
        fingers touch the object (:data:`_MIN_CONTACTS`); the worst case costs this many grasps.
    """

    kind: Literal["power", "precision", "lateral"] = "power"
    max_penetration: float = 0.0015
    palm_gap: float | None = None
    tilt_range: float = 0.35
    bisection_steps: int = 12
    placements: int = 4


#: Fingers in contact for a power / precision grasp to hold; fewer, and the next placement is tried.
_MIN_CONTACTS = {"power": 3, "precision": 2}


@dataclass(frozen=True)
class Grasp:
    """A hand pose in the object frame (axis-angle, metres) and its quality figures.

    global_orient: (3,) wrist rotation; hand_pose: (45,) finger pose (flat-hand-mean convention);
    betas: (S,); transl: (3,); anatomical: (15, 3) the finger pose as anatomical angles;
    penetration: deepest hand vertex inside the object (m, >= 0); contacts: fingers whose
    vertices touch the surface (within 3 mm); curls: the curl found per finger (0 open, 1 closed;
    for a lateral grasp the thumb's key-synergy closure and the fixed curls of the fingers).
    """

    global_orient: np.ndarray
    hand_pose: np.ndarray
    betas: np.ndarray
    transl: np.ndarray
    anatomical: np.ndarray
    penetration: float
    contacts: tuple[str, ...]
    curls: dict[str, float] = field(default_factory=dict)
    kind: str = "power"


def signed_distance(query: MeshQuery, points: np.ndarray) -> np.ndarray:
    """Signed distance (N,) of points (N, 3) to the queried mesh: > 0 inside, metres."""
    return query.signed_distance(points)


def _as_trimesh(obj):
    import trimesh

    if isinstance(obj, trimesh.Trimesh):
        return obj
    if hasattr(obj, "to_trimesh"):
        return obj.to_trimesh()
    raise TypeError(f"object must be a trimesh.Trimesh or have to_trimesh(), got {type(obj).__name__}")


def _curl_to_anatomical(finger: str, c: float, base: np.ndarray, limits: np.ndarray | None) -> np.ndarray:
    """Anatomical angles (15, 3) with one finger set to curl ``c`` (others from ``base``)."""
    out = base.copy()
    j0, j1, j2 = FINGER_JOINTS[finger]
    if finger == "thumb":
        out[j0] = (0.9 * c - 0.2, 0.35 * c - 0.05, 0.75 * c - 0.1)
        out[j1, 0] = 0.6 * c
        out[j2, 0] = 0.8 * c
    else:
        out[j0, 0] = 1.45 * c
        out[j1, 0] = 1.7 * c
        out[j2, 0] = 1.15 * c
    if limits is not None:
        out = np.clip(out, limits[..., 0], limits[..., 1])
    return out


def _reach_contact(hand: HandModel, anat: np.ndarray, finger: str, tip: int, vids: np.ndarray, mesh: MeshQuery,
                   R: np.ndarray, transl: np.ndarray, betas: torch.Tensor, limits: np.ndarray | None,
                   max_penetration: float, steps: int = 80, lr: float = 0.03) -> np.ndarray:
    """Anatomical angles (15, 3) with ``finger``'s joints optimised (Adam, within the limits) so its
    vertex ``tip`` (the fingertip; for a key grip the thumb pad or the index's radial side) touches
    the surface while no vertex of the finger penetrates it.

    The signed distance is linearised at the closest surface point and normal, re-queried every
    step: sd(x) = -n . (x - c) (> 0 inside)."""
    dtype = hand.v_template.dtype
    joints = list(FINGER_JOINTS[finger])
    base = torch.as_tensor(anat[None], dtype=dtype)
    var = base[:, joints].clone().requires_grad_(True)
    lo = hi = None
    if limits is not None:
        lo = torch.as_tensor(limits[joints, :, 0], dtype=dtype)[None]
        hi = torch.as_tensor(limits[joints, :, 1], dtype=dtype)[None]
    go = roma.rotmat_to_rotvec(torch.as_tensor(R[None], dtype=dtype))
    tr = torch.as_tensor(transl[None], dtype=dtype)
    opt = torch.optim.Adam([var], lr=lr)
    best, best_cost = anat.copy(), np.inf
    for _ in range(steps):
        full = base.clone()
        full[:, joints] = var
        v = hand(go, hand.anatomical_to_pose(full), betas, tr).vertices[0]
        pts = v[vids]
        q = mesh.closest(pts.detach().numpy())
        c = torch.as_tensor(q.points, dtype=dtype)
        n = torch.as_tensor(q.normal, dtype=dtype)
        sd = -((pts - c) * n).sum(-1)
        sd_tip = sd[int(np.nonzero(vids == tip)[0][0])] if np.any(vids == tip) else sd.max()
        pen = torch.relu(sd - 0.5 * max_penetration)
        cost = (sd_tip + 0.5 * max_penetration) ** 2 + 10.0 * (pen ** 2).sum()
        true_pen = float(q.signed_distance.max())
        if true_pen <= max_penetration and float(cost.detach()) < best_cost:
            best_cost = float(cost.detach())
            best = full.detach()[0].numpy().copy()
        opt.zero_grad()
        cost.backward()
        opt.step()
        if lo is not None:
            with torch.no_grad():
                var.copy_(torch.maximum(torch.minimum(var, hi), lo))
    return best


#: Key grip (lateral pinch): finger curls (the index less than the others, so that the radial
#: side of its middle phalanx faces the thumb) and the thumb's key synergy as anatomical
#: (CMC, MCP, IP) angles, from open (pad about 6 cm off the index's radial side) to closed
#: (pad on the radial side of the index middle phalanx).
_KEY_CURLS = {"index": 0.75, "middle": 0.95, "ring": 1.0, "pinky": 1.0}
_KEY_THUMB_OPEN = np.array([[-0.6, 0.0, 0.35], [-0.2, 0.0, 0.0], [0.3, 0.0, 0.0]])
_KEY_THUMB_CLOSED = np.array([[0.0, 0.0, 0.35], [0.3, 0.0, 0.0], [0.6, 0.0, 0.0]])
#: Pinch chords: tilts of the pinch direction from the inward surface normal (radians; 0 pinches
#: a thin part across, ~45 deg an edge or rim, ~70 deg the near side of a round body), depths
#: (m) sampled along it to find where it leaves the object, and the admitted chord lengths.
_PINCH_TILTS = (0.0, 0.8, 1.2)
_PINCH_DEPTHS = np.array([0.002, 0.004, 0.006, 0.009, 0.012, 0.016, 0.020, 0.025, 0.030, 0.036, 0.042])
_PINCH_MIN_CHORD = 0.003


def _key_thumb(c: float, base: np.ndarray, limits: np.ndarray | None) -> np.ndarray:
    """Anatomical angles (15, 3) with the thumb at key-synergy value ``c`` (0 open, 1 closed)."""
    out = base.copy()
    out[list(FINGER_JOINTS["thumb"])] = _KEY_THUMB_OPEN + c * (_KEY_THUMB_CLOSED - _KEY_THUMB_OPEN)
    if limits is not None:
        out = np.clip(out, limits[..., 0], limits[..., 1])
    return out


def _rotation_between(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(3, 3) smallest rotation taking unit vector ``a`` to unit vector ``b``."""
    axis = np.cross(a, b)
    s, c = np.linalg.norm(axis), float(np.clip(a @ b, -1.0, 1.0))
    if s < 1e-9:
        if c > 0:
            return np.eye(3)
        axis = np.cross(a, np.eye(3)[int(np.argmin(np.abs(a)))])  # antiparallel: half turn about any normal
        s = np.linalg.norm(axis)
    return roma.rotvec_to_rotmat(torch.as_tensor(axis / s * np.arctan2(s, c))).numpy()


def _rotation_about(axis: np.ndarray, angle: np.ndarray) -> np.ndarray:
    """(K, 3, 3) rotations by ``angle`` (K,) radians about the unit ``axis`` (3,)."""
    return roma.rotvec_to_rotmat(torch.as_tensor(np.asarray(angle)[:, None] * axis[None])).numpy()


def _pinch_candidates(tm, mesh: MeshQuery, rng: np.random.Generator, n_points: int = 64,
                      max_chord: float = 0.042) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Chords of the object that fit between the index's radial side and the thumb pad.

    From ``n_points`` random surface points p (area-weighted) rays enter the object along
    directions d tilted by :data:`_PINCH_TILTS` from the inward normal; a ray is a candidate if
    it leaves the object again within ``max_chord``. Returns p (K, 3), outward normals at p
    (K, 3), d (K, 3) and the worst friction angle (K,) radians: the larger of the angles between
    d and the inward normal at p and between d and the outward normal where it leaves."""
    area = np.asarray(tm.area_faces)
    fid = rng.choice(len(area), n_points, p=area / area.sum())
    w = rng.dirichlet(np.ones(3), n_points)
    p = np.einsum("pk,pkj->pj", w, np.asarray(tm.triangles)[fid])
    n = np.asarray(tm.face_normals)[fid]
    helper = np.where(np.abs(n[:, :1]) < 0.9, np.array([[1.0, 0, 0]]), np.array([[0, 1.0, 0]]))
    u = np.cross(n, helper)
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    v = np.cross(n, u)
    dirs, tilts = [], []
    for tilt in _PINCH_TILTS:
        azimuths = [0.0] if tilt == 0 else rng.uniform(0, 2 * np.pi) + np.arange(6) * np.pi / 3
        for az in azimuths:
            dirs.append(-np.cos(tilt) * n + np.sin(tilt) * (np.cos(az) * u + np.sin(az) * v))
            tilts.append(np.full(n_points, tilt))
    d = np.stack(dirs, 1)  # (P, K, 3)
    tilt = np.stack(tilts, 1)
    depths = _PINCH_DEPTHS[_PINCH_DEPTHS <= max_chord]
    sd = mesh.signed_distance((p[:, None, None] + d[:, :, None] * depths[None, None, :, None]).reshape(-1, 3))
    inside = sd.reshape(*d.shape[:2], len(depths)) > 0
    # A candidate enters the object (inside at the first depth) and leaves it again.
    leaves = ~inside[..., 1:]
    exit_k = np.argmax(leaves, -1) + 1
    ok = inside[..., 0] & leaves.any(-1)
    pi, ki = np.nonzero(ok)
    if len(pi) == 0:
        empty = np.zeros((0, 3))
        return empty, empty, empty, np.zeros(0)
    lo, hi = depths[exit_k[pi, ki] - 1], depths[exit_k[pi, ki]]
    pc, dc = p[pi], d[pi, ki]
    for _ in range(3):  # bisect where the chord leaves the object
        mid = 0.5 * (lo + hi)
        inside_mid = mesh.signed_distance(pc + dc * mid[:, None]) > 0
        lo, hi = np.where(inside_mid, mid, lo), np.where(inside_mid, hi, mid)
    keep = hi >= _PINCH_MIN_CHORD
    q = mesh.closest(pc[keep] + dc[keep] * hi[keep, None])
    exit_angle = np.arccos(np.clip((dc[keep] * q.normal).sum(-1), -1.0, 1.0))
    worst = np.maximum(tilt[pi, ki][keep], exit_angle)
    return pc[keep], n[pi][keep], dc[keep], worst


def _lateral_grasp(hand: HandModel, tm, mesh: MeshQuery, rng: np.random.Generator, config: GraspConfig,
                   b: np.ndarray, finger_vids: dict[str, np.ndarray], transl_for, pose_hand) -> Grasp:
    """Key grip: a thin part, edge or rim of the object pinched between the thumb pad and the
    radial side of the curled index finger (see :func:`synthesize_grasp`).

    1. Pinch chords of the object that fit in the opened thumb-index gap are found
       (:func:`_pinch_candidates`) and tried in a random order weighted toward better friction.
    2. The hand (fingers curled, thumb open) is placed with the index's radial side on the
       chord's entry point and its pinch axis (index radial side -> thumb pad) along the chord;
       the roll about the chord with the most clearance between hand and object is kept.
    3. The hand slides along the surface normal until its closest vertex is ``palm_gap`` from
       the surface and the thumb closes along its key synergy (bisection) onto the far side; the
       first chord (of at most 6 tried) that ends with thumb and index in contact is kept.
    4. The thumb pad and the index's radial side, where they still miss the surface, reach for
       it (:func:`_reach_contact`)."""
    dtype = hand.v_template.dtype
    limits = hand.data.joint_limits
    bt = torch.as_tensor(b[None], dtype=dtype)
    gap = config.palm_gap if config.palm_gap is not None else 0.001
    base = np.zeros((15, 3))
    for f, c in _KEY_CURLS.items():
        base = _curl_to_anatomical(f, c, base, limits)
    eye, zero = np.eye(3), np.zeros(3)
    v_open = pose_hand(_key_thumb(0.0, base, limits), eye, zero)
    v_mid = pose_hand(_key_thumb(0.6, base, limits), eye, zero)
    v_closed = pose_hand(_key_thumb(1.0, base, limits), eye, zero)
    with torch.no_grad():
        joints = hand(torch.zeros(1, 3, dtype=dtype), hand.anatomical_to_pose(torch.as_tensor(base[None], dtype=dtype)),
                      bt).joints[0].double().numpy()
    # The index's radial side: index vertices near its PIP joint (joint 2) facing the thumb; the
    # thumb pad: the distal thumb vertex closest to it once the thumb is closed.
    weights = hand.weights.detach().cpu().numpy()
    owner = weights.argmax(1)
    iv, tv = finger_vids["index"], finger_vids["thumb"]
    thumb_distal = np.nonzero(owner == FINGER_JOINTS["thumb"][2] + 1)[0]
    pip = joints[FINGER_JOINTS["index"][1] + 1]
    to_thumb = v_closed[thumb_distal].mean(0) - pip
    to_thumb /= np.linalg.norm(to_thumb)
    near_pip = iv[np.linalg.norm(v_open[iv] - pip, axis=1) < 0.015]
    radial = near_pip[(v_open[near_pip] - pip) @ to_thumb > np.percentile((v_open[near_pip] - pip) @ to_thumb, 70)]
    ri = radial[np.argmax((v_open[radial] - pip) @ to_thumb)]
    pad = thumb_distal[np.argmin(np.linalg.norm(v_closed[thumb_distal] - v_open[ri], axis=1))]
    axis_h = v_mid[pad] - v_open[ri]
    axis_h /= np.linalg.norm(axis_h)
    others = np.setdiff1d(np.arange(len(v_open)), iv)
    sub = others[::3]

    not_thumb = np.setdiff1d(np.arange(len(v_open)), tv)

    def place(R: np.ndarray, t: np.ndarray, n: np.ndarray) -> np.ndarray:
        """Slide along ``n`` until the closest non-thumb vertex is ``gap`` from the surface."""
        for _ in range(6):
            s = float(signed_distance(mesh, v_open[not_thumb] @ R.T + t).max())
            if abs(s + gap) < 2e-4:
                break
            t = t + n * (s + gap)
        return t

    def close_thumb(R: np.ndarray, t: np.ndarray) -> float:
        """Largest key-synergy closure whose thumb vertices stay within ``max_penetration``."""
        def pen(c: float) -> float:
            return float(signed_distance(mesh, pose_hand(_key_thumb(c, base, limits), R, t)[tv]).max())

        lo, hi = 0.0, 1.0
        if pen(hi) <= config.max_penetration:
            return hi
        for _ in range(config.bisection_steps):
            mid = 0.5 * (lo + hi)
            lo, hi = (mid, hi) if pen(mid) <= config.max_penetration else (lo, mid)
        return lo

    def attempt(R: np.ndarray, t: np.ndarray, n: np.ndarray) -> tuple[tuple[int, float], tuple]:
        """Slide, close the thumb; score (fingers of the pinch in contact, -penetration)."""
        t = place(R, t, n)
        c = close_thumb(R, t)
        sd = signed_distance(mesh, pose_hand(_key_thumb(c, base, limits), R, t))
        touching = sum(int(sd[finger_vids[f]].max() > -0.003) for f in ("thumb", "index"))
        return (touching, -max(float(sd.max()), 0.0)), (R, t, c)

    p_c, n_c, d_c, worst = _pinch_candidates(tm, mesh, rng)
    order: np.ndarray = np.zeros(0, dtype=int)
    if len(worst):
        weight = np.exp(-((worst / 0.6) ** 2)) + 1e-12
        order = rng.choice(len(worst), size=min(len(worst), 24), replace=False, p=weight / weight.sum())
    rolls = rng.uniform(0, 2 * np.pi) + np.arange(12) * np.pi / 6
    best_score, best = None, None
    tried = 0
    for k in order:
        p, n, d = p_c[k], n_c[k], d_c[k]
        R = _rotation_about(d, rolls) @ _rotation_between(axis_h, d)  # (12, 3, 3)
        t = p + n * gap - np.einsum("kij,j->ki", R, v_open[ri])
        pts = np.einsum("kij,vj->kvi", R, np.concatenate([v_open[sub], v_open[iv]])) + t[:, None]
        sd = signed_distance(mesh, pts.reshape(-1, 3)).reshape(len(rolls), -1)
        clear = sd[:, : len(sub)].max(1)
        ok = (clear < -0.002) & (sd[:, len(sub):].max(1) < 0.004)
        if not ok.any():
            continue
        j = int(np.argmin(np.where(ok, clear, np.inf)))
        score, found = attempt(R[j], t[j], n)
        if best_score is None or score > best_score:
            best_score, best = score, found
        tried += 1
        if (score[0] == 2 and -score[1] <= config.max_penetration) or tried >= 6:
            break
    if best is None:  # no chord fits (no thin part, edge or rim): the index side on the near side
        centre = 0.5 * (np.asarray(tm.vertices).min(0) + np.asarray(tm.vertices).max(0))
        q = mesh.closest((centre + rng.normal(size=3) * 1.0)[None])
        n = q.normal[0]
        R = _rotation_between(axis_h, -n)
        best = attempt(R, q.points[0] + n * gap - R @ v_open[ri], n)[1]
    R, t, c = best
    anat = _key_thumb(c, base, limits)
    curls = {"thumb": c, **_KEY_CURLS}
    # Thumb pad and index radial side reach for the surface where they missed it.
    for finger, target in (("thumb", pad), ("index", ri)):
        sd_f = signed_distance(mesh, pose_hand(anat, R, t)[finger_vids[finger]])
        if sd_f.max() > -0.003:
            continue
        anat = _reach_contact(hand, anat, finger, target, finger_vids[finger], mesh, R, transl_for(R, t), bt,
                              limits, config.max_penetration)

    sd_all = signed_distance(mesh, pose_hand(anat, R, t))
    return _grasp_result(hand, anat, R, transl_for(R, t), sd_all, finger_vids, b, curls, config.kind, dtype)


def _grasp_result(hand: HandModel, anat: np.ndarray, R: np.ndarray, transl: np.ndarray, sd_all: np.ndarray,
                  finger_vids: dict, betas: np.ndarray, curls: dict, kind: str, dtype) -> Grasp:
    """The :class:`Grasp` of a closed hand: ``sd_all`` (V,) signed distances of its vertices to the
    object (positive inside); fingers with a vertex within 3 mm of the surface are contacts."""
    order = ["thumb", "index", "middle", "ring", "pinky"]
    contacts = tuple(f for f in order if sd_all[finger_vids[f]].max() > -0.003)
    with torch.no_grad():
        pose = hand.anatomical_to_pose(torch.as_tensor(anat[None], dtype=dtype))[0].double().numpy()
    return Grasp(global_orient=roma.rotmat_to_rotvec(torch.as_tensor(R)).numpy(), hand_pose=pose, betas=betas,
                 transl=transl, anatomical=anat, penetration=float(max(sd_all.max(), 0.0)), contacts=contacts,
                 curls=curls, kind=kind)


def _principal_axes(vertices: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Centre (3,), and the long, approach and wrap unit axes (3,) from the box extents."""
    centre = 0.5 * (vertices.min(0) + vertices.max(0))
    ext = vertices.max(0) - vertices.min(0)
    order = np.argsort(ext)[::-1]  # long, medium, short
    eye = np.eye(3)
    return centre, eye[order[0]], eye[order[1]], eye[order[2]]


def synthesize_grasp(hand: HandModel, obj, *, config: GraspConfig = GraspConfig(),
                     betas: np.ndarray | None = None, seed: int = 0) -> Grasp:
    """Grasp of ``obj`` (watertight trimesh or ObjectMesh, object frame) by ``hand``.

    Args:
        hand: the hand layer (any source; float32 or float64 buffers, CPU).
        obj: the object, metres, object frame.
        config: grasp settings.
        betas: (S,) hand shape, zeros when None.
        seed: random seed (approach tilt and offset, finger order).

    Returns:
        :class:`Grasp` in the object frame.
    """
    tm = _as_trimesh(obj)
    welded = tm.copy()  # texture seams duplicate vertices: weld before the closedness check
    welded.merge_vertices(merge_tex=True, merge_norm=True)
    if not welded.is_watertight:
        raise ValueError("synthesize_grasp needs a closed (watertight) object mesh for signed distances")
    mesh = MeshQuery(tm.vertices, tm.faces)
    rng = np.random.default_rng(seed)
    dtype = hand.v_template.dtype
    S = hand.num_betas
    b = np.zeros(S) if betas is None else np.asarray(betas, dtype=np.float64)
    if b.shape != (S,):
        raise ValueError(f"betas: expected shape ({S},), got {b.shape}")
    bt = torch.as_tensor(b[None], dtype=dtype)
    limits = hand.data.joint_limits
    right = hand.side == "right"

    weights = hand.weights.detach().cpu().numpy()
    owner = weights.argmax(1)
    finger_vids = {f: np.nonzero(np.isin(owner, [j + 1 for j in js]))[0] for f, js in FINGER_JOINTS.items()}

    with torch.no_grad():
        rest_out = hand(torch.zeros(1, 3, dtype=dtype), torch.zeros(1, 45, dtype=dtype), bt)
    rest = rest_out.vertices[0].double().numpy()
    j0 = rest_out.joints[0, 0].double().numpy()  # MANO rotates about the rest wrist joint

    def transl_for(R: np.ndarray, t: np.ndarray) -> np.ndarray:
        """Model translation that poses the rest hand at ``R v + t``."""
        return t + R @ j0 - j0

    def pose_hand(anat: np.ndarray, R: np.ndarray, t: np.ndarray) -> np.ndarray:
        """Vertices (V, 3) of the hand with anatomical pose ``anat`` placed at ``R v + t``."""
        with torch.no_grad():
            pose = hand.anatomical_to_pose(torch.as_tensor(anat[None], dtype=dtype))
            go = roma.rotmat_to_rotvec(torch.as_tensor(R[None], dtype=dtype))
            out = hand(go, pose, bt, torch.as_tensor(transl_for(R, t)[None], dtype=dtype))
        return out.vertices[0].double().numpy()

    if config.kind not in ("power", "precision", "lateral"):
        raise ValueError(f"grasp kind must be power, precision or lateral, got {config.kind!r}")
    if config.kind == "lateral":
        return _lateral_grasp(hand, tm, mesh, rng, config, b, finger_vids, transl_for, pose_hand)
    # Open hand while it approaches: fingers slightly extended, thumb abducted away from the
    # palm (at anatomical 0, the rest posture, the thumb lies in front of the palm).
    open_curl = {f: (-0.7 if f == "thumb" else -0.1) for f in FINGER_JOINTS}
    anat = np.zeros((15, 3))
    for f, c in open_curl.items():
        anat = _curl_to_anatomical(f, c, anat, limits)
    start = pose_hand(anat, np.eye(3), np.zeros(3))

    # The hand's contact patch: the palm (wrist-skinned vertices on the palm side, -y).
    wrist_v = np.nonzero(owner == 0)[0]
    contact_v = wrist_v[rest[wrist_v, 1] < np.percentile(rest[wrist_v, 1], 25)]
    facing_h = np.array([0.0, -1.0, 0.0])
    contact_centre = start[contact_v].mean(0)

    centre, long_ax, approach0, wrap0 = _principal_axes(np.asarray(tm.vertices))
    ext = np.asarray(tm.vertices).max(0) - np.asarray(tm.vertices).min(0)
    fingers_h = np.array([-1.0 if right else 1.0, 0, 0])
    gap = config.palm_gap if config.palm_gap is not None else {"power": 0.002, "precision": 0.012}[config.kind]
    order = ["thumb", "index", "middle", "ring", "pinky"]
    tips = {f: int(hand.data.tip_vertex_ids[i]) for i, f in enumerate(order)}
    open_anat = anat

    def attempt(approach: np.ndarray, wrap: np.ndarray, tilt_angle: float, along_frac: float):
        """Place the open hand on the ``approach`` side, fingers along ``wrap``, and close it.

        Returns (score, (anat, R, t, curls, sd_all)); score = (fingers in contact, -penetration)."""
        anat = open_anat
        # Hand frame: the contact patch's normal -> -approach; fingers (-x right, +x left) -> wrap.
        src = np.stack([fingers_h, facing_h, np.cross(fingers_h, facing_h)], 1)
        dst = np.stack([wrap, -approach, np.cross(wrap, -approach)], 1)
        R = roma.rotvec_to_rotmat(torch.as_tensor(approach * tilt_angle)).numpy() @ dst @ src.T
        along = along_frac * float(ext @ np.abs(long_ax))
        # Contact patch placed over the surface. Power: the finger bases sit over the middle of the
        # object so the fingers wrap it; precision: the hand sits further back so the fingertips'
        # closing arc meets the surface.
        target = centre + approach * (0.5 * float(ext @ np.abs(approach)) + 0.02) + long_ax * along
        target = target - wrap * {"power": 0.04, "precision": 0.075}[config.kind]
        t = target - R @ contact_centre

        verts = pose_hand(anat, R, t)
        sd = signed_distance(mesh, verts[contact_v])
        # Move along -approach so that the patch's closest vertex sits at `gap` from the surface.
        for _ in range(6):
            shift = float(-sd.max() - gap)  # distance of the closest patch vertex minus the gap
            t = t - approach * shift
            verts = pose_hand(anat, R, t)
            sd = signed_distance(mesh, verts[contact_v])
            if abs(-sd.max() - gap) < 2e-4:
                break
        # Whole hand clear of the object before closing (back off if any vertex is inside).
        for _ in range(20):
            pen = signed_distance(mesh, verts).max()
            if pen <= config.max_penetration:
                break
            t = t + approach * (pen + 1e-3)
            verts = pose_hand(anat, R, t)

        curls: dict[str, float] = {}
        for finger in order:
            lo, hi = open_curl[finger], 1.0
            if signed_distance(mesh, pose_hand(_curl_to_anatomical(finger, hi, anat, limits), R, t)[finger_vids[finger]]).max() <= config.max_penetration:
                lo = hi  # closes fully without touching
            else:
                for _ in range(config.bisection_steps):
                    mid = 0.5 * (lo + hi)
                    pen = signed_distance(mesh, pose_hand(_curl_to_anatomical(finger, mid, anat, limits), R, t)[finger_vids[finger]]).max()
                    if pen <= config.max_penetration:
                        lo = mid
                    else:
                        hi = mid
            anat = _curl_to_anatomical(finger, lo, anat, limits)
            curls[finger] = lo

        # Fingers that must touch but whose synergy missed the surface (the thumb, and the fingertips
        # of a precision grasp) reach for it: their joint angles are optimised within the limits to
        # bring the fingertip onto the surface without penetration.
        must_touch = {"power": ["thumb"], "precision": ["thumb", "index", "middle"]}[config.kind]
        for finger in must_touch:
            sd_f = signed_distance(mesh, pose_hand(anat, R, t)[finger_vids[finger]])
            if sd_f.max() > -0.003:
                continue
            anat = _reach_contact(hand, anat, finger, tips[finger], finger_vids[finger], mesh, R, transl_for(R, t), bt,
                                  limits, config.max_penetration)
        sd_all = signed_distance(mesh, pose_hand(anat, R, t))
        touching = sum(int(sd_all[finger_vids[f]].max() > -0.003) for f in order)
        return (touching, -max(float(sd_all.max()), 0.0)), (anat, R, t, curls, sd_all)

    # Placement candidates: the drawn approach side and finger direction first; if too few fingers
    # reach the surface there (e.g. the palm over a mug's open top, the fingers closing into the
    # opening), the other sides (approach flipped, fingers flipped, both; with placements > 4 also
    # the approach and wrap axes swapped), each with a fresh tilt and offset, until the grasp holds.
    flip_a, flip_w = rng.random() < 0.5, rng.random() < 0.5
    tilt_angle = rng.uniform(-config.tilt_range, config.tilt_range)
    along_frac = rng.uniform(-0.15, 0.15)
    sa, sw = (-1.0 if flip_a else 1.0), (-1.0 if flip_w else 1.0)
    candidates = [(sa * approach0, sw * wrap0), (-sa * approach0, sw * wrap0), (sa * approach0, -sw * wrap0),
                  (-sa * approach0, -sw * wrap0)]
    candidates += [(w, a) for a, w in candidates]
    need = _MIN_CONTACTS[config.kind]
    best_score, best = None, None
    for k, (approach, wrap) in enumerate(candidates[: max(1, config.placements)]):
        if k > 0:
            tilt_angle = rng.uniform(-config.tilt_range, config.tilt_range)
            along_frac = rng.uniform(-0.15, 0.15)
        score, found = attempt(approach, wrap, tilt_angle, along_frac)
        if best_score is None or score > best_score:
            best_score, best = score, found
        if score[0] >= need and -score[1] <= config.max_penetration:
            break
    anat, R, t, curls, sd_all = best
    return _grasp_result(hand, anat, R, transl_for(R, t), sd_all, finger_vids, b, curls, config.kind, dtype)
