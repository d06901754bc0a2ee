"""O(N) solves of the cable matrix of a tree (Hines elimination).

The matrix of a cable tree in Hines order (every node's parent has a smaller index) is
symmetric with diagonal `d` and off-diagonal entries ``M[i, parent[i]] = M[parent[i], i] = -g[i]``.
Gaussian elimination from the leaves to the root and substitution back is exact and O(N).

Two schedules compute the same result:
- ``"sequential"``: one node at a time in a compiled loop (NEURON's order). Fastest on CPU,
  where XLA turns the loop into tight native code. On large trees the unbranched chains
  between branch points are first eliminated all at once (vectorised over chains, from both
  ends, which leaves a smaller tree of branch points coupled through their chains); only that
  reduced tree is solved one node at a time, then the chain nodes are recovered, again all
  chains at once. Same result to round-off, several times fewer sequential steps.
- ``"levels"``: all nodes of the same height (leaves first) at once, then all nodes of the same
  depth. Fewer, wider steps; better on GPU/TPU for a single cell.

On CPU the "sequential" schedule runs as native code when it can be built (`_native.py`:
an XLA FFI custom call, the elimination written out in C++, about 2x faster than XLA's
kernels of the chain reduction); GPU/TPU programs and builds without a C++ compiler use the
XLA versions above. All give the same result to round-off.

Their derivative is a linear map of its own (`jaxdend._linear.linear_map`): forward mode solves
once more for the tangent, and reverse mode uses that the adjoint of a symmetric solve is the
same solve, so a gradient costs one more O(N) solve instead of storing every elimination step.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np
from jax.ad_checkpoint import checkpoint_name

from .._linear import linear_map
from . import _native


@dataclasses.dataclass(frozen=True, eq=False)
class TreePlan:
    """Static index structure of a tree, computed once from the parent array.

    Attributes:
        parent: (n,) parent index, -1 for the root (node 0).
        up_levels: node indices grouped by height (leaves first), root excluded.
        down_levels: node indices grouped by depth (depth 1 first).
        schedule: "sequential" or "levels".
        chains: layout of the chain reduction used by the "sequential" schedule on large
            trees (None: plain sequential elimination).
    """

    parent: np.ndarray
    up_levels: tuple[np.ndarray, ...]
    down_levels: tuple[np.ndarray, ...]
    schedule: str
    chains: _Chains | None = dataclasses.field(default=None, repr=False)

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
        chains = _Chains.build(parent) if schedule == "sequential" else None
        return cls(parent, up, down, schedule, chains)

    @property
    def n(self) -> int:
        """Number of nodes."""
        return int(self.parent.shape[0])

    @functools.cached_property
    def native_orders(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(parent, up, down) as int64 for the native solve: the non-root nodes grouped by
        height (leaves first) and by depth (depth 1 first)."""
        n = self.n
        up = np.concatenate(self.up_levels) if self.up_levels else np.zeros(0, np.int64)
        down = np.concatenate(self.down_levels) if self.down_levels else np.zeros(0, np.int64)
        if up.size != n - 1 or down.size != n - 1:  # a plan built without levels
            up, down = np.arange(n - 1, 0, -1), np.arange(1, n)  # Hines order is valid too
        return (self.parent.astype(np.int64), up.astype(np.int64), down.astype(np.int64))

    def __eq__(self, other) -> bool:
        """Plans of the same tree and schedule are equal (so equal cells share a treedef and
        a jit cache entry); everything else in a plan is derived from these two."""
        if not isinstance(other, TreePlan):
            return NotImplemented
        return (self is other or (self.schedule == other.schedule
                                  and np.array_equal(self.parent, other.parent)))

    def __hash__(self) -> int:
        return hash((self.schedule, self.parent.shape[0], self.parent.tobytes()))


# Longest chain piece eliminated in one vectorised sweep; longer chains are cut by promoting
# every (max_len + 1)-th node to a separator of the reduced tree. max_len follows the tree:
# the 75th percentile of its unbranched chain lengths, within these bounds (cutting typical
# chains adds separators to the sequential part, long pieces add unrolled sweep positions;
# measured on C060114A5 at d_lambda 0.1 and nseg 2 or 5, and on binary trees).
_CHAIN_MIN, _CHAIN_MAX = 4, 8


@dataclasses.dataclass(frozen=True, eq=False)
class _Chains:
    """Static layout for the chain-reduction solve (see the module docstring).

    Separators: the root, every branch point, and cut points of long chains. Every other node
    has at most one child and belongs to a chain: a path hanging from a separator ("top"),
    possibly ending at a separator below its tail ("bottom"). Chains are padded to a common
    length with a dummy node (index n: d = 1, b = 0, g = 0).

    Attributes:
        sep: (m,) separator node indices (ascending, so the reduced tree is in Hines order).
        reduced: TreePlan of the separators (sequential schedule, no chains).
        nodes: (c, k) chain node indices, head first, padded with n.
        tail_bottom: (c, k) index of the bottom separator at the tail position of chains that
            have one, else n (its axial conductance couples the tail to the bottom).
        top_tab: (m, t) chains hanging from each separator (index c pads).
        above: (m,) chain ending just above each separator (c if none).
        direct: (m,) True where the separator's parent is itself a separator (or root).
        top_sep / bot_sep: (c,) separator positions (in sep) of each chain's top and bottom
            (m for none).
        inverse: (n,) position of every node in ``concat(x_sep, x_chain.ravel())``.
    """

    sep: np.ndarray
    reduced: TreePlan
    nodes: np.ndarray
    tail_bottom: np.ndarray
    top_tab: np.ndarray
    above: np.ndarray
    direct: np.ndarray
    top_sep: np.ndarray
    bot_sep: np.ndarray
    inverse: np.ndarray

    @classmethod
    def build(cls, parent: np.ndarray, max_len: int | None = None) -> _Chains | None:
        """The layout, or None when chain reduction would not pay (small or bushy trees).

        Args:
            parent: Hines-ordered parent array.
            max_len: longest chain piece (None: from the tree's chain lengths, see above).
        """
        n = parent.shape[0]
        if n < 64:
            return None
        nchild = np.bincount(parent[1:], minlength=n)
        sep = nchild >= 2
        sep[0] = True
        if max_len is None:
            max_len = _natural_max_len(parent, sep)
        run = np.zeros(n, np.int64)  # position of a chain node within its chain piece
        for i in range(1, n):
            if sep[i]:
                continue
            r = run[parent[i]] + 1 if not sep[parent[i]] else 1
            if r > max_len:
                sep[i], r = True, 0
            run[i] = r
        sep_idx = np.nonzero(sep)[0]
        m = sep_idx.size
        if m > 0.6 * n:
            return None
        pos = np.full(n, -1, np.int64)
        pos[sep_idx] = np.arange(m)
        child = np.full(n, -1, np.int64)  # the only child of chain nodes
        for i in range(1, n):
            if not sep[parent[i]]:
                child[parent[i]] = i
        heads = np.nonzero(~sep & sep[np.maximum(parent, 0)])[0]
        heads = heads[heads > 0]
        chains = []
        for h in heads:
            path = [h]
            while child[path[-1]] >= 0 and not sep[child[path[-1]]]:
                path.append(child[path[-1]])
            chains.append(path)
        c = len(chains)
        k = max(len(p) for p in chains)
        nodes = np.full((c, k), n, np.int64)
        tail_bottom = np.full((c, k), n, np.int64)
        top_sep = np.empty(c, np.int64)
        bot_sep = np.full(c, m, np.int64)
        above = np.full(m, c, np.int64)
        red_parent = np.full(m, -1, np.int64)
        direct = np.zeros(m, bool)
        tops = [[] for _ in range(m)]
        for j, path in enumerate(chains):
            nodes[j, : len(path)] = path
            top = pos[parent[path[0]]]
            top_sep[j] = top
            tops[top].append(j)
            below = child[path[-1]]
            if below >= 0:  # the tail's child is a separator
                tail_bottom[j, len(path) - 1] = below
                bot_sep[j] = pos[below]
                above[pos[below]] = j
                red_parent[pos[below]] = top
        for s_pos, node in enumerate(sep_idx[1:], start=1):
            if sep[parent[node]]:
                direct[s_pos] = True
                red_parent[s_pos] = pos[parent[node]]
        t = max(1, max(len(x) for x in tops))
        top_tab = np.full((m, t), c, np.int64)
        for s_pos, lst in enumerate(tops):
            top_tab[s_pos, : len(lst)] = lst
        inverse = np.empty(n, np.int64)
        inverse[sep_idx] = np.arange(m)
        flat = nodes.ravel()
        real = flat < n
        inverse[flat[real]] = m + np.nonzero(real)[0]
        # in Hines order by construction; the sequential solve needs no levels
        reduced = TreePlan(red_parent, (), (), "sequential")
        return cls(sep_idx, reduced, nodes, tail_bottom, top_tab, above, direct, top_sep,
                   bot_sep, inverse)


def _natural_max_len(parent: np.ndarray, sep: np.ndarray) -> int:
    """75th percentile of the lengths of the unbranched chains between branch points (nodes
    with one child, counted from a branch point or the root), clipped to [4, 8]."""
    run = np.zeros(parent.shape[0], np.int64)
    for i in range(1, parent.shape[0]):
        if not sep[i]:
            run[i] = 1 if sep[parent[i]] else run[parent[i]] + 1
    child_is_chain = np.zeros(parent.shape[0], bool)
    child_is_chain[parent[1:][~sep[1:]]] = True
    tails = np.nonzero(~sep & ~child_is_chain)[0]
    tails = tails[tails > 0]
    if tails.size == 0:
        return _CHAIN_MIN
    p75 = int(np.ceil(np.percentile(run[tails], 75)))
    return int(np.clip(p75, _CHAIN_MIN, _CHAIN_MAX))


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


def _own_buffer(x):
    """`x` unchanged, but computed into a buffer of its own before it is gathered.

    XLA's CPU fusion pass otherwise fuses the elementwise work that produces `x` into the
    gathers of the chain layout, and a gather fusion runs as scalar (unvectorised) code: in a
    gradient, the whole adjoint of the gate update ended up inside the first gather of the
    adjoint solve. A conditional is not fused into its consumers; both branches return `x`
    (the predicate is false only for NaN), so values and derivatives are exactly those of
    the identity. Measured (same process, alternating, best of 8) on the 1,016-compartment
    HH tree: value-and-gradient 0.42 -> 0.34 s; C060114A5 at nseg 2: 0.31 -> 0.29 s; the
    forward runs unchanged. Under vmap the predicate is batched and the conditional becomes
    a select, i.e. the identity without the guard.
    """
    return jax.lax.cond(x[0] == x[0], lambda y: y, lambda y: y * 1.0, x)


def _solve_chains(ch: _Chains, d, g, b):
    """Chain reduction: eliminate every chain from both ends (vectorised over chains), solve
    the reduced tree of separators sequentially, recover the chain nodes.

    Chain quantities are laid out position-major, (k, c): the sweeps along the chains work on
    contiguous rows of all chains at once.
    """
    one, zero = jnp.ones((1,), d.dtype), jnp.zeros((1,), d.dtype)
    d, b = _own_buffer(d), _own_buffer(b)
    g_ext = jnp.concatenate([g, zero])
    nodes_t = ch.nodes.T
    gc = g_ext[nodes_t]
    cb = g_ext[ch.tail_bottom.T]  # coupling of the tail to the bottom separator, 0 elsewhere
    k = nodes_t.shape[0]
    dc = jnp.concatenate([d, one])[nodes_t]
    bc = jnp.concatenate([b, zero])[nodes_t]
    # upward sweep (tail -> head), keeping the coupling to the bottom separator:
    # x_j = (bu_j + g_j x_{j-1} + cu_j x_bottom) / du_j
    du, bu, cu = [None] * k, [None] * k, [None] * k
    du[k - 1], bu[k - 1], cu[k - 1] = dc[k - 1], bc[k - 1], cb[k - 1]
    for j in range(k - 2, -1, -1):
        f = gc[j + 1] / du[j + 1]
        du[j] = dc[j] - gc[j + 1] * f
        bu[j] = bc[j] + f * bu[j + 1]
        cu[j] = cb[j] + f * cu[j + 1]
    # downward sweep (head -> tail): only what the bottom separator's row needs
    de, fe = dc[0], bc[0]
    bot_d = cb[0] * cb[0] / de
    bot_b = cb[0] * fe / de
    for j in range(1, k):
        f = gc[j] / de
        de = dc[j] - gc[j] * f
        fe = bc[j] + f * fe
        bot_d = bot_d + cb[j] * cb[j] / de
        bot_b = bot_b + cb[j] * fe / de
    # rows of the separators: their own entries, minus what the chains took
    f1 = gc[0] / du[0]
    zc = jnp.zeros((1,), d.dtype)
    top_d = jnp.concatenate([gc[0] * f1, zc])
    top_b = jnp.concatenate([f1 * bu[0], zc])
    bot_d = jnp.concatenate([bot_d, zc])
    bot_b = jnp.concatenate([bot_b, zc])
    link = jnp.concatenate([f1 * cu[0], zc])  # reduced coupling top <-> bottom
    ds = d[ch.sep] - jnp.sum(top_d[ch.top_tab], axis=1) - bot_d[ch.above]
    bs = b[ch.sep] + jnp.sum(top_b[ch.top_tab], axis=1) + bot_b[ch.above]
    gs = jnp.where(ch.direct, g[ch.sep], link[ch.above])
    xs = _solve_sequential(ch.reduced, ds, gs, bs)
    # back substitution down every chain
    xs_ext = jnp.concatenate([xs, zero])
    x_top, x_bot = xs_ext[ch.top_sep], xs_ext[ch.bot_sep]
    x = (bu[0] + gc[0] * x_top + cu[0] * x_bot) / du[0]
    cols = [x]
    for j in range(1, k):
        x = (bu[j] + gc[j] * x + cu[j] * x_bot) / du[j]
        cols.append(x)
    flat = _own_buffer(jnp.concatenate([xs, jnp.stack(cols, axis=1).ravel()]))
    return flat[ch.inverse]


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


def _solve_xla(plan: TreePlan, d, g, b):
    if plan.schedule == "levels":
        return _solve_levels(plan, d, g, b)
    if plan.chains is not None:
        return _solve_chains(plan.chains, d, g, b)
    return _solve_sequential(plan, d, g, b)


def _solve_raw(plan: TreePlan, d, g, b):
    if plan.schedule == "levels" or plan.n == 1 or not _native.supports(d, g, b):
        return _solve_xla(plan, d, g, b)
    return jax.lax.platform_dependent(
        d, g, b,
        cpu=lambda d, g, b: _native.tree_solve(*plan.native_orders, d, g, b),
        default=lambda d, g, b: _solve_xla(plan, d, g, b))


def _over_batch(fn, plan, *arrays):
    """`fn(plan, *arrays)` for arrays of shape (n,), mapped over their leading axes."""
    lead = arrays[0].ndim - 1
    for _ in range(lead):
        fn = jax.vmap(fn, in_axes=(None,) + (0,) * len(arrays))
    return fn(plan, *arrays)


def _tangent_one(plan, d, g, v, dd, dg, db):
    """The solve's derivative: ``dv = M^-1 (db - dM v)`` for the tree matrix M of (d, g) and
    its solution v; dM has diagonal dd and off-diagonal entries -dg."""
    par = np.maximum(plan.parent, 0)
    root = np.arange(plan.n) == 0
    edge = jnp.where(root, 0.0, dg * v)  # dg_i v_i: the child's side of edge (i, parent)
    dm_v = dd * v - jnp.where(root, 0.0, dg * v[par]) - jax.ops.segment_sum(
        edge, par, num_segments=plan.n)
    return (_solve(plan, d, g, db - dm_v),)  # _solve: differentiable again


def _transpose_one(plan, d, g, v, v_bar):
    """Transpose of `_tangent_one`: the adjoint of a symmetric solve is the same solve, so
    from ``lam = M^-1 v_bar``: d_bar = -lam v, g_bar_i = lam_i v_p + lam_p v_i, b_bar = lam."""
    lam = _solve(plan, d, g, v_bar)
    par = np.maximum(plan.parent, 0)
    g_bar = (lam * v[par] + lam[par] * v).at[0].set(0.0)
    return -lam * v, g_bar, lam


_tangent = linear_map(
    "jaxdend_tree_solve_tangent",
    lambda d, g, v, dd, dg, db, plan: _over_batch(_tangent_one, plan, d, g, v, dd, dg, db),
    lambda d, g, v, v_bar, plan: _over_batch(_transpose_one, plan, d, g, v, v_bar),
    3)


# The name of the solve's output for checkpoint policies (`jax.ad_checkpoint.checkpoint_name`).
SOLVE_NAME = "jaxdend.tree_solve"


@functools.partial(jax.custom_jvp, nondiff_argnums=(0,))
def _solve(plan, d, g, b):
    return _solve_raw(plan, d, g, b)


@_solve.defjvp
def _solve_jvp(plan, primals, tangents):
    d, g, b = primals
    # named for the checkpoint policy of simulate's scan that keeps it (`KEEP_SOLVES` there):
    # a recomputed step then needs no solve to rebuild this output and residual
    v = checkpoint_name(_solve(plan, d, g, b), SOLVE_NAME)
    shape = jnp.broadcast_shapes(d.shape, g.shape, b.shape)
    args = [jnp.broadcast_to(x, shape) for x in (d, g, v, *tangents)]
    return v, _tangent(*args, plan=plan)[0]


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
