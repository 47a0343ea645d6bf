"""The open hand: anny's hand sub-model converted to the MANO format (no licence needed).

``anny`` (Apache-2.0 code, CC0 MakeHuman assets) ships a rigged hand sub-model
(``anny.Anny(rig='anny-hand.R', topology='hand.R')``, and ``.L``): 1609 vertices, 3196 triangles,
21 bones (root, wrist, thumb ``finger1-1..3``, and for index/middle/ring/pinky a ``metacarpalN``
then ``fingerK-1..3``) and a phenotype space (gender, age, muscle, weight, height, proportions).
This module converts it to a :class:`~honnotate.models.hand_data.HandModelData`:

* **Skeleton.** The 16 MANO joints are anny's wrist and the 15 finger bones, mapped
  finger2 -> index, finger3 -> middle, finger5 -> pinky, finger4 -> ring, finger1 -> thumb. The
  skinning weights of the root and of the four metacarpals are merged into the wrist (MANO has
  no metacarpal joints). The joints are the bone heads of anny's rest skeleton.
* **Frame.** Everything is expressed in the wrist's rest frame, then rotated so that the hand
  lies like MANO's flat hand (right hand: fingers along -x, palm facing -y, thumb toward +z;
  the left hand is its mirror image in x), with the wrist joint at the origin.
* **Exactness.** anny's skinning transform of a bone is ``T_c = T_p [G_c | h_c - G_c h_c]``
  with ``G_c`` a rotation about the bone head ``h_c`` (see ``anny.utils.kinematics``), which is
  exactly MANO's rule with a world-aligned joint rotation ``G_c``. So a pose of anny with its
  metacarpals in their rest configuration is reproduced exactly by the MANO-format LBS with
  ``G_c`` conjugated into our frame (:func:`anny_local_bone_to_pose`).
* **Shape.** anny's rest shape is a non-linear function of the phenotypes. We sample phenotypes
  (adolescent to old: age in [0.5, 1], the others in [0, 1]), express each rest mesh and its
  bone heads in its own wrist frame, and fit a PCA over the concatenated vertices and joints:
  ``v_template`` is the mean, ``shapedirs`` the first ``num_betas`` components scaled by their
  standard deviations (betas ~ N(0, 1), as MANO's). The joint regressor reproduces the PCA's
  joints exactly for any betas: per joint, an affine combination of the nearest vertices
  solved on the template and every shape direction (minimum-norm solution).
* **Anatomical frames and limits.** Each finger joint keeps anny's rest bone frame A_j
  (x flexion, positive toward the palm; y along the bone, twist; z abduction). An anatomical
  axis-angle maps to the model's pose as ``r = A_j r_anat``. Joint limits are anatomical ranges
  (see ``_ANATOMICAL_RANGES``) minus the rest configuration's own angles.
* **Pose PCA.** anny has no pose data, so the PCA pose basis (``hands_components``,
  ``hands_mean``) is fitted on poses drawn from a grasp-synergy model within the joint limits
  (:func:`_sample_synergy_poses`); ``flat_hand_mean=False`` adds that mean, as for MANO.

The build takes about a minute the first time anny itself is built (anny caches its model),
a few seconds after that; the result is cached as an ``.npz`` under the honnotate cache
directory and rebuilt when anny's version or :data:`OPEN_HAND_VERSION` changes.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from honnotate.models.hand_data import MANO_PARENTS, HandModelData
from honnotate.paths import default_cache_dir

__all__ = [
    "OPEN_HAND_VERSION",
    "ANNY_TO_MANO_BONES",
    "load_open_hand",
    "build_open_hand",
    "cached_path",
    "anny_hand_model",
    "anny_rest_in_mano_frame",
    "anny_local_bone_to_pose",
    "anny_finger_pose",
    "fit_betas",
    "phenotype_to_betas",
]

logger = logging.getLogger(__name__)

#: Bump when the conversion changes: cached builds of another version are rebuilt.
OPEN_HAND_VERSION = 1

#: anny bone name (without side suffix) of each of the 15 MANO finger joints, in MANO order.
ANNY_TO_MANO_BONES = (
    "finger2-1", "finger2-2", "finger2-3",  # index
    "finger3-1", "finger3-2", "finger3-3",  # middle
    "finger5-1", "finger5-2", "finger5-3",  # pinky
    "finger4-1", "finger4-2", "finger4-3",  # ring
    "finger1-1", "finger1-2", "finger1-3",  # thumb
)
_MERGED_INTO_WRIST = ("root", "wrist", "metacarpal1", "metacarpal2", "metacarpal3", "metacarpal4")
_TIP_FINGERS = ("finger1-3", "finger2-3", "finger3-3", "finger4-3", "finger5-3")  # thumb..pinky

#: Anatomical joint ranges in radians, relative to a straight joint: (flexion x, twist y,
#: abduction z) min/max. Flexion is positive toward the palm. Index-pinky MCP/PIP/DIP and thumb
#: CMC/MCP/IP from the usual clinical ranges of motion (e.g. MCP flexion 0-90 deg with ~20 deg
#: hyperextension, PIP 0-110 deg, DIP 0-80 deg, abduction about +-20 deg at the MCP), widened
#: slightly so that the limits only act on clearly implausible poses, as the MANO table does.
_ANATOMICAL_RANGES = {
    "mcp": ((-0.35, 1.6), (-0.2, 0.2), (-0.4, 0.4)),
    "pip": ((-0.1, 1.95), (-0.1, 0.1), (-0.08, 0.08)),
    "dip": ((-0.2, 1.4), (-0.1, 0.1), (-0.08, 0.08)),
    "thumb_cmc": ((-0.6, 1.0), (-0.6, 0.6), (-0.7, 0.8)),
    "thumb_mcp": ((-0.3, 1.1), (-0.3, 0.3), (-0.25, 0.25)),
    "thumb_ip": ((-0.35, 1.4), (-0.1, 0.1), (-0.08, 0.08)),
}
_JOINT_KIND = ("mcp", "pip", "dip") * 4 + ("thumb_cmc", "thumb_mcp", "thumb_ip")

_PHENOTYPE_RANGES = {  # sampled uniformly; age 0.5 (adolescent) .. 1 (old), no children
    "gender": (0.0, 1.0), "age": (0.5, 1.0), "muscle": (0.0, 1.0),
    "weight": (0.0, 1.0), "height": (0.0, 1.0), "proportions": (0.0, 1.0),
}
_DEFAULT_PHENOTYPE = {"gender": 0.5, "age": 0.75, "muscle": 0.5, "weight": 0.5, "height": 0.5, "proportions": 0.5}


def _side_suffix(side: str) -> str:
    if side not in ("right", "left"):
        raise ValueError(f"side must be 'right' or 'left', got {side!r}")
    return "R" if side == "right" else "L"


def _anny_version() -> str:
    import anny

    return str(getattr(anny, "__version__", "unknown"))


def cached_path(side: str = "right", cache_dir: str | Path | None = None) -> Path:
    """Path of the cached open hand ``.npz`` for ``side`` (it may not exist yet)."""
    _side_suffix(side)
    root = Path(cache_dir) if cache_dir else default_cache_dir()
    return root / "open_hand" / f"open_hand_{side}_anny-{_anny_version()}_v{OPEN_HAND_VERSION}.npz"


def anny_hand_model(side: str = "right", pose_parameterization: str = "local-bone"):
    """anny's hand sub-model (float64, CPU). The first call builds anny's data (~45 s)."""
    from honnotate._warp import quiet_warp

    quiet_warp()  # anny skins with warp: keep warp's start-up banner out of honnotate's output
    import anny

    s = _side_suffix(side)
    return anny.Anny(rig=f"anny-hand.{s}", topology=f"hand.{s}", pose_parameterization=pose_parameterization)


def _bone_index(model, name: str, side: str) -> int:
    labels = list(model.bone_labels)
    return labels.index(name) if name == "root" else labels.index(f"{name}.{_side_suffix(side)}")


def _phenotype_batch(model, phenotypes: dict[str, np.ndarray] | None, batch: int) -> dict[str, torch.Tensor]:
    base = dict(_DEFAULT_PHENOTYPE)
    out = {}
    for k in model.phenotype_labels:
        if k not in base:
            continue
        v = phenotypes.get(k, base[k]) if phenotypes else base[k]
        out[k] = torch.as_tensor(np.broadcast_to(np.asarray(v, dtype=np.float64), (batch,)).copy(), dtype=torch.float64)
    return out


@torch.no_grad()
def _anny_rest(model, phenotypes: dict[str, np.ndarray] | None, batch: int):
    """anny rest vertices (B, V, 3) and rest bone poses (B, 21, 4, 4) in anny's frame."""
    out = model(pose_parameters=None, phenotype_kwargs=_phenotype_batch(model, phenotypes, batch))
    return out["rest_vertices"].double(), out["rest_bone_poses"].double()


def _alignment_rotation(verts_w: np.ndarray, heads_w: np.ndarray, model, side: str) -> np.ndarray:
    """Rotation (3, 3) from the wrist frame to the MANO-like frame.

    Args:
        verts_w: (V, 3) rest vertices in the wrist's rest frame.
        heads_w: (21, 3) rest bone heads in the wrist's rest frame.
    """
    idx = {n: _bone_index(model, n, side) for n in ("wrist", "finger2-1", "finger3-1", "finger5-1", "finger3-3")}
    wrist = heads_w[idx["wrist"]]
    mcps = heads_w[[idx["finger2-1"], idx["finger3-1"], idx["finger5-1"]]]
    f = mcps.mean(0) - wrist
    f /= np.linalg.norm(f)
    lateral = heads_w[idx["finger2-1"]] - heads_w[idx["finger5-1"]]  # toward the thumb side
    n = np.cross(f, lateral) if side == "right" else np.cross(lateral, f)
    n /= np.linalg.norm(n)
    # n points out of the back or out of the palm; the palm is where the fingers flex to. The
    # vertices of the distal middle phalanx lie, at rest, slightly toward the palm of the
    # middle MCP-to-tip line only in curled hands; use the thumb instead: the thumb tip sits on
    # the palm side of the plane through the finger MCPs.
    thumb_tip = heads_w[_bone_index(model, "finger1-3", side)]
    if np.dot(thumb_tip - mcps.mean(0), n) < 0:
        n = -n  # now n points toward the palm side
    palm = n
    # Target: right: f -> -x, palm normal (out of the palm) -> -y; left: f -> +x, palm -> -y.
    tf = np.array([-1.0, 0.0, 0.0]) if side == "right" else np.array([1.0, 0.0, 0.0])
    tp = np.array([0.0, -1.0, 0.0])
    p_orth = palm - np.dot(palm, f) * f
    p_orth /= np.linalg.norm(p_orth)
    src = np.stack([f, p_orth, np.cross(f, p_orth)], axis=1)
    dst = np.stack([tf, tp, np.cross(tf, tp)], axis=1)
    return dst @ src.T


def _to_frame(points: np.ndarray, wrist_pose: np.ndarray, align: np.ndarray) -> np.ndarray:
    """Map (..., N, 3) anny points to the MANO-like frame of a given wrist rest pose (4, 4)."""
    R, h = wrist_pose[..., :3, :3], wrist_pose[..., :3, 3]
    local = np.einsum("...ji,...nj->...ni", R, points - h[..., None, :])
    return local @ align.T


def anny_rest_in_mano_frame(model, side: str, phenotypes: dict[str, np.ndarray] | None = None,
                            batch: int = 1, align: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """anny's rest meshes in the MANO-like frame (float64).

    Returns a dict: ``vertices`` (B, V, 3) and ``joints`` (B, 16, 3) metres (MANO joint order,
    wrist at the origin), ``bone_rot`` (B, 21, 3, 3) anny rest bone orientations in that frame,
    ``map_rot`` (B, 3, 3) and ``map_trans`` (B, 3) the rigid map x_mano = map_rot x_anny + map_trans,
    and ``align`` (3, 3).
    """
    verts, poses = _anny_rest(model, phenotypes, batch)
    verts, poses = verts.numpy(), poses.numpy()
    wi = _bone_index(model, "wrist", side)
    wrist_pose = poses[:, wi]
    if align is None:
        heads_w = _to_frame(poses[0, :, :3, 3][None], wrist_pose[:1], np.eye(3))[0]
        verts_w = _to_frame(verts[:1], wrist_pose[:1], np.eye(3))[0]
        align = _alignment_rotation(verts_w, heads_w, model, side)
    v = _to_frame(verts, wrist_pose, align)
    heads = _to_frame(poses[:, :, :3, 3], wrist_pose, align)
    joint_ids = [wi] + [_bone_index(model, n, side) for n in ANNY_TO_MANO_BONES]
    map_rot = align[None] @ np.swapaxes(wrist_pose[:, :3, :3], -1, -2)
    map_trans = -np.einsum("bij,bj->bi", map_rot, wrist_pose[:, :3, 3])
    bone_rot = map_rot[:, None] @ poses[:, :, :3, :3]
    return {"vertices": v, "joints": heads[:, joint_ids], "bone_rot": bone_rot,
            "map_rot": map_rot, "map_trans": map_trans, "align": align}


def _merged_weights(model, side: str) -> np.ndarray:
    """(V, 16) skinning weights with root and metacarpals merged into the wrist."""
    V = model.template_vertices.shape[0]
    idx = model.vertex_bone_indices.numpy()
    w = model.vertex_bone_weights.numpy()
    dense = np.zeros((V, len(model.bone_labels)))
    np.add.at(dense, (np.repeat(np.arange(V), idx.shape[1]), idx.ravel()), w.ravel())
    target = np.zeros(len(model.bone_labels), dtype=np.int64)
    for n in _MERGED_INTO_WRIST:
        target[_bone_index(model, n, side)] = 0
    for j, n in enumerate(ANNY_TO_MANO_BONES, start=1):
        target[_bone_index(model, n, side)] = j
    out = np.zeros((V, 16))
    np.add.at(out.T, target, dense.T)
    out /= out.sum(1, keepdims=True)
    return out


def _fit_joint_regressor(template: np.ndarray, dirs: np.ndarray, j_template: np.ndarray,
                         j_dirs: np.ndarray, neighbours: int = 128) -> np.ndarray:
    """(16, V) regressor R with R @ template = j_template and R @ dirs[..., k] = j_dirs[..., k].

    The rest joints are then exact for every shape of the model's shape space. Each joint uses
    its ``neighbours`` nearest template vertices, with weights summing to one (translation
    equivariance): the minimum-norm solution of the 3 + 3S + 1 linear constraints, with far
    vertices penalised (weights scaled by 1 / distance) so the regressor stays local.
    """
    V = template.shape[0]
    J = j_template.shape[0]
    reg = np.zeros((J, V))
    for j in range(J):
        d = np.linalg.norm(template - j_template[j], axis=1)
        nn = np.argsort(d)[:neighbours]
        blocks = [template[nn].T] + [dirs[nn, :, k].T for k in range(dirs.shape[2])]
        targets = [j_template[j]] + [j_dirs[j, :, k] for k in range(dirs.shape[2])]
        A = np.concatenate(blocks + [np.ones((1, len(nn)))], axis=0)
        b = np.concatenate(targets + [np.ones(1)])
        D = 1.0 / np.maximum(d[nn], 1e-3)
        # w = D x, minimum ||x||: start from the uniform average, solve for the correction.
        w0 = np.full(len(nn), 1.0 / len(nn))
        x, *_ = np.linalg.lstsq(A * D[None], b - A @ w0, rcond=None)
        reg[j, nn] = w0 + D * x
    return reg


def _tip_vertices(verts: np.ndarray, joints_all: dict[str, np.ndarray], weights_dense: np.ndarray,
                  model, side: str) -> np.ndarray:
    """Fingertip vertex ids (thumb, index, middle, ring, pinky): the most distal vertex skinned
    mainly to the distal phalanx, along the distal bone's direction."""
    ids = []
    for n in _TIP_FINGERS:
        bi = _bone_index(model, n, side)
        head = joints_all["heads"][bi]
        axis = joints_all["bone_y"][bi]
        mask = weights_dense[:, bi] > 0.5
        cand = np.nonzero(mask)[0]
        proj = (verts[cand] - head) @ axis
        ids.append(int(cand[np.argmax(proj)]))
    return np.asarray(ids, dtype=np.int64)


def _rotvec_from_matrix(R: np.ndarray) -> np.ndarray:
    import roma

    return roma.rotmat_to_rotvec(torch.as_tensor(R)).numpy()


def _sample_synergy_poses(frames: np.ndarray, limits: np.ndarray, n: int, seed: int) -> np.ndarray:
    """(n, 45) finger poses (model convention) from a simple grasp-synergy model.

    A grasp closure g in [0, 1] drives each finger's curl c_f = g + noise; flexions grow with the
    curl (DIP coupled to PIP), abduction spreads the fingers when the hand is open, the thumb
    opposes with the closure. Anatomical angles are clipped to the limits, then mapped by the
    joint frames: r = A_j r_anat.
    """
    rng = np.random.default_rng(seed)
    anat = np.zeros((n, 15, 3))
    g = rng.uniform(0, 1, n)
    spread_dir = np.array([1.0, 0.2, -0.6, -1.0])  # index, middle, pinky, ring spread pattern (MANO order)
    spread_dir = spread_dir[[0, 1, 3, 2]]  # index, middle, pinky, ring
    spread = rng.normal(0.15, 0.1, n)
    for f in range(4):
        c = np.clip(g + rng.normal(0, 0.15, n), 0, 1)
        j = 3 * f
        anat[:, j, 0] = c * 1.45 - 0.05 + rng.normal(0, 0.08, n)
        anat[:, j + 1, 0] = c * 1.7 + rng.normal(0, 0.08, n)
        anat[:, j + 2, 0] = 0.7 * anat[:, j + 1, 0] + rng.normal(0, 0.06, n)
        anat[:, j, 2] = spread * spread_dir[f] * (1 - c) + rng.normal(0, 0.04, n)
        anat[:, j, 1] = rng.normal(0, 0.03, n)
    o = np.clip(g + rng.normal(0, 0.2, n), 0, 1)
    anat[:, 12, 0] = o * 0.9 - 0.2 + rng.normal(0, 0.08, n)
    anat[:, 12, 2] = o * 0.7 - 0.1 + rng.normal(0, 0.08, n)
    anat[:, 12, 1] = o * 0.4 - 0.1 + rng.normal(0, 0.08, n)
    anat[:, 13, 0] = o * 0.7 + rng.normal(0, 0.1, n)
    anat[:, 14, 0] = o * 0.8 + rng.normal(0, 0.12, n)
    anat = np.clip(anat, limits[None, :, :, 0], limits[None, :, :, 1])
    return np.einsum("jab,njb->nja", frames, anat).reshape(n, 45)


def build_open_hand(side: Literal["right", "left"] = "right", num_betas: int = 10,
                    num_shape_samples: int = 600, seed: int = 0, model=None) -> HandModelData:
    """Convert anny's hand to a :class:`HandModelData` (see the module docstring).

    Args:
        side: "right" or "left".
        num_betas: number of shape components kept (>= 8).
        num_shape_samples: phenotype samples the shape PCA is fitted on.
        seed: seed of the phenotype and synergy-pose samples.
        model: an already built ``anny_hand_model(side)`` (built here when None).
    """
    if num_betas < 8:
        raise ValueError(f"num_betas must be >= 8, got {num_betas}")
    model = model if model is not None else anny_hand_model(side)
    rng = np.random.default_rng(seed)

    # Mean-phenotype rest pose defines the frame.
    ref = anny_rest_in_mano_frame(model, side)
    align = ref["align"]

    # Shape samples.
    phen = {k: rng.uniform(lo, hi, num_shape_samples) for k, (lo, hi) in _PHENOTYPE_RANGES.items()}
    samples = anny_rest_in_mano_frame(model, side, phen, batch=num_shape_samples, align=align)
    V = samples["vertices"].shape[1]
    X = np.concatenate([samples["vertices"].reshape(num_shape_samples, -1),
                        samples["joints"].reshape(num_shape_samples, -1)], axis=1)
    mean = X.mean(0)
    U, S, Vt = np.linalg.svd(X - mean, full_matrices=False)
    std = S / np.sqrt(num_shape_samples - 1)
    comps = Vt[:num_betas] * std[:num_betas, None]  # (S, 3V + 48)
    v_template = mean[: 3 * V].reshape(V, 3)
    j_template = mean[3 * V:].reshape(16, 3)
    shapedirs = comps[:, : 3 * V].reshape(num_betas, V, 3).transpose(1, 2, 0)
    j_dirs = comps[:, 3 * V:].reshape(num_betas, 16, 3).transpose(1, 2, 0)
    j_regressor = _fit_joint_regressor(v_template, shapedirs, j_template, j_dirs)

    weights = _merged_weights(model, side)
    faces = model.get_triangular_faces().numpy().astype(np.int64)

    # Anatomical frames of the 15 finger joints (mean phenotype), columns x, y, z.
    bone_ids = [_bone_index(model, n, side) for n in ANNY_TO_MANO_BONES]
    frames = ref["bone_rot"][0][bone_ids]
    # Rest configuration's own anatomical angles: rotation of each bone relative to its anny
    # parent bone (the metacarpal for index-pinky MCPs, the previous phalanx otherwise). The
    # thumb CMC's parent is the wrist bone, whose frame follows the forearm, not the thumb: its
    # ranges are taken around the rest posture (rest angles 0).
    parents = list(model.bone_parents)
    rest_angles = np.zeros((15, 3))
    for j, bi in enumerate(bone_ids):
        if _JOINT_KIND[j] == "thumb_cmc":
            continue
        pr = ref["bone_rot"][0][parents[bi]]
        rest_angles[j] = _rotvec_from_matrix(pr.T @ frames[j])
    anat = np.array([_ANATOMICAL_RANGES[k] for k in _JOINT_KIND])  # (15, 3, 2)
    joint_limits = anat - rest_angles[:, :, None]
    # The rig's rest frames are not perfectly anatomical (e.g. a few degrees of abduction at a
    # PIP): the rest posture, a valid hand, is always admitted.
    joint_limits[..., 0] = np.minimum(joint_limits[..., 0], 0.0)
    joint_limits[..., 1] = np.maximum(joint_limits[..., 1], 0.0)

    # Fingertips on the mean shape.
    heads = {"heads": None, "bone_y": None}
    all_bone_rot = ref["bone_rot"][0]
    verts_ref, poses_ref = _anny_rest(model, None, 1)
    heads_all = _to_frame(poses_ref.numpy()[:, :, :3, 3], poses_ref.numpy()[:, _bone_index(model, "wrist", side)], align)[0]
    heads["heads"], heads["bone_y"] = heads_all, all_bone_rot[:, :, 1]
    dense = np.zeros((V, len(model.bone_labels)))
    np.add.at(dense, (np.repeat(np.arange(V), model.vertex_bone_indices.shape[1]), model.vertex_bone_indices.numpy().ravel()),
              model.vertex_bone_weights.numpy().ravel())
    tips = _tip_vertices(ref["vertices"][0], heads, dense, model, side)

    poses = _sample_synergy_poses(frames, joint_limits, 20000, seed + 1)
    hands_mean = poses.mean(0)
    _, _, pvt = np.linalg.svd(poses - hands_mean, full_matrices=False)

    return HandModelData(
        v_template=v_template, shapedirs=shapedirs, posedirs=None, j_regressor=j_regressor,
        parents=np.asarray(MANO_PARENTS, dtype=np.int64), weights=weights, faces=faces,
        tip_vertex_ids=tips, hands_components=pvt, hands_mean=hands_mean, side=side,
        source="open", source_version=f"anny {_anny_version()} / open-hand {OPEN_HAND_VERSION}",
        joint_frames=frames, joint_limits=joint_limits,
        extras={"align": align, "shape_std": std[:num_betas], "rest_angles": rest_angles},
    )


def load_open_hand(side: Literal["right", "left"] = "right", cache_dir: str | Path | None = None,
                   rebuild: bool = False) -> HandModelData:
    """The open hand for ``side``, built on first use and cached (see :func:`cached_path`)."""
    path = cached_path(side, cache_dir)
    if path.exists() and not rebuild:
        try:
            return HandModelData.load_npz(path)
        except Exception as exc:  # a corrupt cache is rebuilt, never fatal
            logger.warning("open hand cache %s unreadable (%s); rebuilding", path, exc)
    print(f"honnotate: building the open {side} hand from anny {_anny_version()} "
          f"(first use; about a minute) -> {path}", file=sys.stderr, flush=True)
    data = build_open_hand(side)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".npz")
    os.close(fd)
    try:
        data.save_npz(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return data


def anny_local_bone_to_pose(model, side: str, deltas: torch.Tensor, map_rot: np.ndarray,
                            rest_bone_rot_anny: torch.Tensor) -> torch.Tensor:
    """Pose (B, 45) of the MANO-format open hand equal to anny's ``local-bone`` pose ``deltas``.

    For bone c of parent p, anny's skinning uses the rotation about the head
    ``G_c = R_p U_p^T U_c D_c R_c^T`` (R rest, U reference orientations, D delta rotation); the
    MANO-format pose is ``G_c`` conjugated into our frame. Metacarpals must be in their rest
    configuration (``G = I``) for the result to be exact; the root's delta is ignored.

    Args:
        deltas: (B, 21, 3, 3) anny delta rotations.
        map_rot: (3, 3) rotation of the anny -> MANO-like frame map.
        rest_bone_rot_anny: (21, 3, 3) anny rest bone orientations R.
    """
    import roma

    U = model.reference_bone_orientations.to(deltas)
    R = rest_bone_rot_anny.to(deltas)
    parents = list(model.bone_parents)
    M = torch.as_tensor(map_rot, dtype=deltas.dtype)
    out = []
    for n in ANNY_TO_MANO_BONES:
        c = _bone_index(model, n, side)
        p = parents[c]
        G = R[p] @ U[p].T @ U[c] @ deltas[:, c] @ R[c].T
        out.append(roma.rotmat_to_rotvec(M @ G @ M.T))
    return torch.stack(out, dim=1).reshape(-1, 45)


def fit_betas(data: HandModelData, rest_vertices: np.ndarray) -> np.ndarray:
    """Least-squares betas (S,) whose shaped template best matches ``rest_vertices`` (V, 3),
    given in the model's rest frame (metres)."""
    rest_vertices = np.asarray(rest_vertices, dtype=np.float64)
    if rest_vertices.shape != data.v_template.shape:
        raise ValueError(f"rest_vertices: expected shape {data.v_template.shape}, got {rest_vertices.shape}")
    S = data.shapedirs.reshape(-1, data.num_betas)
    betas, *_ = np.linalg.lstsq(S, (rest_vertices - data.v_template).reshape(-1), rcond=None)
    return betas


def phenotype_to_betas(data: HandModelData, phenotypes: dict[str, float], model=None) -> np.ndarray:
    """Betas (S,) of the open hand for anny phenotype values (gender, age, muscle, weight,
    height, proportions in [0, 1]; missing ones take the default)."""
    if data.source != "open":
        raise ValueError("phenotype_to_betas needs the open hand (data.source == 'open')")
    unknown = set(phenotypes) - set(_DEFAULT_PHENOTYPE)
    if unknown:
        raise ValueError(f"unknown phenotype(s) {sorted(unknown)}; expected {sorted(_DEFAULT_PHENOTYPE)}")
    model = model if model is not None else anny_hand_model(data.side)
    ref = anny_rest_in_mano_frame(model, data.side, phenotypes, align=np.asarray(data.extras["align"]))
    return fit_betas(data, ref["vertices"][0])


def anny_finger_pose(model, side: str, rest_bone_poses: torch.Tensor, finger_rotvecs: torch.Tensor) -> torch.Tensor:
    """anny ``local-bone`` delta transforms (1, 21, 4, 4) posing the 15 finger bones by
    ``finger_rotvecs`` (15, 3) (each bone's own frame, MANO finger order), with the root at its
    rest world pose and the wrist and metacarpals in their rest configuration (G = I), the
    poses :func:`anny_local_bone_to_pose` converts exactly.

    Args:
        rest_bone_poses: (21, 4, 4) anny rest bone poses of the phenotype being posed.
    """
    import roma

    R = rest_bone_poses[:, :3, :3]
    U = model.reference_bone_orientations.to(R)
    parents = list(model.bone_parents)
    D = torch.eye(3, dtype=R.dtype).repeat(21, 1, 1)
    for c in range(1, 21):
        p = parents[c]
        D[c] = U[c].T @ U[p] @ R[p].T @ R[c]  # G_c = R_p U_p^T U_c D_c R_c^T = I
    rot = roma.rotvec_to_rotmat(finger_rotvecs.to(R))
    for j, n in enumerate(ANNY_TO_MANO_BONES):
        c = _bone_index(model, n, side)
        D[c] = D[c] @ rot[j]
    delta = torch.zeros(1, 21, 4, 4, dtype=R.dtype)
    delta[0, :, :3, :3] = D
    delta[0, :, 3, 3] = 1
    delta[0, 0] = rest_bone_poses[0]  # local-bone: the root's delta is its world pose
    return delta
