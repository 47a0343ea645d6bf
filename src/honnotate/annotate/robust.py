"""Robust penalties on residuals (elementwise, differentiable, finite gradients at 0).

Every penalty is written on the squared residual ``s = r^2`` so that it applies equally to
scalar residuals (depth) and to the squared norm of vector residuals (2D keypoints, 3D
distances) without a square root at 0. All of them behave like ``s`` near 0 (the l2 loss),
except ``l1`` / ``truncated_l1`` which are ``|r|``-like:

- ``l2``:            ``s``
- ``l1``:            ``|r|``
- ``truncated_l1``:  ``min(|r|, c)`` (the HOnnotate reference code's depth loss, c = 0.5 m)
- ``tukey``:         ``c^2/3 (1 - (1 - s/c^2)^3)`` for ``s < c^2``, else ``c^2/3`` (Tukey biweight,
  scaled to equal ``s`` near 0 and constant beyond the threshold ``c``; the paper's Eq. 5)
- ``geman_mcclure``: ``c^2 s / (c^2 + s)``
- ``huber``:         ``s`` for ``|r| <= c``, else ``2 c |r| - c^2`` (twice the usual Huber)

``c`` (``scale``) is in the residual's units (metres for depth, pixels for keypoints).
"""

from __future__ import annotations

from typing import Literal

import torch

__all__ = ["RobustKind", "ROBUST_KINDS", "robust_sq", "robust", "irls_weight_sq"]

RobustKind = Literal["l2", "l1", "truncated_l1", "tukey", "geman_mcclure", "huber"]
ROBUST_KINDS: tuple[str, ...] = ("l2", "l1", "truncated_l1", "tukey", "geman_mcclure", "huber")


def _safe_sqrt(s: torch.Tensor) -> torch.Tensor:
    """sqrt(s) for s >= 0 with a zero (sub)gradient at s = 0 instead of inf/NaN."""
    pos = s > 0
    return torch.where(pos, torch.sqrt(torch.where(pos, s, torch.ones_like(s))), torch.zeros_like(s))


def _check(kind: str, scale: float) -> None:
    if kind not in ROBUST_KINDS:
        raise ValueError(f"kind: expected one of {ROBUST_KINDS}, got {kind!r}")
    if kind not in ("l2", "l1") and not scale > 0:
        raise ValueError(f"scale: expected > 0 for kind {kind!r}, got {scale!r}")


def robust_sq(s: torch.Tensor, kind: RobustKind = "l2", scale: float = 1.0) -> torch.Tensor:
    """Robust penalty of squared residuals.

    Args:
        s: (...) squared residuals (>= 0), any float dtype/device, units^2.
        kind: one of :data:`ROBUST_KINDS` (see the module doc).
        scale: threshold ``c`` in the residual's units (unused by ``l2`` and ``l1``).

    Returns:
        (...) penalties, same shape/dtype/device as ``s`` (units^2, or units for the l1 kinds).
    """
    _check(kind, scale)
    if kind == "l2":
        return s
    if kind == "l1":
        return _safe_sqrt(s)
    if kind == "truncated_l1":
        return torch.clamp(_safe_sqrt(s), max=scale)
    c2 = float(scale) ** 2
    if kind == "tukey":
        x = torch.clamp(s / c2, max=1.0)
        return (c2 / 3.0) * (1.0 - (1.0 - x) ** 3)
    if kind == "geman_mcclure":
        return c2 * s / (c2 + s)
    # huber: sqrt only evaluated on the clamped branch, so no inf gradient at 0
    r = torch.sqrt(torch.clamp(s, min=c2))
    return torch.where(s <= c2, s, 2.0 * scale * r - c2)


def robust(r: torch.Tensor, kind: RobustKind = "l2", scale: float = 1.0) -> torch.Tensor:
    """Robust penalty of signed scalar residuals ``r`` (...): ``robust_sq(r * r, kind, scale)``."""
    return robust_sq(r * r, kind, scale)


def irls_weight_sq(s: torch.Tensor, kind: RobustKind = "l2", scale: float = 1.0) -> torch.Tensor:
    """Iteratively-reweighted-least-squares weights ``d rho / d s`` of squared residuals.

    Minimising ``sum w_i s_i`` with these weights fixed has the same stationary points as
    ``sum rho(s_i)`` (used by the Levenberg-Marquardt hand fit). ``l1`` kinds get
    ``1 / (2 max(|r|, 1e-3 scale))``-style weights clamped at small residuals.

    Args:
        s: (...) squared residuals (>= 0), no gradient needed.

    Returns:
        (...) non-negative weights, same shape/dtype/device.
    """
    _check(kind, scale)
    s = s.detach()
    if kind == "l2":
        return torch.ones_like(s)
    c2 = float(scale) ** 2
    if kind == "tukey":
        return torch.clamp(1.0 - s / c2, min=0.0) ** 2
    if kind == "geman_mcclure":
        return (c2 / (c2 + s)) ** 2
    if kind == "huber":
        return torch.where(s <= c2, torch.ones_like(s), scale / torch.sqrt(torch.clamp(s, min=c2)))
    floor = 1e-6 if kind == "l1" else 1e-3 * scale
    w = 0.5 / torch.sqrt(torch.clamp(s, min=floor * floor))
    if kind == "truncated_l1":
        w = torch.where(s < c2, w, torch.zeros_like(w))
    return w
