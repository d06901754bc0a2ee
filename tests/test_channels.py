"""Channels: conformance (jit, vmap, grad, extreme and singular voltages) and NEURON references.

NEURON references are generated in the test: the built-in ``hh`` for `HH`, and the NMODL files
in ``jaxdend/nmodl`` (written from the same equations, compiled once per session by `_nrnmod`) for
the Pospischil and Mainen channels.
"""

from __future__ import annotations

import dataclasses

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _nrnmod import load_mod_library

from jaxdend.channels import (
    ALL_CHANNELS,
    HH,
    AbstractChannel,
    Ih,
    Leak,
    MainenKv,
    MainenNa,
    PospischilKd,
    PospischilM,
    PospischilNa,
    exp_euler_gates,
    vtrap,
)

# Voltages (mV) at which a rate function of the default channel hits its 0/0 point, exactly.
SINGULAR_V: dict[type[AbstractChannel], tuple[float, ...]] = {
    HH: (-40.0, -55.0),  # am: v + 40 = 0; an: v + 55 = 0
    Leak: (),
    PospischilNa: (-42.0, -15.0),  # v2 = v - vt = 13 (am), 40 (bm)
    PospischilKd: (-40.0,),  # v2 = 15 (an)
    PospischilM: (-35.0,),  # not singular; centre of p_inf and tau_p
    MainenNa: (-25.0, -40.0, -65.0),  # v + vshift = tha (m), thi1 (ah), thi2 (bh)
    MainenKv: (25.0,),  # v = tha
    Ih: (-154.9,),  # alpha: v + 154.9 = 0
}
CELSIUS = 23.0


def _float_fields(channel: AbstractChannel) -> list[str]:
    fields = dataclasses.fields(channel)
    return [f.name for f in fields if isinstance(getattr(channel, f.name), float)]


def _as_arrays(channel: AbstractChannel) -> AbstractChannel:
    """The same channel with every float parameter as a float64 JAX array (differentiable)."""
    return jax.tree_util.tree_map(jnp.asarray, channel)


def _test_voltages(cls: type[AbstractChannel]) -> jnp.ndarray:
    """-200..200 mV, the singular points exactly, and points just either side of them (mV)."""
    sing = np.asarray(SINGULAR_V[cls], dtype=float)
    offsets = np.array([-1e-4, -1e-5, -1e-7, -1e-9, 1e-9, 1e-7, 1e-5, 1e-4])
    near = (sing[:, None] + offsets[None, :]).ravel()
    return jnp.asarray(np.concatenate([np.linspace(-200.0, 200.0, 401), sing, near]))


def _evaluate(channel: AbstractChannel, v, celsius: float):
    """Gates, steady state, derivatives (at a fixed off-equilibrium state) and currents."""
    inf, tau = channel.gates(v, celsius)
    state0 = channel.init_state(v, celsius)
    half = {k: 0.5 * jnp.ones_like(jnp.asarray(v)) for k in channel.state_names}
    deriv = channel.derivatives(half, v, celsius)
    return {
        "inf": inf,
        "tau": tau,
        "init": state0,
        "deriv": deriv,
        "i_ss": channel.current(state0, v) * jnp.ones_like(jnp.asarray(v)),
        "i_half": channel.current(half, v) * jnp.ones_like(jnp.asarray(v)),
    }


def _loss(channel: AbstractChannel, v, celsius: float):
    """Scalar touching every output: summed steady-state current, gates, log time constants."""
    inf, tau = channel.gates(v, celsius)
    state0 = channel.init_state(v, celsius)
    half = {k: 0.5 * jnp.ones_like(jnp.asarray(v)) for k in channel.state_names}
    total = jnp.sum(channel.current(state0, v)) + jnp.sum(channel.current(half, v))
    for k in channel.state_names:
        total = total + jnp.sum(inf[k]) + jnp.sum(jnp.log(tau[k]))
    return total


@pytest.mark.parametrize("cls", ALL_CHANNELS, ids=lambda c: c.__name__)
def test_conformance(cls):
    channel = cls()
    assert set(SINGULAR_V) == set(ALL_CHANNELS), "list the singular voltages of new channels"
    names = _float_fields(channel)
    assert names, "every channel has float parameters"
    assert set(cls.conductance_names) <= set(names)

    # Initial state at rest.
    state = channel.init_state(-65.0, CELSIUS)
    assert tuple(state) == cls.state_names
    for value in state.values():
        assert 0.0 <= float(value) <= 1.0

    vs = _test_voltages(cls)
    eager = _evaluate(channel, vs, CELSIUS)
    jitted = eqx.filter_jit(_evaluate)(channel, vs, CELSIUS)
    mapped = jax.vmap(lambda v: _evaluate(channel, v, CELSIUS))(vs)
    for other in (jitted, mapped):
        for a, b in zip(jax.tree_util.tree_leaves(eager), jax.tree_util.tree_leaves(other)):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=0.0)
    assert set(eager["inf"]) == set(cls.state_names) == set(eager["tau"])

    for k in cls.state_names:
        inf, tau = np.asarray(eager["inf"][k]), np.asarray(eager["tau"][k])
        assert np.all(np.isfinite(inf)) and np.all((inf >= 0.0) & (inf <= 1.0)), k
        assert np.all(np.isfinite(tau)) and np.all(tau > 0.0), k
        np.testing.assert_allclose(eager["init"][k], inf, rtol=0, atol=0)
        assert np.all(np.isfinite(eager["deriv"][k]))
    assert np.all(np.isfinite(eager["i_ss"])) and np.all(np.isfinite(eager["i_half"]))

    # At steady state the derivatives vanish.
    zero = channel.derivatives(eager["init"], vs, CELSIUS)
    for k in cls.state_names:
        np.testing.assert_allclose(zero[k], 0.0, atol=1e-15)

    # Continuity across the removable singularities (both sides of the Taylor cut).
    sing = SINGULAR_V[cls]
    if sing:
        n = len(sing)
        base = 401
        for key in ("inf", "tau"):
            for k in cls.state_names:
                at = np.asarray(eager[key][k][base : base + n])
                near = np.asarray(eager[key][k][base + n :]).reshape(n, -1)
                np.testing.assert_allclose(near, at[:, None] * np.ones_like(near), rtol=1e-4)

    # Gradients w.r.t. every float parameter and v, at every test voltage, all finite.
    arr = _as_arrays(channel)
    grad_fn = jax.jit(jax.vmap(jax.grad(_loss, argnums=(0, 1)), in_axes=(None, 0, None)))
    g_params, g_v = grad_fn(arr, vs, CELSIUS)
    assert np.all(np.isfinite(g_v))
    for name in names:
        g = np.asarray(getattr(g_params, name))
        assert g.shape == vs.shape, name
        assert np.all(np.isfinite(g)), (name, vs[~np.isfinite(g)])

    # ... and they match central finite differences (also at the singular points).
    check_v = jnp.asarray([-70.0, -20.0, 30.0, *sing])
    g_p, g_vv = grad_fn(arr, check_v, CELSIUS)
    loss = jax.jit(jax.vmap(_loss, in_axes=(None, 0, None)))
    eps = 1e-5
    fd_v = (loss(arr, check_v + eps, CELSIUS) - loss(arr, check_v - eps, CELSIUS)) / (2 * eps)
    np.testing.assert_allclose(g_vv, fd_v, rtol=1e-5, atol=1e-8)
    for name in names:
        x = getattr(arr, name)
        step = eps * max(1.0, abs(float(x)))
        plus = eqx.tree_at(lambda c, name=name: getattr(c, name), arr, x + step)
        minus = eqx.tree_at(lambda c, name=name: getattr(c, name), arr, x - step)
        fd = (loss(plus, check_v, CELSIUS) - loss(minus, check_v, CELSIUS)) / (2 * step)
        np.testing.assert_allclose(getattr(g_p, name), fd, rtol=1e-5, atol=1e-8, err_msg=name)

    # Per-compartment parameter arrays of shape (n,) broadcast elementwise.
    n_comp = 5
    per_comp = jax.tree_util.tree_map(lambda x: jnp.full((n_comp,), x), channel)
    v_comp = jnp.linspace(-80.0, 20.0, n_comp)
    out = eqx.filter_jit(_evaluate)(per_comp, v_comp, CELSIUS)
    ref = _evaluate(channel, v_comp, CELSIUS)
    for a, b in zip(jax.tree_util.tree_leaves(out), jax.tree_util.tree_leaves(ref)):
        assert a.shape == (n_comp,)
        np.testing.assert_allclose(a, b, rtol=1e-13)

    # Exponential Euler keeps gates in [0, 1].
    stepped = exp_euler_gates(channel, eager["init"], vs[::-1], CELSIUS, 0.025)
    for k in cls.state_names:
        assert np.all((np.asarray(stepped[k]) >= 0.0) & (np.asarray(stepped[k]) <= 1.0))


def test_bad_configuration_raises():
    with pytest.raises(ValueError, match="tau_max"):
        PospischilM(tau_max=-1.0)
    with pytest.raises(ValueError, match="q10"):
        MainenNa(q10=0.0)


def test_vtrap_singular_point():
    # x/(exp(x/y) - 1) -> y at x = 0 with slope -1/2; finite for huge |x/y|.
    assert float(vtrap(0.0, 10.0)) == 10.0
    assert float(jax.grad(vtrap)(0.0, 10.0)) == -0.5
    assert float(jax.grad(vtrap, argnums=1)(0.0, 10.0)) == 1.0
    x = jnp.asarray([-1e4, -50.0, -1e-3, 1e-3, 50.0, 1e4])
    np.testing.assert_allclose(vtrap(x, 10.0), x / jnp.expm1(x / 10.0), rtol=1e-13)
    assert np.all(np.isfinite(jax.vmap(jax.grad(vtrap))(x, jnp.full_like(x, 10.0))))


@pytest.fixture(scope="module")
def nrn(tmp_path_factory):
    """NEURON's `h` with the jaxdend/nmodl mechanisms compiled and loaded."""
    return load_mod_library(tmp_path_factory)


# --------------------------------------------------------------------------------------------
# NEURON: rate functions
# --------------------------------------------------------------------------------------------


def test_hh_rates_match_neuron():
    neuron = pytest.importorskip("neuron")
    h = neuron.h
    sec = h.Section(name="hh_rates")
    sec.insert("hh")
    seg = sec(0.5)
    h.usetable_hh = 0
    h.setdata_hh(seg)
    channel = HH()
    voltages = [-100.0, -80.0, -65.0, -55.0, -54.999, -40.0, -40.001, -20.0, 0.0, 30.0, 60.0]
    try:
        for celsius in (6.3, 16.3, 37.0):
            h.celsius = celsius
            inf, tau = jax.jit(channel.gates)(jnp.asarray(voltages), celsius)
            for i, v in enumerate(voltages):
                h.rates_hh(v)
                for k in ("m", "h", "n"):
                    nrn_inf = getattr(seg, f"{k}inf_hh")
                    nrn_tau = getattr(seg, f"{k}tau_hh")
                    np.testing.assert_allclose(inf[k][i], nrn_inf, rtol=1e-10, err_msg=(k, v))
                    np.testing.assert_allclose(tau[k][i], nrn_tau, rtol=1e-10, err_msg=(k, v))
        for x in (-30.0, -1e-3, 0.0, 1e-7, 2.0, 25.0):
            np.testing.assert_allclose(vtrap(x, 10.0), h.vtrap_hh(x, 10.0), rtol=1e-10)
    finally:
        h.usetable_hh = 1
        h.celsius = 6.3


MOD_SUFFIX: dict[type[AbstractChannel], str] = {
    PospischilNa: "jd_pna",
    PospischilKd: "jd_pkd",
    PospischilM: "jd_pm",
    MainenNa: "jd_mna",
    MainenKv: "jd_mkv",
}


@pytest.mark.parametrize("cls", list(MOD_SUFFIX), ids=lambda c: c.__name__)
def test_mod_rates_match_jaxdend(nrn, cls):
    """The jaxdend/nmodl files and the JAX channels give the same steady states and taus."""
    h = nrn
    suffix = MOD_SUFFIX[cls]
    sec = h.Section(name=f"rates_{suffix}")
    sec.insert(suffix)
    seg = sec(0.5)
    getattr(h, f"setdata_{suffix}")(seg)
    channel = cls()
    shift = getattr(channel, "vshift", 0.0)  # na.mod's rates() takes v + vshift
    voltages = [-100.0, -80.0, -65.0, -30.0, 0.0, 40.0, *SINGULAR_V[cls]]
    try:
        for celsius in (23.0, 36.0, 37.0):
            h.celsius = celsius
            inf, tau = channel.gates(jnp.asarray(voltages), celsius)
            for i, v in enumerate(voltages):
                getattr(h, f"rates_{suffix}")(v + shift)
                for k in cls.state_names:
                    nrn_inf = getattr(seg, f"{k}inf_{suffix}")
                    nrn_tau = getattr(seg, f"{k}tau_{suffix}")
                    np.testing.assert_allclose(inf[k][i], nrn_inf, rtol=1e-12, err_msg=(k, v))
                    np.testing.assert_allclose(tau[k][i], nrn_tau, rtol=1e-12, err_msg=(k, v))
    finally:
        h.celsius = 6.3


# --------------------------------------------------------------------------------------------
# NEURON: single-compartment current clamp
# --------------------------------------------------------------------------------------------

DT = 0.025  # ms
T_STOP = 100.0  # ms
N_STEPS = 4000
STIM_DELAY = 10.0  # ms
STIM_DUR = 70.0  # ms
V_INIT = -65.0  # mV
DIAM = 20.0  # um (= L)


def _neuron_clamp(h, insert, celsius: float, amp: float) -> tuple[np.ndarray, float]:
    """Run a one-compartment IClamp in NEURON (fixed step, backward Euler).

    Args:
        h: NEURON's `h`.
        insert: callable taking the section, inserting and configuring mechanisms.
        celsius: temperature (degC).
        amp: step amplitude (nA), on from STIM_DELAY for STIM_DUR ms.

    Returns:
        Voltage (mV) at t = 0, dt, ..., T_STOP and the segment area (um^2).
    """
    sec = h.Section(name="clamp")
    sec.L = sec.diam = DIAM
    sec.nseg = 1
    sec.cm = 1.0
    insert(sec)
    stim = h.IClamp(sec(0.5))
    stim.delay, stim.dur, stim.amp = STIM_DELAY, STIM_DUR, amp
    h.CVode().active(0)
    h.secondorder = 0
    h.dt = DT
    h.celsius = celsius
    h.finitialize(V_INIT)
    trace = [sec(0.5).v]
    for _ in range(N_STEPS):
        h.fadvance()
        trace.append(sec(0.5).v)
    area = sec(0.5).area()
    del stim
    return np.asarray(trace), area


def _reference_clamp(channels, celsius: float, amp: float, area: float) -> np.ndarray:
    """NEURON's fixed-step scheme (secondorder = 0) written out for jaxdend channels.

    Per step: the voltage is advanced by backward Euler with the gates frozen,
    ``1e-3 cm/dt (v' - v) = -i(v) - G (v' - v) + I_stim`` with ``G = di/dv`` at fixed gates and
    ``I_stim`` taken at the step midpoint (as IClamp sees ``t + dt/2``); then every gate takes an
    exponential-Euler step at the new voltage (``cnexp``).

    Args:
        channels: jaxdend channels in the compartment.
        celsius: temperature (degC).
        amp: step amplitude (nA).
        area: membrane area (um^2).

    Returns:
        Voltage (mV) at t = 0, dt, ..., T_STOP.
    """
    i_density = 100.0 * amp / area  # nA / um^2 -> mA/cm^2
    cap = 1e-3 * 1.0 / DT  # (mA/cm^2)/mV for cm = 1 uF/cm^2

    def total_current(states, v):
        return sum(ch.current(s, v) for ch, s in zip(channels, states))

    def step(carry, n):
        v, states = carry
        t_mid = (n + 0.5) * DT
        stim = jnp.where((t_mid >= STIM_DELAY) & (t_mid < STIM_DELAY + STIM_DUR), i_density, 0.0)
        i_ion, g = jax.jvp(lambda x: total_current(states, x), (v,), (jnp.ones_like(v),))
        v_new = v + (stim - i_ion) / (cap + g)
        states = [exp_euler_gates(ch, s, v_new, celsius, DT) for ch, s in zip(channels, states)]
        return (v_new, states), v_new

    v0 = jnp.asarray(V_INIT)
    states0 = [ch.init_state(v0, celsius) for ch in channels]
    _, vs = jax.lax.scan(step, (v0, states0), jnp.arange(N_STEPS))
    return np.concatenate([[V_INIT], np.asarray(vs)])


def _set_hh(h, channel: HH):
    def insert(sec):
        sec.insert("hh")
        h.usetable_hh = 0
        seg = sec(0.5)
        seg.gnabar_hh, seg.gkbar_hh, seg.gl_hh, seg.el_hh = (
            channel.g_na,
            channel.g_k,
            channel.g_l,
            channel.e_l,
        )
        sec.ena, sec.ek = channel.e_na, channel.e_k

    return insert


def _set_mods(channels):
    """Insert the jaxdend/nmodl mechanisms matching `channels` (and ``pas`` for `Leak`)."""

    def insert(sec):
        seg = sec(0.5)
        for ch in channels:
            if isinstance(ch, Leak):
                sec.insert("pas")
                seg.g_pas, seg.e_pas = ch.g, ch.e
                continue
            suffix = MOD_SUFFIX[type(ch)]
            sec.insert(suffix)
            mech = getattr(seg, suffix)
            for name in _float_fields(ch):
                if name in ("e_na", "e_k", "g_celsius"):
                    continue
                setattr(mech, name, getattr(ch, name))
            if hasattr(ch, "e_na"):
                sec.ena = ch.e_na
            if hasattr(ch, "e_k"):
                sec.ek = ch.e_k

    return insert


def _clamp_cases():
    pospischil = [PospischilNa(), PospischilKd(), PospischilM(), Leak(g=1e-4, e=-70.0)]
    mainen = [
        MainenNa(g_na=0.03, g_celsius=37.0),
        MainenKv(g_k=0.01, g_celsius=37.0),
        Leak(g=3e-5, e=-70.0),
    ]
    return [
        pytest.param("hh", [HH()], 6.3, 0.1, id="hh-6.3C"),
        pytest.param("hh", [HH()], 18.5, 0.3, id="hh-18.5C"),
        pytest.param("mod", pospischil, 36.0, 0.05, id="pospischil-36C"),
        pytest.param("mod", pospischil, 31.0, 0.05, id="pospischil-31C"),
        pytest.param("mod", mainen, 37.0, 0.1, id="mainen-37C"),
    ]


@pytest.mark.parametrize("kind, channels, celsius, amp", _clamp_cases())
def test_current_clamp_matches_neuron(nrn, kind, channels, celsius, amp):
    h = nrn
    insert = _set_hh(h, channels[0]) if kind == "hh" else _set_mods(channels)
    try:
        v_nrn, area = _neuron_clamp(h, insert, celsius, amp)
    finally:
        h.usetable_hh = 1
        h.celsius = 6.3
    v_ref = _reference_clamp(channels, celsius, amp, area)
    spikes = int(np.sum((v_nrn[1:] > 0.0) & (v_nrn[:-1] <= 0.0)))
    assert spikes >= 2, f"stimulus should make the cell fire (got {spikes} spikes)"
    err = float(np.max(np.abs(v_ref - v_nrn)))
    print(f"max |V_jaxdend - V_NEURON| = {err:.3e} mV over {spikes} spikes")
    assert err < 1e-6
