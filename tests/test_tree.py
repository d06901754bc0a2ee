"""The O(N) tree solve: every schedule (XLA and native) equals a dense solve; its custom VJP
equals autodiff; the native CPU code falls back to XLA when it cannot be built."""

import dataclasses
import json
import os
import shutil
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _helpers import scan_path_record

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
        for path, solve in (("xla", _tree._solve_xla), ("default", _tree.tree_solve)):
            x = np.asarray(jax.jit(lambda d, g, b, plan=plan, solve=solve: solve(plan, d, g, b))(
                jnp.asarray(d), jnp.asarray(g), jnp.asarray(b)))
            np.testing.assert_allclose(x, ref, rtol=1e-10, atol=1e-12, err_msg=f"{key} {path}")


def test_real_cell_chain_solve_equals_dense(shared_data):
    morph = jd.load_morphology(shared_data / "morphology" / "C060114A5_derived.swc")
    comps = jd.discretize(morph, d_lambda=0.1)
    m, d, g, b = _system(comps, seed=1)
    plan = _tree.TreePlan.from_parent(np.asarray(comps.parent))
    assert plan.chains is not None
    ref = np.linalg.solve(m, b)
    for solve in (_tree._solve_xla, _tree.tree_solve):
        x = np.asarray(solve(plan, jnp.asarray(d), jnp.asarray(g), jnp.asarray(b)))
        np.testing.assert_allclose(x, ref, rtol=1e-9, atol=1e-11)


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


def _have_compiler():
    return bool(os.environ.get("CXX") or any(shutil.which(c) for c in ("c++", "g++", "clang++")))


@pytest.mark.skipif(os.environ.get("JAXDEND_NATIVE") == "0", reason="native solve turned off")
def test_native_solve_is_built_used_on_cpu_and_exact_in_both_dtypes_and_batches():
    """With a C++ compiler the CPU program calls the native solve (one custom call instead of
    the chain kernels); it equals the dense solve in float64 and float32, batched (shared and
    per-item conductances) and differentiated."""
    if not _have_compiler():
        pytest.skip("no C++ compiler on this machine")
    from jaxdend.solve import _native

    assert _native.available(), _native._status.get("error")
    comps = jd.discretize(jd.binary_tree(depth=5), nseg=lambda i, s: 1 if i == 0 else 8)
    m, d, g, b = _system(comps, seed=4)
    plan = _tree.TreePlan.from_parent(np.asarray(comps.parent))
    fn = jax.jit(lambda d, g, b: _tree.tree_solve(plan, d, g, b))
    hlo = fn.lower(jnp.asarray(d), jnp.asarray(g), jnp.asarray(b)).compile().as_text()
    assert "jaxdend_tree_solve_f64" in hlo and "gather" not in hlo
    ref = np.linalg.solve(m, b)
    np.testing.assert_allclose(np.asarray(fn(d, g, b)), ref, rtol=1e-12, atol=1e-13)
    x32 = fn(*(jnp.asarray(a, jnp.float32) for a in (d, g, b)))
    assert x32.dtype == jnp.float32
    np.testing.assert_allclose(np.asarray(x32), ref, rtol=1e-4, atol=1e-5)
    # batches: 3 right-hand sides and diagonals, the conductances shared or per item
    rng = np.random.default_rng(5)
    ds = d + rng.uniform(0.0, 0.5, (3, comps.n))
    bs = rng.normal(size=(3, comps.n))
    gs = np.stack([g, 0.5 * g, 2.0 * g])
    shared = jax.vmap(lambda d, b: _tree.tree_solve(plan, d, g, b))(ds, bs)
    per_item = jax.vmap(lambda d, g, b: _tree.tree_solve(plan, d, g, b))(ds, gs, bs)
    for k in range(3):
        np.testing.assert_allclose(np.asarray(shared[k]),
                                   np.asarray(_tree._solve_xla(plan, ds[k], g, bs[k])),
                                   rtol=1e-12, atol=1e-13)
        np.testing.assert_allclose(np.asarray(per_item[k]),
                                   np.asarray(_tree._solve_xla(plan, ds[k], gs[k], bs[k])),
                                   rtol=1e-12, atol=1e-13)
    w = jnp.asarray(rng.normal(size=comps.n))
    grads = [jax.grad(lambda d, g, b, s=s: jnp.sum(w * jnp.sin(s(plan, d, g, b))),
                      argnums=(0, 1, 2))(d, g, b) for s in (_tree.tree_solve, _tree._solve_xla)]
    for a, r in zip(*grads):
        np.testing.assert_allclose(np.asarray(a), np.asarray(r), rtol=1e-11, atol=1e-13)


def test_native_batched_solve_side_by_side_equals_lone_solves_bit_for_bit():
    """Batches of several systems are solved side by side (`SolveLanes` in tree_solve.cc);
    every system's solution equals the dense solve and, bit for bit, the same system solved
    alone, for batch sizes around the lane width (so results do not depend on the batch)."""
    if not _have_compiler():
        pytest.skip("no C++ compiler on this machine")
    from jaxdend.solve import _native

    assert _native.available(), _native._status.get("error")
    small = jd.discretize(jd.reduced_pyramidal(), nseg=3)  # 50 nodes
    large = jd.discretize(jd.binary_tree(depth=5), nseg=lambda i, s: 1 if i == 0 else 5)
    # large: 171 nodes, in float64 too many for the level-1 cache side by side, so a
    # remainder of 4-7 systems is solved one at a time
    for comps, against_xla in ((small, True), (large, False)):
        _check_side_by_side(comps, against_xla)


def _check_side_by_side(comps, against_xla):
    m, d, g, b = _system(comps, seed=8)
    plan = _tree.TreePlan.from_parent(np.asarray(comps.parent))
    rng = np.random.default_rng(9)
    one = jax.jit(lambda d, g, b: _tree.tree_solve(plan, d, g, b))
    many = jax.jit(jax.vmap(lambda d, g, b: _tree.tree_solve(plan, d, g, b)))
    for dtype in (jnp.float64, jnp.float32):
        for size in (1, 3, 4, 8, 13):
            ds = jnp.asarray(d + rng.uniform(0.0, 0.5, (size, comps.n)), dtype)
            gs = jnp.asarray(g * rng.uniform(0.5, 2.0, (size, 1)), dtype)
            bs = jnp.asarray(rng.normal(size=(size, comps.n)), dtype)
            out = many(ds, gs, bs)
            for k in range(size):
                np.testing.assert_array_equal(np.asarray(out[k]),
                                              np.asarray(one(ds[k], gs[k], bs[k])))
                if dtype == jnp.float64 and against_xla:
                    ref = np.asarray(_tree._solve_xla(plan, ds[k], gs[k], bs[k]))
                    np.testing.assert_allclose(np.asarray(out[k]), ref, rtol=1e-12,
                                               atol=1e-13)


_FALLBACK_SCRIPT = textwrap.dedent("""
    import warnings
    import jax
    jax.config.update("jax_enable_x64", True)
    import numpy as np
    import jaxdend as jd
    cell = jd.Cell(jd.discretize(jd.y_cell(), nseg=3)).insert(jd.channels.HH())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fn = jax.jit(lambda c: jd.simulate(c, jd.stimulus.step(0, 0.5, 1.0, 5.0), t1=10.0,
                                           dt=0.025, record=c.probe("v", index=0))["v"])
        v = np.asarray(fn(cell))
    hlo = fn.lower(cell).compile().as_text()
    print("CUSTOM_CALL", "jaxdend_tree_solve" in hlo)
    print("WARNINGS", [str(w.message) for w in caught if "native CPU tree" in str(w.message)])
    np.save(__import__("sys").argv[1], v)
""")


def test_native_solve_falls_back_to_xla_with_a_warning_or_when_turned_off(tmp_path):
    """No compiler: one warning naming the reason and the fix, then the XLA solve with the
    same trace; JAXDEND_NATIVE=0: the XLA solve, no warning."""
    script = tmp_path / "fallback.py"
    script.write_text(_FALLBACK_SCRIPT)
    env = dict(os.environ, JAXDEND_CACHE_DIR=str(tmp_path / "cache"),
               CXX=str(tmp_path / "no-such-compiler"))
    env.pop("JAXDEND_NATIVE", None)
    runs = {}
    for name, extra in (("no_compiler", {}), ("off", {"JAXDEND_NATIVE": "0"})):
        out = subprocess.run([sys.executable, str(script), str(tmp_path / f"{name}.npy")],
                             env=dict(env, **extra), capture_output=True, text=True,
                             timeout=300)
        assert out.returncode == 0, out.stderr[-3000:]
        runs[name] = out.stdout
    assert "CUSTOM_CALL False" in runs["no_compiler"] and "CUSTOM_CALL False" in runs["off"]
    warned = runs["no_compiler"].split("WARNINGS", 1)[1]
    assert "no-such-compiler" in warned and "JAXDEND_NATIVE=0" in warned
    assert "WARNINGS []" in runs["off"]
    np.testing.assert_array_equal(np.load(tmp_path / "no_compiler.npy"),
                                  np.load(tmp_path / "off.npy"))


_LOWER_SCRIPT = textwrap.dedent("""
    import json, re, sys
    import jax, jax.numpy as jnp
    jax.config.update("jax_enable_x64", True)
    import jaxdend as jd
    from jaxdend.solve import _checks

    # the run-time checks as on CPU with EQX_ON_ERROR=raise (native on CPU, equinox's
    # elsewhere), while EQX_ON_ERROR=nan lets equinox's branch lower for CUDA / TPU here
    _checks._native_checks = _checks._native.available

    comps = jd.discretize(jd.binary_tree(depth=3), nseg=lambda i, s: 1 if i == 0 else 6)
    out = {}
    for sched, plats in (("sequential", ("cpu", "cuda", "tpu")), ("levels", ("cuda",))):
        cell = jd.Cell(comps, schedule=sched).insert(jd.channels.HH())
        g0 = cell.get("HH.g_na")

        def loss(s, cell=cell, g0=g0, gate=False):
            def one(s):
                c = cell.set("HH.g_na", g0 * s)
                rec = {"v": c.probe("v", index=0)}
                if gate:  # a gate recorded: the scan path, its steps native calls on CPU
                    rec["m"] = c.probe("HH.m", index=0)
                return jd.simulate(c, jd.stimulus.step(0, 0.5), t1=0.25, dt=0.025,
                                   record=rec)["v"]
            return jnp.sum(jax.vmap(one)(s) ** 2)

        s = jnp.linspace(0.9, 1.1, 4)
        programs = {  # voltages only: one native run (and its reverse) on CPU
            sched: jax.jit(jax.value_and_grad(loss)).trace(s),
            "forward-" + sched: jax.jit(lambda s: loss(s)).trace(s),
            "steps-" + sched: jax.jit(jax.value_and_grad(
                lambda s: loss(s, gate=True))).trace(s)}
        for plat in plats:
            for key, tr in programs.items():
                txt = tr.lower(lowering_platforms=(plat,)).as_text()
                out[key + "/" + plat] = sorted(set(re.findall(r"custom_call @(\\w+)", txt)))
    print("TARGETS " + json.dumps(out))
""")


def test_gpu_and_tpu_programs_lower_without_the_native_cpu_calls(tmp_path):
    """CI has no GPU: lowering a batched value-and-gradient and a batched forward run of
    `simulate` for CUDA and TPU from this CPU machine checks that their programs hold none of
    the CPU-only native calls (tree solve, HH gate steps and their reverse steps, whole runs
    and their reverse, run-time checks), which the CPU programs of the same traces do hold.
    Equinox's runtime checks (the GPU / TPU branch of jaxdend's) are host callbacks that need
    the target's runtime to lower, so they are lowered as NaN here (EQX_ON_ERROR=nan)."""
    script = tmp_path / "lower.py"
    script.write_text(_LOWER_SCRIPT)
    env = dict(os.environ, EQX_ON_ERROR="nan")
    out = subprocess.run([sys.executable, str(script)], env=env, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    targets = json.loads(out.stdout.split("TARGETS ", 1)[1])
    for key in targets:
        if not key.endswith("/cpu"):
            assert not [t for t in targets[key] if t.startswith("jaxdend")], (key, targets[key])
    if _have_compiler() and os.environ.get("JAXDEND_NATIVE") != "0":
        assert {"jaxdend_tree_solve_f64", "jaxdend_hh_gates_f64",
                "jaxdend_hh_gates_vjp_f64"} <= set(targets["steps-sequential/cpu"])
        assert {"jaxdend_hh_run_f64", "jaxdend_hh_run_vjp_f64",
                "jaxdend_raise_if"} <= set(targets["sequential/cpu"])
        assert "jaxdend_hh_run_f64" in targets["forward-sequential/cpu"]


@pytest.mark.skipif(os.environ.get("JAXDEND_NATIVE") == "0", reason="native code turned off")
def test_native_hh_gate_step_is_used_on_cpu_and_equals_the_xla_formulas():
    """The CPU program of HH.exp_euler calls the native gate step; it equals the XLA formulas
    to round-off over -200..200 mV (float64 and float32), batched over temperature, and its
    derivative (the custom JVP, unchanged) agrees."""
    if not _have_compiler():
        pytest.skip("no C++ compiler on this machine")
    from jaxdend.channels import _hh
    from jaxdend.solve import _native

    assert _native.available(), _native._status.get("error")
    rng = np.random.default_rng(7)
    v = jnp.asarray(np.concatenate([np.linspace(-200.0, 200.0, 2001), [-40.0, -55.0, -65.0]]))
    st = {k: jnp.asarray(rng.uniform(0.0, 1.0, v.shape)) for k in ("m", "h", "n")}
    ch = jd.channels.HH()

    def xla(st, v, cels):
        q10 = _hh._hh_q10(cels)
        return dict(zip("mhn", _hh._hh_exp_euler_parts(st["m"], st["h"], st["n"], v, q10,
                                                        jnp.asarray(0.025, v.dtype))[0]))

    fn = jax.jit(lambda st, v, c: ch.exp_euler(st, v, c, 0.025))
    assert "jaxdend_hh_gates_f64" in fn.lower(st, v, 6.3).compile().as_text()
    for k, x in fn(st, v, 6.3).items():
        assert bool(jnp.all(jnp.isfinite(x)))
        np.testing.assert_allclose(np.asarray(x), np.asarray(xla(st, v, 6.3)[k]),
                                   rtol=1e-13, atol=1e-15)
    cels = jnp.asarray([6.3, 20.0, 37.0])
    batched = jax.vmap(fn, in_axes=(None, None, 0))(st, v, cels)
    for i in range(3):
        ref = xla(st, v, cels[i])
        for k in "mhn":
            np.testing.assert_allclose(np.asarray(batched[k][i]), np.asarray(ref[k]),
                                       rtol=1e-13, atol=1e-15)
    st32 = {k: x.astype(jnp.float32) for k, x in st.items()}
    out32 = fn(st32, v.astype(jnp.float32), 6.3)
    for k, x in out32.items():
        assert x.dtype == jnp.float32
        np.testing.assert_allclose(np.asarray(x), np.asarray(xla(st, v, 6.3)[k]),
                                   rtol=1e-5, atol=1e-6)
    w = jnp.asarray(rng.normal(size=v.shape))
    g_nat = jax.grad(lambda v: jnp.sum(w * fn(st, v, 6.3)["m"]))(v)
    g_xla = jax.grad(lambda v: jnp.sum(w * xla(st, v, 6.3)["m"]))(v)
    np.testing.assert_allclose(np.asarray(g_nat), np.asarray(g_xla), rtol=1e-11, atol=1e-13)


@pytest.mark.skipif(os.environ.get("JAXDEND_NATIVE") == "0", reason="native code turned off")
def test_native_reverse_steps_of_hh_are_used_on_cpu_and_equal_the_xla_formulas():
    """Reverse mode of HH's gate step and current (and of the two as one, between the steps
    of a checkpointed unit) runs the native VJP loops on CPU (`native/hh_gates.cc`); they
    equal the XLA transposes to round-off over -200..200 mV in float64 and float32, also
    under vmap (a temperature per batch element)."""
    if not _have_compiler():
        pytest.skip("no C++ compiler on this machine")
    from jaxdend.channels import _hh
    from jaxdend.solve import _native

    assert _native.available(), _native._status.get("error")
    rng = np.random.default_rng(11)
    v = jnp.asarray(np.concatenate([np.linspace(-200.0, 200.0, 2001), [-40.0, -55.0, -65.0]]))
    gates = [jnp.asarray(rng.uniform(0.0, 1.0, v.shape)) for _ in range(3)]
    cts = [jnp.asarray(rng.normal(size=v.shape)) for _ in range(5)]
    k = jnp.asarray(0.025 * 2.5)
    params = [jnp.asarray(rng.uniform(lo, hi, v.shape))
              for lo, hi in ((0.0, 0.2), (0.0, 0.05), (0.0, 1e-3), (40, 60), (-90, -70),
                             (-70, -50))]

    def check(native, xla, args, rtol, dtype):
        args = [a.astype(dtype) for a in args]
        out_n, out_x = jax.jit(native)(*args), jax.jit(xla)(*args)
        for a, b in zip(out_n, out_x):
            assert a.dtype == dtype and bool(jnp.all(jnp.isfinite(a)))
            scale = float(jnp.max(jnp.abs(b))) + 1e-30
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=rtol,
                                       atol=rtol * scale)

    for dtype, rtol in ((jnp.float64, 1e-12), (jnp.float32, 1e-4)):
        check(_native.hh_gates_vjp, _hh._vjp_xla, [*gates, v, k, *cts[:3]], rtol, dtype)
        check(_native.hh_current_vjp, _hh._current_vjp_xla, [*gates, v, *params, *cts],
              rtol, dtype)
        check(_native.hh_step_current_vjp, _hh._step_current_vjp_xla,
              [*gates, v, k, *params, *cts], rtol, dtype)
    # a k per batch element; runs of equal k are one loop in the native code, and the
    # cotangent of k is still summed per element
    ks = jnp.asarray([0.01, 0.0625, 0.0625, 0.2, 0.2, 0.2, 0.01])
    batched = jax.vmap(_native.hh_gates_vjp, in_axes=(None,) * 4 + (0,) + (None,) * 3)
    ref = jax.vmap(_hh._vjp_xla, in_axes=(None,) * 4 + (0,) + (None,) * 3)
    for a, b in zip(batched(*gates, v, ks, *cts[:3]), ref(*gates, v, ks, *cts[:3])):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-12,
                                   atol=1e-12 * float(jnp.max(jnp.abs(b))))
    axes = (None,) * 4 + (0,) + (None,) * 11
    batched = jax.vmap(_native.hh_step_current_vjp, in_axes=axes)
    ref = jax.vmap(_hh._step_current_vjp_xla, in_axes=axes)
    for a, b in zip(batched(*gates, v, ks, *params, *cts), ref(*gates, v, ks, *params, *cts)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-12,
                                   atol=1e-12 * float(jnp.max(jnp.abs(b))))
    fwd = jax.vmap(_native.hh_gates, in_axes=(None,) * 4 + (0,))(*gates, v, ks)
    for i, k in enumerate(ks):
        for a, b in zip(fwd, _native.hh_gates(*gates, v, k)):
            np.testing.assert_array_equal(np.asarray(a[i]), np.asarray(b))

    cell = jd.Cell(jd.discretize(jd.y_cell(), nseg=3)).insert(jd.channels.HH())
    stim = jd.stimulus.step(0, 0.3, 1.0, 3.0)
    # the scan path, whose steps these are (voltages alone: the native reverse run)
    record = scan_path_record(cell)
    grad = jax.jit(jax.grad(lambda g: jnp.sum(jd.simulate(cell.set("HH.g_na", g), stim, t1=5.0,
                                                          record=record)["v"] ** 2)))
    hlo = grad.lower(0.12).compile().as_text()
    assert "jaxdend_hh_gates_vjp_f64" in hlo and "jaxdend_hh_current_vjp_f64" in hlo
    # between the steps of a checkpointed unit: the gate step and the next current in one
    assert "jaxdend_hh_step_current_vjp_f64" in hlo
