"""Loader of the official MANO v1.2 model pickles, without chumpy and without executing code.

The MANO pickles (``MANO_RIGHT.pkl`` / ``MANO_LEFT.pkl``, licence at https://mano.is.tue.mpg.de)
are Python-2 pickles holding chumpy objects and a scipy sparse joint regressor. They are read
with :func:`honnotate.io.safe_pickle.safe_load` (an allow-list unpickler: chumpy objects become
inert placeholders) and :func:`~honnotate.io.safe_pickle.dechumpify`, then converted to a
:class:`~honnotate.models.hand_data.HandModelData` in smplx's layout (``posedirs`` (135, V*3)).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import numpy as np

from honnotate.io.safe_pickle import dechumpify, safe_load
from honnotate.models.hand_data import MANO_PARENTS, NUM_SKIN_JOINTS, HandModelData

__all__ = ["HO3D_TIPS", "MANO_URL", "mano_file_name", "find_mano_file", "load_mano", "mano_data_from_dict",
           "random_mano_dict"]

#: Fingertip vertex ids of the HO-3D toolkit's MANO (thumb, index, middle, ring, pinky).
HO3D_TIPS = (744, 333, 444, 555, 672)
MANO_URL = "https://mano.is.tue.mpg.de"
_REQUIRED_KEYS = ("v_template", "shapedirs", "posedirs", "J_regressor", "weights", "kintree_table", "f",
                  "hands_components", "hands_mean")


def mano_file_name(side: str) -> str:
    """``MANO_RIGHT.pkl`` or ``MANO_LEFT.pkl``."""
    if side not in ("right", "left"):
        raise ValueError(f"side must be 'right' or 'left', got {side!r}")
    return f"MANO_{side.upper()}.pkl"


def _missing_message(where: Path, side: str) -> str:
    return (f"MANO model not found: {where} (expected {mano_file_name(side)}). The official MANO model "
            f"needs a licence: register at {MANO_URL}, download 'Models & Code' (MANO v1.2) and pass "
            f"the folder holding {mano_file_name(side)} (or set HONNOTATE_MANO_DIR). The open hand "
            f"(`--hand open`, the default) needs nothing.")


def find_mano_file(path_or_dir: str | Path, side: str = "right") -> Path:
    """The MANO pickle for ``side``: ``path_or_dir`` itself, or ``MANO_<SIDE>.pkl`` inside it
    (also in its ``mano/`` or ``models/`` subfolder, the smplx and MANO-release layouts).

    Raises:
        FileNotFoundError: no such file, with where to get MANO.
    """
    path = Path(path_or_dir).expanduser()
    name = mano_file_name(side)
    if path.is_dir():
        for cand in (path / name, path / "mano" / name, path / "models" / name):
            if cand.is_file():
                return cand
        raise FileNotFoundError(_missing_message(path / name, side))
    if not path.is_file():
        raise FileNotFoundError(_missing_message(path, side))
    return path


def _dense(x: Any) -> np.ndarray:
    if hasattr(x, "toarray"):  # scipy sparse
        return np.asarray(x.toarray(), dtype=np.float64)
    return np.asarray(x, dtype=np.float64)


def mano_data_from_dict(d: dict, side: Literal["right", "left"], tip_vertex_ids=HO3D_TIPS,
                        source: str = "<dict>") -> HandModelData:
    """:class:`HandModelData` of a MANO dict (numpy/scipy values, chumpy already removed).

    Args:
        d: keys v_template (V, 3), shapedirs (V, 3, S), posedirs (V, 3, P), J_regressor (16, V)
            dense or sparse, weights (V, 16), kintree_table (2, 16), f (F, 3), hands_components
            (45, 45), hands_mean (45,).
        side: "right" or "left".
        tip_vertex_ids: (5,) fingertip vertex ids (thumb, index, middle, ring, pinky).
        source: file name for error messages.
    """
    missing = [k for k in _REQUIRED_KEYS if k not in d]
    if missing:
        raise ValueError(f"{source}: not a MANO model file (missing keys {missing})")
    v_template = _dense(d["v_template"])
    V = v_template.shape[0]
    posedirs = _dense(d["posedirs"])
    if posedirs.ndim != 3 or posedirs.shape[:2] != (V, 3):
        raise ValueError(f"{source}: posedirs: expected shape ({V}, 3, P), got {posedirs.shape}")
    kintree = np.asarray(d["kintree_table"]).astype(np.int64)
    if kintree.ndim != 2 or kintree.shape[1] != NUM_SKIN_JOINTS:
        raise ValueError(f"{source}: kintree_table: expected shape (2, 16), got {kintree.shape}")
    parents = kintree[0].copy()
    parents[0] = -1  # stored as uint32 max in the MANO files
    if tuple(parents.tolist()) != MANO_PARENTS:
        raise ValueError(f"{source}: kinematic tree {parents.tolist()} is not MANO's {list(MANO_PARENTS)}")
    data = HandModelData(
        v_template=v_template,
        shapedirs=_dense(d["shapedirs"]),
        posedirs=np.ascontiguousarray(posedirs.reshape(-1, posedirs.shape[2]).T),
        j_regressor=_dense(d["J_regressor"]),
        parents=parents,
        weights=_dense(d["weights"]),
        faces=np.asarray(d["f"]).astype(np.int64),
        tip_vertex_ids=np.zeros(5, dtype=np.int64),
        hands_components=_dense(d["hands_components"]),
        hands_mean=_dense(d["hands_mean"]).reshape(-1),
        side=side,
        source="mano",
        source_version="MANO v1.2",
    )
    try:
        return data.with_tip_vertex_ids(tip_vertex_ids)
    except ValueError as exc:
        raise ValueError(f"{source}: {exc}") from exc


def load_mano(path_or_dir: str | Path, side: Literal["right", "left"] = "right",
              tip_vertex_ids=HO3D_TIPS) -> HandModelData:
    """Read an official MANO v1.2 pickle (chumpy not needed, nothing in the file executed).

    Args:
        path_or_dir: ``MANO_RIGHT.pkl`` / ``MANO_LEFT.pkl`` or a folder holding it.
        side: "right" or "left"; must agree with a file name containing RIGHT / LEFT.
        tip_vertex_ids: (5,) fingertip vertex ids, thumb..pinky (default: HO-3D toolkit's).

    Returns:
        :class:`HandModelData` (float64 arrays, metres, MANO rest frame).

    Raises:
        FileNotFoundError: no model there (the message says where to get MANO).
        honnotate.io.safe_pickle.UnsafePickleError: the file names globals outside the allow-list.
        ValueError: the file is not a MANO model or its side disagrees with ``side``.
    """
    path = find_mano_file(path_or_dir, side)
    stem = path.name.upper()
    other = "LEFT" if side == "right" else "RIGHT"
    if other in stem and side.upper() not in stem:
        raise ValueError(f"{path}: file name says {other.lower()} hand but side={side!r}")
    raw = dechumpify(safe_load(path, allow_chumpy=True, allow_sparse=True))
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: not a MANO model file (top-level {type(raw).__name__}, expected dict)")
    return mano_data_from_dict(raw, side, tip_vertex_ids, source=str(path))


def random_mano_dict(num_vertices: int = 778, num_faces: int = 1538, num_betas: int = 10, seed: int = 0,
                     num_pose_basis: int = 135) -> dict[str, Any]:
    """A random model in the layout of the official MANO pickle, for tests and benchmarks.

    Same keys, shapes and dtypes as ``MANO_RIGHT.pkl`` (chumpy replaced by numpy, the joint
    regressor a ``scipy.sparse.csc_matrix``), with random but well-formed values: vertices of
    a ~10 cm blob, each joint regressed from a few vertices (rows sum to 1), skinning weights
    rows summing to 1, small shape and pose correctives. No licence involved.

    Returns:
        dict: v_template (V, 3), shapedirs (V, 3, S), posedirs (V, 3, P), J_regressor (16, V) csc,
        weights (V, 16), kintree_table (2, 16) int64 (root parent 2**32-1), f (F, 3) uint32,
        hands_components (45, 45), hands_mean (45,), all float64 unless stated.
    """
    import scipy.sparse

    if num_vertices < 2 * NUM_SKIN_JOINTS:
        raise ValueError(f"num_vertices: expected >= {2 * NUM_SKIN_JOINTS}, got {num_vertices}")
    rng = np.random.default_rng(seed)
    V, J = num_vertices, NUM_SKIN_JOINTS
    v_template = rng.normal(scale=0.04, size=(V, 3))
    reg = np.zeros((J, V))
    for j in range(J):
        ids = rng.choice(V, size=4, replace=False)
        w = rng.uniform(0.2, 1.0, size=4)
        reg[j, ids] = w / w.sum()
    weights = rng.dirichlet(np.full(J, 0.3), size=V)
    kintree = np.stack([np.array(MANO_PARENTS, dtype=np.int64), np.arange(J, dtype=np.int64)])
    kintree[0, 0] = 2**32 - 1
    return {
        "v_template": v_template,
        "shapedirs": rng.normal(scale=2e-3, size=(V, 3, num_betas)),
        "posedirs": rng.normal(scale=2e-3, size=(V, 3, num_pose_basis)),
        "J_regressor": scipy.sparse.csc_matrix(reg),
        "weights": weights,
        "kintree_table": kintree,
        "f": rng.integers(0, V, size=(num_faces, 3)).astype(np.uint32),
        "hands_components": rng.normal(scale=0.3, size=(45, 45)),
        "hands_mean": rng.normal(scale=0.2, size=45),
        "bs_style": "lbs",
        "bs_type": "lrotmin",
    }
