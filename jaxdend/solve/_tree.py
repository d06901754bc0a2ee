"""O(N) solves of the cable matrix of a tree (Hines elimination).

The matrix of a cable tree in Hines order (every node's parent has a smaller index) is
symmetric with diagonal `d` and off-diagonal entries ``M[i, parent[i]] = M[parent[i], i] = -g[i]``.
Gaussian elimination from the leaves to the root and substitution back is exact and O(N).

Two schedules compute the same result:
- ``"sequential"``: one node at a time in a compiled loop (NEURON's order). Fastest on CPU,
  where XLA turns the loop into tight native code.
- ``"levels"``: all nodes of the same height (leaves first) at once, then all nodes of the same
  depth. Fewer, wider steps; better on GPU/TPU for a single cell.

Both have a custom VJP: the adjoint of a symmetric solve is the same solve, so a gradient costs
one more O(N) solve instead of storing every elimination step.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np


@dataclasses.dataclass(frozen=True, eq=False)
class TreePlan:
    """Static index structure of a tree, computed once from the parent array.

    Attributes:
        parent: (n,) parent index, -1 for the root (node 0).
        up_levels: node indices grouped by height (leaves first), root excluded.
        down_levels: node indices grouped by depth (depth 1 first).
        schedule: "sequential" or "levels".
    """

    parent: np.ndarray
    up_levels: tuple[np.ndarray, ...]
    down_levels: tuple[np.ndarray, ...]
    schedule: str

    @classmethod
    def from_parent(
        cls, parent, schedule: Literal["sequential", "levels"] = "sequential"
    ) -> TreePlan:
        """Build the plan for a Hines-ordered parent array (parent[0] = -1, parent[i] < i)."""
        parent = np.asarray(parent, dtype=np.int64)
        n = parent.shape[0]
        bad_order = np.any(parent[1:] < 0) or np.any(parent[1:] >= np.arange(1, n))
        if n == 0 or parent[0] != -1 or bad_order:
            raise ValueError(
                "The tree is not in Hines order: node 0 must be the only root (parent -1) and "
                "every other node's parent must have a smaller index. Build compartments with "
                "jaxdend.discretize, which orders nodes this way."
            )
        if schedule not in ("sequential", "levels"):
            raise ValueError(f"schedule must be 'sequential' or 'levels', got {schedule!r}.")
        height = np.zeros(n, np.int64)
        for i in range(n - 1, 0, -1):
            p = parent[i]
            height[p] = max(height[p], height[i] + 1)
        depth = np.zeros(n, np.int64)
        for i in range(1, n):
            depth[i] = depth[parent[i]] + 1
        up = tuple(np.nonzero(height == h)[0] for h in range(height[0]))
        down = tuple(np.nonzero(depth == k)[0] for k in range(1, depth.max() + 1)) if n > 1 else ()
        return cls(parent, up, down, schedule)

    @property
    def n(self) -> int:
        """Number of nodes."""
        return int(self.parent.shape[0])


def _solve_sequential(plan: TreePlan, d, g, b):
    n = plan.n
    if n == 1:
        return b / d
    par = jnp.asarray(plan.parent)

    def eliminate(k, carry):
        d, b = carry
        i = n - 1 - k
        p = par[i]
        f = g[i] / d[i]
        return d.at[p].add(-g[i] * f), b.at[p].add(f * b[i])

    d, b = jax.lax.fori_loop(0, n - 1, eliminate, (d, b))

    def substitute(i, v):
        return v.at[i].set((b[i] + g[i] * v[par[i]]) / d[i])

    v = jnp.zeros_like(b).at[0].set(b[0] / d[0])
    return jax.lax.fori_loop(1, n, substitute, v)


def _solve_levels(plan: TreePlan, d, g, b):
    for idx in plan.up_levels:
        p = plan.parent[idx]
        f = g[idx] / d[idx]
        d = d.at[p].add(-g[idx] * f)
        b = b.at[p].add(f * b[idx])
    v = jnp.zeros_like(b).at[0].set(b[0] / d[0])
    for idx in plan.down_levels:
        v = v.at[idx].set((b[idx] + g[idx] * v[plan.parent[idx]]) / d[idx])
    return v


def _solve_raw(plan: TreePlan, d, g, b):
    if plan.schedule == "levels":
        return _solve_levels(plan, d, g, b)
    return _solve_sequential(plan, d, g, b)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _solve(plan, d, g, b):
    return _solve_raw(plan, d, g, b)


def _solve_fwd(plan, d, g, b):
    v = _solve_raw(plan, d, g, b)
    return v, (d, g, v)


def _solve_bwd(plan, res, v_bar):
    d, g, v = res
    lam = _solve_raw(plan, d, g, v_bar)  # M is symmetric: M^-T = M^-1
    d_bar = -lam * v
    par = np.maximum(plan.parent, 0)
    g_bar = lam * v[par] + lam[par] * v
    g_bar = g_bar.at[0].set(0.0)
    return d_bar, g_bar, lam


_solve.defvjp(_solve_fwd, _solve_bwd)


def tree_solve(plan: TreePlan, d, g, b):
    """Solve ``M v = b`` for the symmetric tree matrix M in O(N).

    Args:
        plan: the tree's `TreePlan` (static).
        d: (n,) diagonal of M.
        g: (n,) coupling of each node to its parent (M[i, parent[i]] = -g[i]); g[0] is ignored.
        b: (n,) right-hand side.

    Returns:
        (n,) solution v. Units follow the inputs (e.g. uS, uS and nA give mV).
    """
    return _solve(plan, d, g, b)
