"""A batched damped Gauss-Newton (Levenberg-Marquardt) least-squares solver in torch.

Solves B independent problems ``min_x |r(x)|^2`` at once (x: (B, P), r: (B, R)), with
Marquardt's diagonal scaling, per-problem damping and optional iteratively reweighted least
squares (IRLS) for robust losses. Jacobians come from autograd (``torch.func.jacrev`` on the
batch sum, exact because the problems are independent) unless a ``jacobian_fn`` is given.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch.func import jacrev

__all__ = ["LMResult", "levenberg_marquardt", "batch_jacobian"]


@dataclass(frozen=True)
class LMResult:
    """x: (B, P) solution; cost: (B,) final sum of squared (weighted) residuals; iterations run."""

    x: torch.Tensor
    cost: torch.Tensor
    iterations: int


def batch_jacobian(residual_fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """(B, R, P) Jacobians of B independent residual functions (row b of ``r`` depends on row b of x only)."""
    J = jacrev(lambda y: residual_fn(y).sum(0))(x)  # (R, B, P)
    return J.permute(1, 0, 2)


def levenberg_marquardt(residual_fn: Callable[[torch.Tensor], torch.Tensor], x0: torch.Tensor, iterations: int = 50,
                        damping: float = 1e-3, jacobian_fn: Callable[[torch.Tensor], torch.Tensor] | None = None,
                        reweight_fn: Callable[[torch.Tensor, int], torch.Tensor] | None = None,
                        tolerance: float = 1e-10, max_tries: int = 6) -> LMResult:
    """Minimise ``sum_i w_i r_i(x)^2`` for each of B independent problems.

    Args:
        residual_fn: (B, P) -> (B, R) residuals (differentiable in x).
        x0: (B, P) start (float64 recommended for conditioning).
        iterations: outer iterations (one Jacobian each).
        damping: initial Marquardt damping lambda (relative to diag(J^T J)).
        jacobian_fn: (B, P) -> (B, R, P), default :func:`batch_jacobian`.
        reweight_fn: ``(r (B, R), iteration) -> w (B, R)`` IRLS weights, recomputed at the start
            of every outer iteration from the current residuals (None: w = 1).
        tolerance: stop when every problem's relative cost decrease is below it.
        max_tries: damping increases tried per iteration before giving up on a problem.

    Returns:
        :class:`LMResult`.
    """
    if not isinstance(x0, torch.Tensor) or x0.ndim != 2:
        raise ValueError(f"x0: expected (B, P), got {tuple(x0.shape) if isinstance(x0, torch.Tensor) else x0!r}")
    jac = jacobian_fn or (lambda y: batch_jacobian(residual_fn, y))
    x = x0.detach().clone()
    B, P = x.shape
    lam = torch.full((B,), float(damping), dtype=x.dtype, device=x.device)
    eye = torch.eye(P, dtype=x.dtype, device=x.device)
    it = 0
    cost = None
    for it in range(1, iterations + 1):
        with torch.no_grad():
            r = residual_fn(x)
        w = torch.ones_like(r) if reweight_fn is None else reweight_fn(r, it - 1).detach()
        sw = torch.sqrt(w)
        cost = ((sw * r) ** 2).sum(-1)
        J = jac(x).detach() * sw[..., None]
        rw = sw * r
        JtJ = J.transpose(1, 2) @ J
        g = (J.transpose(1, 2) @ rw[..., None])[..., 0]
        diag = torch.diagonal(JtJ, dim1=1, dim2=2)
        scale = torch.clamp(diag, min=1e-9 * diag.amax(-1, keepdim=True).clamp(min=1e-30))
        pending = torch.ones(B, dtype=torch.bool, device=x.device)
        new_x = x.clone()
        new_cost = cost.clone()
        for _ in range(max_tries):
            A = JtJ + lam[:, None, None] * torch.diag_embed(scale) + 1e-12 * eye
            step = -torch.linalg.solve(A, g[..., None])[..., 0]
            cand = x + step
            with torch.no_grad():
                c = ((sw * residual_fn(cand)) ** 2).sum(-1)
            better = pending & torch.isfinite(c) & (c < cost)
            new_x[better] = cand[better]
            new_cost[better] = c[better]
            lam = torch.where(better, torch.clamp(lam / 3.0, min=1e-9), lam)
            lam = torch.where(pending & ~better, lam * 4.0, lam)
            pending = pending & ~better
            if not pending.any():
                break
        rel = (cost - new_cost) / torch.clamp(cost, min=1e-30)
        x = new_x
        cost = new_cost
        if bool((rel < tolerance).all()) and reweight_fn is None:
            break
    with torch.no_grad():
        r = residual_fn(x)
    w = torch.ones_like(r) if reweight_fn is None else reweight_fn(r, it).detach()
    return LMResult(x=x, cost=(w * r * r).sum(-1), iterations=it)
