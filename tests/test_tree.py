"""The O(N) tree solve: every schedule equals a dense solve; its custom VJP equals autodiff."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxdend as jd
from jaxdend.solve import _tree


def _trees():
    yield "y_cell", jd.discretize(jd.y_cell(), nseg=3)
    yield "binary_8", jd.discretize(jd.binary_tree(depth=5), nseg=lambda i, s: 1 if i == 0 else 8)
    yield "reduced_9", jd.discretize(jd.reduced_pyramidal(), nseg=9)


def _system(comps, seed=0):
    """A random diagonally dominant tree matrix (as the cable matrix) and right-hand side."""
    rng = np.random.default_rng(seed)
    n = comps.n
    g = rng.uniform(0.1, 2.0, n)
    g[0] = 0.0
    par = np.maximum(np.asarray(comps.parent), 0)
    d = g + np.bincount(par[1:], weights=g[1:], minlength=n) + rng.uniform(0.01, 1.0, n)
    m = np.diag(d)
    for i in range(1, n):
        m[i, par[i]] = m[par[i], i] = -g[i]
    return m, d, g, rng.normal(size=n)


def _plans(comps):
    parent = np.asarray(comps.parent)
    plans = {"sequential": dataclasses.replace(_tree.TreePlan.from_parent(parent), chains=None),
             "levels": _tree.TreePlan.from_parent(parent, "levels")}
    for max_len in (None, 2, 3, 5, 8, 12):
        chains = _tree._Chains.build(parent, max_len=max_len)
        if chains is not None:
            plans[f"chains_{max_len}"] = dataclasses.replace(plans["sequential"], chains=chains)
    return plans


TREES = list(_trees())


@pytest.mark.parametrize("name,comps", TREES, ids=[t[0] for t in TREES])
def test_every_schedule_equals_dense_solve(name, comps):
    m, d, g, b = _system(comps)
    ref = np.linalg.solve(m, b)
    plans = _plans(comps)
    if comps.n >= 64:
        assert any(k.startswith("chains") for k in plans)
    for key, plan in plans.items():
        x = np.asarray(jax.jit(lambda d, g, b, plan=plan: _tree.tree_solve(plan, d, g, b))(
            jnp.asarray(d), jnp.asarray(g), jnp.asarray(b)))
        np.testing.assert_allclose(x, ref, rtol=1e-10, atol=1e-12, err_msg=key)


def test_real_cell_chain_solve_equals_dense(shared_data):
    morph = jd.load_morphology(shared_data / "morphology" / "C060114A5_derived.swc")
    comps = jd.discretize(morph, d_lambda=0.1)
    m, d, g, b = _system(comps, seed=1)
    plan = _tree.TreePlan.from_parent(np.asarray(comps.parent))
    assert plan.chains is not None
    x = np.asarray(_tree.tree_solve(plan, jnp.asarray(d), jnp.asarray(g), jnp.asarray(b)))
    np.testing.assert_allclose(x, np.linalg.solve(m, b), rtol=1e-9, atol=1e-11)


def test_custom_vjp_equals_autodiff_of_dense_solve():
    """The adjoint (one more tree solve) gives the gradient of a dense solve w.r.t. d, g, b."""
    comps = jd.discretize(jd.binary_tree(depth=5), nseg=lambda i, s: 1 if i == 0 else 8)
    _, d, g, b = _system(comps, seed=2)
    par = np.maximum(np.asarray(comps.parent), 0)
    n = comps.n
    w = jnp.asarray(np.random.default_rng(3).normal(size=n))
    plan = _tree.TreePlan.from_parent(np.asarray(comps.parent))

    def dense(d, g, b):
        m = jnp.diag(d).at[np.arange(1, n), par[1:]].add(-g[1:])
        m = m.at[par[1:], np.arange(1, n)].add(-g[1:])
        return jnp.linalg.solve(m, b)

    def loss(fn):
        return lambda d, g, b: jnp.sum(w * jnp.sin(fn(d, g, b)))

    args = (jnp.asarray(d), jnp.asarray(g), jnp.asarray(b))
    ours = jax.grad(loss(lambda d, g, b: _tree.tree_solve(plan, d, g, b)), argnums=(0, 1, 2))(*args)
    ref = jax.grad(loss(dense), argnums=(0, 1, 2))(*args)
    for a, r, name in zip(ours, ref, "dgb"):
        if name == "g":  # g[0] is not part of the matrix
            a, r = a[1:], r[1:]
        np.testing.assert_allclose(np.asarray(a), np.asarray(r), rtol=1e-9, atol=1e-11,
                                   err_msg=name)


def test_tree_plans_compare_by_value():
    comps = jd.discretize(jd.y_cell(), nseg=3)
    a, b = jd.Cell(comps), jd.Cell(comps)
    assert a.plan == b.plan and hash(a.plan) == hash(b.plan)
    assert jax.tree_util.tree_structure(a) == jax.tree_util.tree_structure(b)
    other = jd.Cell(jd.discretize(jd.y_cell(), nseg=5))
    assert a.plan != other.plan


def test_own_buffer_is_the_identity_for_values_derivatives_and_batches():
    """The fusion guard in front of the chain gathers changes nothing but XLA's fusion:
    values (NaN included), forward and reverse derivatives, and vmapped calls."""
    x = jnp.array([1.5, -2.0, 3.0, jnp.nan])
    np.testing.assert_array_equal(_tree._own_buffer(x), x)
    y = jnp.array([0.5, -1.0, 2.0])
    _, tangent = jax.jvp(_tree._own_buffer, (y,), (jnp.array([1.0, 2.0, 3.0]),))
    np.testing.assert_array_equal(tangent, [1.0, 2.0, 3.0])
    grad = jax.grad(lambda z: jnp.sum(_tree._own_buffer(z) * jnp.arange(3.0)))(y)
    np.testing.assert_array_equal(grad, [0.0, 1.0, 2.0])
    batch = jnp.stack([y, 2 * y, jnp.full(3, jnp.nan)])
    np.testing.assert_array_equal(jax.vmap(_tree._own_buffer)(batch), batch)
