"""Import NVIDIA warp with its start-up banner and module-load messages silenced."""

from __future__ import annotations

__all__ = ["quiet_warp"]


def quiet_warp():
    """The ``warp`` module, initialised, logging errors only (call before anything inits warp)."""
    import warp as wp

    wp.config.log_level = wp.LOG_ERROR
    wp.init()
    return wp
