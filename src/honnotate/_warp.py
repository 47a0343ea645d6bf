"""Import NVIDIA warp with its start-up banner and module-load messages silenced."""

from __future__ import annotations

import os
import sys
import tempfile

__all__ = ["quiet_warp", "NO_DRIVER_NOTICE"]

#: What warp's native library writes to stderr on a machine without an NVIDIA driver (dropped:
#: CPU-only is a supported setup, and ``honnotate info`` says which device is used).
NO_DRIVER_NOTICE = "Could not find or load the NVIDIA CUDA driver"


def quiet_warp():
    """The ``warp`` module, initialised, logging errors only (call before anything inits warp).

    warp's C++ start-up writes the missing-driver notice straight to file descriptor 2; it is
    captured during ``wp.init()`` and every other line is passed on to ``sys.stderr``.
    """
    import warp as wp

    wp.config.log_level = wp.LOG_ERROR
    if getattr(_state, "done", False):
        return wp
    try:
        fd = sys.__stderr__.fileno() if sys.__stderr__ is not None else 2
        saved = os.dup(fd)
    except (OSError, ValueError):  # no real stderr (embedded interpreters): nothing to filter
        wp.init()
        return wp
    with tempfile.TemporaryFile(mode="w+b") as capture:
        try:
            sys.stderr.flush()
            os.dup2(capture.fileno(), fd)
            try:
                wp.init()
            finally:
                os.dup2(saved, fd)
                os.close(saved)
        finally:
            capture.seek(0)
            text = capture.read().decode("utf-8", "replace")
            kept = [line for line in text.splitlines() if NO_DRIVER_NOTICE not in line]
            if kept:
                sys.stderr.write("\n".join(kept) + "\n")
    _state.done = True
    return wp


class _State:
    done = False


_state = _State()
