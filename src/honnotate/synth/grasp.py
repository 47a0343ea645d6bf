"""Grasp synthesis: place a MANO-format hand on an object and close its fingers to contact.

A grasp is built in the object frame in three steps (all deterministic given the seed):

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
    palm_gap: distance between the palm and the surface (None: 0.002 power, 0.012 precision).
    tilt_range: random rotation of the hand about the approach axis, +-radians.
    bisection_steps: iterations of the per-finger curl search.
    """

    kind: Literal["power", "precision", "lateral"] = "power"
    max_penetration: float = 0.0015
    palm_gap: float | None = None
    tilt_range: float = 0.35
    bisection_steps: int = 12


@dataclass(frozen=True)
class Grasp:
    """A hand pose in the object frame (axis-angle, metres) and its quality figures.

    global_orient: (3,) wrist rotation; hand_pose: (45,) finger pose (flat-hand-mean convention);
    betas: (S,); transl: (3,); anatomical: (15, 3) the finger pose as anatomical angles;
    penetration: deepest hand vertex inside the object (m, >= 0); contacts: fingers whose
    vertices touch the surface (within 3 mm); curls: the curl found per finger (0 open, 1 closed).
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
    fingertip vertex touches the surface while no vertex of the finger penetrates it.

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
    # Open hand while it approaches: fingers slightly extended, thumb abducted away from the
    # palm (at anatomical 0, the rest posture, the thumb lies in front of the palm). A lateral
    # grasp starts with the four fingers curled (key grip).
    open_curl = {f: (-0.7 if f == "thumb" else (0.7 if config.kind == "lateral" else -0.1)) for f in FINGER_JOINTS}
    anat = np.zeros((15, 3))
    for f, c in open_curl.items():
        anat = _curl_to_anatomical(f, c, anat, limits)
    start = pose_hand(anat, np.eye(3), np.zeros(3))

    # The hand's contact patch: the palm (wrist-skinned vertices on the palm side, -y), or for a
    # lateral grasp the radial side (+z, toward the thumb) of the curled index finger.
    if config.kind == "lateral":
        iv = finger_vids["index"]
        contact_v = iv[start[iv, 2] > np.percentile(start[iv, 2], 80)]
        facing_h = np.array([0.0, 0.0, 1.0])
    else:
        wrist_v = np.nonzero(owner == 0)[0]
        contact_v = wrist_v[rest[wrist_v, 1] < np.percentile(rest[wrist_v, 1], 25)]
        facing_h = np.array([0.0, -1.0, 0.0])
    contact_centre = start[contact_v].mean(0)

    centre, long_ax, approach, wrap = _principal_axes(np.asarray(tm.vertices))
    if rng.random() < 0.5:
        approach = -approach
    if rng.random() < 0.5:
        wrap = -wrap
    # Hand frame: the contact patch's normal -> -approach; fingers (-x right, +x left) -> wrap.
    fingers_h = np.array([-1.0 if right else 1.0, 0, 0])
    src = np.stack([fingers_h, facing_h, np.cross(fingers_h, facing_h)], 1)
    dst = np.stack([wrap, -approach, np.cross(wrap, -approach)], 1)
    R = dst @ src.T
    tilt = roma.rotvec_to_rotmat(torch.as_tensor(approach * rng.uniform(-config.tilt_range, config.tilt_range))).numpy()
    R = tilt @ R
    ext = np.asarray(tm.vertices).max(0) - np.asarray(tm.vertices).min(0)
    along = rng.uniform(-0.15, 0.15) * float(ext @ np.abs(long_ax))
    # Contact patch placed over the surface. Power: the finger bases sit over the middle of the
    # object so the fingers wrap it; precision: the hand sits further back so the fingertips'
    # closing arc meets the surface; lateral: the index side over the object's middle.
    target = centre + approach * (0.5 * float(ext @ np.abs(approach)) + 0.02) + long_ax * along
    target = target - wrap * {"power": 0.04, "precision": 0.075, "lateral": 0.0}[config.kind]
    t = target - R @ contact_centre

    gap = config.palm_gap if config.palm_gap is not None else {"power": 0.002, "precision": 0.012, "lateral": 0.001}[config.kind]
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
    order = ["thumb", "index", "middle", "ring", "pinky"]
    for finger in (["thumb"] if config.kind == "lateral" else order):
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

    # Fingers that must touch but whose synergy missed the surface (the thumb of a lateral or
    # precision grasp, the fingertips of a precision grasp) reach for it: their joint angles are
    # optimised within the limits to bring the fingertip onto the surface without penetration.
    must_touch = {"power": ["thumb"], "precision": ["thumb", "index", "middle"], "lateral": ["thumb"]}[config.kind]
    tips = {f: int(hand.data.tip_vertex_ids[i]) for i, f in enumerate(["thumb", "index", "middle", "ring", "pinky"])}
    for finger in must_touch:
        sd_f = signed_distance(mesh, pose_hand(anat, R, t)[finger_vids[finger]])
        if sd_f.max() > -0.003:
            continue
        anat = _reach_contact(hand, anat, finger, tips[finger], finger_vids[finger], mesh, R, transl_for(R, t), bt,
                              limits, config.max_penetration)

    verts = pose_hand(anat, R, t)
    sd_all = signed_distance(mesh, verts)
    contacts = tuple(f for f in order if sd_all[finger_vids[f]].max() > -0.003)
    with torch.no_grad():
        pose = hand.anatomical_to_pose(torch.as_tensor(anat[None], dtype=dtype))[0].double().numpy()
    return Grasp(global_orient=roma.rotmat_to_rotvec(torch.as_tensor(R)).numpy(), hand_pose=pose, betas=b,
                 transl=transl_for(R, t), anatomical=anat, penetration=float(max(sd_all.max(), 0.0)), contacts=contacts,
                 curls=curls, kind=config.kind)
