"""Which hand model to use: the open hand (default, no licence) or the official MANO.

``load_hand_model("open" | "mano", side, ...)`` returns a ready :class:`HandModel`;
``available_hand_models()`` reports what is usable on this machine (``honnotate info``).
The MANO folder comes from the ``mano_dir`` argument or the ``HONNOTATE_MANO_DIR`` variable.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from honnotate.models.hand import HandModel
from honnotate.models.hand_data import HandModelData
from honnotate.models.mano import HO3D_TIPS, MANO_URL, find_mano_file, load_mano, mano_file_name

__all__ = ["HAND_MODEL_KINDS", "MANO_DIR_ENV", "resolve_mano_dir", "load_hand_data", "load_hand_model",
           "available_hand_models"]

HAND_MODEL_KINDS = ("open", "mano")
MANO_DIR_ENV = "HONNOTATE_MANO_DIR"


def resolve_mano_dir(mano_dir: str | Path | None = None) -> Path | None:
    """``mano_dir`` if given, else ``$HONNOTATE_MANO_DIR``, else None."""
    if mano_dir:
        return Path(mano_dir).expanduser()
    env = os.environ.get(MANO_DIR_ENV)
    return Path(env).expanduser() if env else None


def load_hand_data(kind: Literal["open", "mano"] = "open", side: Literal["right", "left"] = "right",
                   mano_dir: str | Path | None = None, cache_dir: str | Path | None = None,
                   tip_vertex_ids=None) -> HandModelData:
    """The arrays of a hand model (see :func:`load_hand_model`)."""
    if side not in ("right", "left"):
        raise ValueError(f"side: expected 'right' or 'left', got {side!r}")
    if kind == "open":
        from honnotate.models.open_hand import load_open_hand  # built lazily (needs anny)

        data = load_open_hand(side, cache_dir=cache_dir)
        return data if tip_vertex_ids is None else data.with_tip_vertex_ids(tip_vertex_ids)
    if kind == "mano":
        where = resolve_mano_dir(mano_dir)
        if where is None:
            raise FileNotFoundError(
                f"MANO model folder not given: pass mano_dir (--mano-dir) or set {MANO_DIR_ENV} to the "
                f"folder holding {mano_file_name(side)}. The official MANO model needs a licence: register "
                f"at {MANO_URL} and download 'Models & Code' (MANO v1.2). The open hand (`--hand open`, "
                f"the default) needs nothing.")
        return load_mano(where, side, HO3D_TIPS if tip_vertex_ids is None else tip_vertex_ids)
    raise ValueError(f"kind: expected one of {HAND_MODEL_KINDS}, got {kind!r}")


def load_hand_model(kind: Literal["open", "mano"] = "open", side: Literal["right", "left"] = "right",
                    mano_dir: str | Path | None = None, cache_dir: str | Path | None = None,
                    tip_vertex_ids=None, **kwargs: Any) -> HandModel:
    """A :class:`HandModel` (float32, CPU; move it with ``.to``).

    Args:
        kind: "open" (anny-derived, built and cached on first use) or "mano" (official pickle).
        side: "right" or "left".
        mano_dir: folder (or file) of the MANO pickles; default ``$HONNOTATE_MANO_DIR``.
        cache_dir: cache of the open hand; default the honnotate cache directory.
        tip_vertex_ids: (5,) fingertip vertex ids (default: the model's; HO-3D's for MANO).
        **kwargs: ``HandModel`` options (use_pca, num_pca_comps, flat_hand_mean).

    Raises:
        FileNotFoundError: for "mano" without a model file (the message says how to get one).
    """
    return HandModel(load_hand_data(kind, side, mano_dir, cache_dir, tip_vertex_ids), **kwargs)


def available_hand_models(cache_dir: str | Path | None = None,
                          mano_dir: str | Path | None = None) -> list[dict[str, str]]:
    """One entry per model and side: dict(name, side, status, location). Never raises."""
    out: list[dict[str, str]] = []
    for side in ("right", "left"):
        try:
            from honnotate.models.open_hand import cached_path

            path = cached_path(side, cache_dir)
            status = "cached" if path.exists() else "not built (built on first use)"
            location = str(path)
        except ImportError as exc:
            status, location = f"unavailable ({exc.name or exc} not importable)", "-"
        except Exception as exc:  # a broken anny install must not break `honnotate info`
            status, location = f"unavailable ({type(exc).__name__}: {exc})", "-"
        out.append({"name": "open", "side": side, "status": status, "location": location})
    where = resolve_mano_dir(mano_dir)
    for side in ("right", "left"):
        if where is None:
            status, location = f"not configured (set {MANO_DIR_ENV})", "-"
        else:
            try:
                location = str(find_mano_file(where, side))
                status = "found"
            except FileNotFoundError:
                status, location = f"missing ({mano_file_name(side)})", str(where)
        out.append({"name": "mano", "side": side, "status": status, "location": location})
    return out
