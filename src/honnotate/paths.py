"""Default locations (overridable by argument everywhere, and by environment variable)."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["default_cache_dir"]


def default_cache_dir() -> Path:
    """Where built models are cached: ``$HONNOTATE_CACHE`` or ``~/.cache/honnotate``."""
    env = os.environ.get("HONNOTATE_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "honnotate"
