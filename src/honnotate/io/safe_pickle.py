"""Restricted unpickling: numpy arrays and plain Python values only, nothing executed.

``pickle.load`` on a file from elsewhere runs whatever callables the file names. HO-3D
annotation files and the MANO model are pickles, so honnotate reads them with an unpickler that
resolves only an allow-list of globals (numpy array reconstruction, dtypes, scipy sparse
matrices) and refuses everything else with :class:`UnsafePickleError` naming the file and the
global. chumpy objects (in the official MANO pickle) are resolved to inert placeholders that
keep their pickled state; :func:`dechumpify` turns them into numpy arrays without chumpy.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["UnsafePickleError", "ChumpyPlaceholder", "safe_load", "safe_loads", "dechumpify"]


class UnsafePickleError(pickle.UnpicklingError):
    """The pickle names a global outside the allow-list (it could execute code)."""


class ChumpyPlaceholder:
    """Inert stand-in for a pickled chumpy object: stores the state, never calls chumpy."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.state: Any = None

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def to_array(self) -> np.ndarray:
        """The object's value (chumpy keeps it under ``x`` in the state dict)."""
        st = self.state
        if isinstance(st, dict):
            for key in ("x", "_x"):
                if key in st:
                    return np.asarray(dechumpify(st[key]))
            # Derived chumpy expressions (e.g. Select) keep their inputs under 'a'.
            if "a" in st:
                return np.asarray(dechumpify(st["a"]))
        raise UnsafePickleError(f"unsupported chumpy object state: {type(st).__name__}")


def _reconstruct_csc(*args):
    import scipy.sparse

    return scipy.sparse.csc_matrix(*args)


def _numpy_global(name: str) -> Any:
    try:
        from numpy._core import multiarray as ma  # numpy >= 2
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core import multiarray as ma
    return getattr(ma, name)


def _numpy_numeric(name: str) -> Any:
    try:
        from numpy._core import numeric  # numpy >= 2
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core import numeric
    return getattr(numeric, name)


# (module, name) -> resolver. Modules are matched exactly; numpy moved core -> _core in 2.0.
_ALLOWED: dict[tuple[str, str], Any] = {
    ("numpy", "ndarray"): lambda: np.ndarray,
    ("numpy", "dtype"): lambda: np.dtype,
    ("_codecs", "encode"): lambda: __import__("codecs").encode,  # bytes in protocol-2 pickles
    ("builtins", "object"): lambda: object,  # only as copyreg._reconstructor's base
    ("builtins", "set"): lambda: set,
    ("builtins", "frozenset"): lambda: frozenset,
    ("builtins", "slice"): lambda: slice,
    ("builtins", "complex"): lambda: complex,
    ("collections", "OrderedDict"): lambda: __import__("collections").OrderedDict,
    ("copy_reg", "_reconstructor"): lambda: _safe_reconstructor,
    ("copyreg", "_reconstructor"): lambda: _safe_reconstructor,
}
for _mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
    for _name in ("_reconstruct", "scalar"):
        _ALLOWED[(_mod, _name)] = (lambda n=_name: _numpy_global(n))
for _mod in ("numpy.core.numeric", "numpy._core.numeric"):  # protocol-5 array buffers
    _ALLOWED[(_mod, "_frombuffer")] = lambda: _numpy_numeric("_frombuffer")


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file, *, source: str, allow_chumpy: bool, allow_sparse: bool) -> None:
        super().__init__(file, encoding="latin1")
        self._source = source
        self._allow_chumpy = allow_chumpy
        self._allow_sparse = allow_sparse

    def find_class(self, module: str, name: str) -> Any:
        if module == "__builtin__":  # Python-2 pickles (the official MANO files)
            module = "builtins"
        resolver = _ALLOWED.get((module, name))
        if resolver is not None:
            return resolver()
        if module.startswith("numpy") and name in ("dtype", "ndarray"):
            return getattr(np, name)
        if self._allow_sparse and module.startswith("scipy.sparse") and name == "csc_matrix":
            import scipy.sparse

            return scipy.sparse.csc_matrix
        if self._allow_chumpy and module.split(".")[0] == "chumpy":
            return ChumpyPlaceholder
        raise UnsafePickleError(
            f"{self._source}: refused to load global {module}.{name}; honnotate only reads numpy "
            f"arrays and plain values from pickles (a pickle naming other globals can execute code)"
        )


def _safe_reconstructor(cls, base, state):
    """copyreg._reconstructor restricted to the placeholder / plain object case."""
    if cls is ChumpyPlaceholder or (isinstance(cls, type) and issubclass(cls, ChumpyPlaceholder)):
        return ChumpyPlaceholder()
    if cls in (set, frozenset, object):
        return cls()
    try:
        import scipy.sparse

        if isinstance(cls, type) and issubclass(cls, scipy.sparse.spmatrix):
            obj = object.__new__(cls)
            return obj
    except ImportError:  # pragma: no cover
        pass
    raise UnsafePickleError(f"refused to reconstruct {cls!r}")


def safe_loads(data: bytes, *, source: str = "<bytes>", allow_chumpy: bool = False,
               allow_sparse: bool = False) -> Any:
    """Unpickle ``data`` with the allow-list (latin1 strings, as Python-2 pickles need)."""
    try:
        return _RestrictedUnpickler(io.BytesIO(data), source=source, allow_chumpy=allow_chumpy,
                                    allow_sparse=allow_sparse).load()
    except UnsafePickleError:
        raise
    except Exception as exc:  # truncated or corrupt files
        raise ValueError(f"{source}: not a readable pickle ({type(exc).__name__}: {exc})") from exc


def safe_load(path: str | Path, *, allow_chumpy: bool = False, allow_sparse: bool = False) -> Any:
    """Read a pickle file with the allow-list; errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    return safe_loads(path.read_bytes(), source=str(path), allow_chumpy=allow_chumpy,
                      allow_sparse=allow_sparse)


def dechumpify(obj: Any) -> Any:
    """Recursively replace chumpy placeholders by numpy arrays (dicts, lists, tuples walked)."""
    if isinstance(obj, ChumpyPlaceholder):
        return obj.to_array()
    if isinstance(obj, dict):
        return {k: dechumpify(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(dechumpify(v) for v in obj)
    return obj
