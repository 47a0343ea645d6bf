"""warp's native start-up notice about a missing NVIDIA driver stays out of honnotate's output."""

from __future__ import annotations

import subprocess
import sys


def test_quiet_warp_drops_the_missing_driver_notice():
    code = ("import sys; from honnotate._warp import quiet_warp; wp = quiet_warp(); quiet_warp(); "
            "print('warp', wp.config.version); print('after', file=sys.stderr)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "warp" in r.stdout
    assert "CUDA driver" not in r.stderr, r.stderr
    assert "after" in r.stderr  # stderr still works after the capture
