"""Long-term plasticity rules: basal Hebbian (STDP) and apical cooperative.

Units: time constants ms, distances um, amplitudes per event (dimensionless weight change),
voltages mV.
"""

from __future__ import annotations

from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ._base import AbstractRule, Scalar, Signals, decay, relax


def _check_positive(rule, *names):
    for name in names:
        val = getattr(rule, name)
        try:
            arr = np.asarray(val, float)
        except Exception:
            continue
        if np.any(~np.isfinite(arr)) or np.any(arr <= 0):
            raise ValueError(f"{type(rule).__name__}: {name} must be > 0, got {val}.")


class BasalHebbian(AbstractRule):
    """Spike-timing-dependent Hebbian rule gated by the cell's own spikes (basal synapses).

    Pair form (Song, Miller & Abbott 2000) with all-to-all traces, plus optional triplet
    terms (Pfister & Gerstner 2006) when ``a3_plus`` or ``a3_minus`` are non-zero:
    at a somatic spike ``w += (a_plus + a3_plus * y2) * x1`` and at a presynaptic spike
    ``w -= (a_minus + a3_minus * x2) * y1``; x1, x2 are presynaptic traces (tau_plus, tau_x),
    y1, y2 postsynaptic traces (tau_minus, tau_y); traces jump by 1 after their own spike.
    Potentiation needs somatic spikes (or bAPs that cross threshold at the soma), so blocking
    them removes it — the basal finding of Wright, Hedrick & Komiyama (2025).

    Attributes:
        a_plus: pair potentiation per post spike, weight units (0.01: 1 % of w_max).
        a_minus: pair depression per pre spike (0.0105 = 1.05 a_plus).
        tau_plus, tau_minus: pair trace time constants, ms (20, 20).
        a3_plus, a3_minus: triplet amplitudes (0: pair rule).
        tau_x, tau_y: slow pre and post trace time constants, ms (101, 125).
        w_min, w_max: weight bounds. bound: "hard" or "soft" (class variable of the form).
    """

    a_plus: Scalar = 0.01
    a_minus: Scalar = 0.0105
    tau_plus: Scalar = 20.0
    tau_minus: Scalar = 20.0
    a3_plus: Scalar = 0.0
    a3_minus: Scalar = 0.0
    tau_x: Scalar = 101.0
    tau_y: Scalar = 125.0
    w_min: Scalar = 0.0
    w_max: Scalar = 2.0
    bound: ClassVar[str] = "hard"

    def __check_init__(self):
        _check_positive(self, "tau_plus", "tau_minus", "tau_x", "tau_y")

    def init_state(self, n, v0=-65.0):
        """Pre traces x1, x2 (per synapse) and post traces y1, y2 (per cell) at 0."""
        z = jnp.zeros((n,))
        return {"x1": z, "x2": z, "y1": jnp.zeros(()), "y2": jnp.zeros(())}

    def update(self, state, w, sig: Signals, dt):
        """Traces decay over dt, then pre and post spikes of this step act (pre first)."""
        x1 = decay(state["x1"], dt, self.tau_plus)
        x2 = decay(state["x2"], dt, self.tau_x)
        y1 = decay(state["y1"], dt, self.tau_minus)
        y2 = decay(state["y2"], dt, self.tau_y)
        dep = sig.pre * (self.a_minus + self.a3_minus * x2) * y1
        x1, x2 = x1 + sig.pre, x2 + sig.pre
        pot = sig.post * (self.a_plus + self.a3_plus * y2) * x1
        y1, y2 = y1 + sig.post, y2 + sig.post
        return {"x1": x1, "x2": x2, "y1": y1, "y2": y2}, self.apply_bounds(w, pot, dep)


class SoftBasalHebbian(BasalHebbian):
    """`BasalHebbian` with soft bounds (multiplicative: changes scale with the distance to
    the bound)."""

    bound: ClassVar[str] = "soft"


class ApicalCooperative(AbstractRule):
    """Cooperative rule of apical synapses: potentiation from co-activity with neighbours.

    Each synapse keeps a presynaptic trace x (jumps by 1 at its spikes, decays with
    `tau_coop`). Neighbour input of synapse i is ``c_i = sum_j K(d_ij) x_j`` over the other
    synapses j of the rule within `cutoff` um of path distance, with
    ``K(d) = exp(-d / length)``. At a presynaptic spike of i,
    ``w_i += a_coop * gate_i * c_i`` and ``w_i -= a_dep`` (activity without neighbours
    depresses slightly); at a neighbour's spike the same potentiation reaches i through its
    own trace (``a_coop * gate_i * x_i * sum_j K(d_ij) pre_j``). The optional NMDA gate
    ``gate_i = sigmoid((nmda_i - nmda_half) / nmda_slope)`` is 1 when ``nmda_gate`` is off.
    No somatic signal enters: somatic spikes do not matter (Wright, Hedrick & Komiyama 2025;
    Harvey & Svoboda 2007: neighbourhood ~10 um).

    Attributes:
        a_coop: potentiation per unit co-activity, weight units (0.02).
        a_dep: depression per presynaptic spike, weight units (0.001).
        tau_coop: co-activity window, ms (20).
        length: kernel length along the dendrite, um (10).
        cutoff: largest coupled distance, um (static; default 4 x the initial length).
        nmda_gate: use the local NMDA signal as a gate (static).
        nmda_half: NMDA signal at half gate, nS. nmda_slope: its width, nS.
        w_min, w_max: weight bounds; hard bounds.
    """

    a_coop: Scalar = 0.02
    a_dep: Scalar = 0.001
    tau_coop: Scalar = 20.0
    length: Scalar = 10.0
    cutoff: float = eqx.field(static=True, default=None)
    nmda_gate: bool = eqx.field(static=True, default=False)
    nmda_half: Scalar = 0.5
    nmda_slope: Scalar = 0.1
    w_min: Scalar = 0.0
    w_max: Scalar = 2.0
    bound: ClassVar[str] = "hard"

    def __post_init__(self):
        if self.cutoff is None:
            try:
                self.cutoff = 4.0 * float(self.length)
            except Exception:
                self.cutoff = 40.0

    def __check_init__(self):
        _check_positive(self, "length", "tau_coop", "nmda_slope")
        if not self.cutoff > 0:
            raise ValueError(f"ApicalCooperative: cutoff must be > 0 um, got {self.cutoff}.")

    def neighbour_cutoff(self) -> float:
        """Path-distance cutoff of the co-activity kernel, um."""
        return float(self.cutoff)

    def init_state(self, n, v0=-65.0):
        """Presynaptic traces at 0."""
        return {"x": jnp.zeros((n,))}

    def kernel(self, d):
        """Co-activity kernel at path distance `d` um (dimensionless, 1 at d = 0)."""
        return jnp.exp(-d / self.length)

    def update(self, state, w, sig: Signals, dt):
        """Trace decay, then potentiation from co-active neighbours and spike depression."""
        n = w.shape[0]
        x = decay(state["x"], dt, self.tau_coop)
        k = self.kernel(sig.pair_d)
        c = jax.ops.segment_sum(k * x[sig.pair_j], sig.pair_i, num_segments=n)
        c_now = jax.ops.segment_sum(k * sig.pre[sig.pair_j], sig.pair_i, num_segments=n)
        gate = 1.0
        if self.nmda_gate:
            gate = jax.nn.sigmoid((sig.nmda - self.nmda_half) / self.nmda_slope)
        pot = self.a_coop * gate * (sig.pre * c + x * c_now)
        dep = self.a_dep * sig.pre
        return {"x": x + sig.pre}, self.apply_bounds(w, pot, dep)


def _relu(x):
    return jnp.maximum(x, 0.0)


def _powers(x):
    """``[1, x, x^2]`` along a new last axis."""
    return jnp.stack([jnp.ones_like(x), x, x * x], axis=-1)


class Clopath(AbstractRule):
    """Voltage-based STDP of Clopath et al. (2010) on the local dendritic voltage.

    LTD at a presynaptic spike: ``w -= a_ltd [u_minus - theta_minus]+``; LTP continuously:
    ``dw/dt = a_ltp x_bar [v - theta_plus]+ [u_plus - theta_minus]+``, where u_minus and
    u_plus low-pass the local voltage v (tau_minus, tau_plus) and x_bar low-passes the
    presynaptic spike train (tau_x, jumps of 1/tau_x). A bAP or a dendritic spike that
    depolarises the synapse's compartment gates potentiation.

    Attributes:
        a_ltd: 14e-5 /mV. a_ltp: 8e-5 /mV^2 (per ms). theta_minus: -70.6 mV.
        theta_plus: -45.3 mV. tau_x: 15 ms. tau_minus: 10 ms. tau_plus: 7 ms.
        w_min, w_max: weight bounds (hard).
    """

    a_ltd: Scalar = 14e-5
    a_ltp: Scalar = 8e-5
    theta_minus: Scalar = -70.6
    theta_plus: Scalar = -45.3
    tau_x: Scalar = 15.0
    tau_minus: Scalar = 10.0
    tau_plus: Scalar = 7.0
    w_min: Scalar = 0.0
    w_max: Scalar = 2.0
    bound: ClassVar[str] = "hard"

    def __check_init__(self):
        _check_positive(self, "tau_x", "tau_minus", "tau_plus")

    def init_state(self, n, v0=-65.0):
        """Filtered voltages at `v0` (mV), presynaptic trace at 0."""
        v = jnp.full((n,), jnp.asarray(v0, float))
        return {"u_minus": v, "u_plus": v, "x_bar": jnp.zeros((n,))}

    def update(self, state, w, sig: Signals, dt):
        """LTD at presynaptic spikes, LTP integrated over the step, then filters advance."""
        dep = self.a_ltd * sig.pre * _relu(state["u_minus"] - self.theta_minus)
        pot = (self.a_ltp * dt * state["x_bar"] * _relu(sig.v - self.theta_plus)
               * _relu(state["u_plus"] - self.theta_minus))
        new = {
            "u_minus": relax(state["u_minus"], sig.v, dt, self.tau_minus),
            "u_plus": relax(state["u_plus"], sig.v, dt, self.tau_plus),
            "x_bar": decay(state["x_bar"], dt, self.tau_x) + sig.pre / self.tau_x,
        }
        return new, self.apply_bounds(w, pot, dep)


class GraupnerBrunel(AbstractRule):
    """Calcium-based synaptic efficacy of Graupner & Brunel (2012), deterministic part.

    Calcium c jumps by c_pre a delay after each presynaptic spike and by c_post at somatic
    spikes, decaying with tau_ca. The efficacy rho in [0, 1] follows
    ``tau drho/dt = -rho (1-rho)(rho_star - rho) + gamma_p (1-rho) H(c - theta_p)
    - gamma_d rho H(c - theta_d)``, with H a logistic step of width `smooth` (calcium units;
    smooth -> 0 is the Heaviside step; > 0 keeps thresholds differentiable). The weight is
    ``w = w_min + rho (w_max - w_min)``. Defaults: the "DP" set (tau_ca 20 ms, c_pre 1,
    c_post 2, theta_d 1, theta_p 1.3, gamma_d 200, gamma_p 321.808, tau 150 s, rho* 0.5,
    delay 13.7 ms). The noise term (sigma) is left out. One pending delayed calcium jump per
    synapse: a second spike within `delay` replaces the first.

    Attributes: as above; times in ms, calcium dimensionless, rates gamma dimensionless.
    """

    tau_ca: Scalar = 20.0
    c_pre: Scalar = 1.0
    c_post: Scalar = 2.0
    delay: Scalar = 13.7
    theta_d: Scalar = 1.0
    theta_p: Scalar = 1.3
    gamma_d: Scalar = 200.0
    gamma_p: Scalar = 321.808
    tau: Scalar = 150e3
    rho_star: Scalar = 0.5
    smooth: Scalar = 0.01
    w_min: Scalar = 0.0
    w_max: Scalar = 2.0
    bound: ClassVar[str] = "hard"

    def __check_init__(self):
        _check_positive(self, "tau_ca", "tau", "delay", "smooth")

    def init_state(self, n, v0=-65.0):
        """No calcium, no pending presynaptic calcium jump (timer < 0)."""
        return {"c": jnp.zeros((n,)), "timer": jnp.full((n,), -1.0)}

    def step_fn(self, x):
        """Smooth Heaviside step of `x` (calcium units)."""
        return jax.nn.sigmoid(x / self.smooth)

    def drift(self, rho, c):
        """d rho / dt (1/ms) at efficacy `rho` and calcium `c`."""
        return (-rho * (1 - rho) * (self.rho_star - rho)
                + self.gamma_p * (1 - rho) * self.step_fn(c - self.theta_p)
                - self.gamma_d * rho * self.step_fn(c - self.theta_d)) / self.tau

    def update(self, state, w, sig: Signals, dt):
        """Calcium jumps (delayed pre, immediate post), decay, then the efficacy drift."""
        timer = jnp.where(sig.pre > 0, self.delay, state["timer"] - dt)
        arrive = (state["timer"] > 0) & (timer <= 0) & (sig.pre == 0)
        # the delayed jump arrived -timer ms before the end of the step: decay it since
        # then (exact, and differentiable in `delay`)
        late = jnp.exp(jnp.minimum(timer, 0.0) / self.tau_ca)
        c = (decay(state["c"], dt, self.tau_ca) + self.c_pre * arrive * late
             + self.c_post * sig.post)
        span = self.w_max - self.w_min
        rho = (w - self.w_min) / span
        rho = jnp.clip(rho + dt * self.drift(rho, c), 0.0, 1.0)
        return {"c": c, "timer": timer}, self.w_min + rho * span


class BCM(AbstractRule):
    """Bienenstock–Cooper–Munro rule with a sliding threshold (metaplasticity).

    ``dw/dt = eta x y (y - theta)`` and ``tau_theta dtheta/dt = y^2 - theta``, with x and y
    the presynaptic and somatic firing rates (Hz) estimated by traces (time constants
    tau_x, tau_y; each spike adds 1000/tau spikes/s).

    Attributes:
        eta: learning rate, 1/(Hz^3 ms). tau_x, tau_y: rate-estimate windows, ms.
        tau_theta: threshold time constant, ms. theta0: initial threshold, Hz^2.
        w_min, w_max: weight bounds (hard).
    """

    eta: Scalar = 1e-9
    tau_x: Scalar = 100.0
    tau_y: Scalar = 100.0
    tau_theta: Scalar = 1000.0
    theta0: Scalar = 25.0
    w_min: Scalar = 0.0
    w_max: Scalar = 2.0
    bound: ClassVar[str] = "hard"

    def __check_init__(self):
        _check_positive(self, "tau_x", "tau_y", "tau_theta")

    def init_state(self, n, v0=-65.0):
        """Rates at 0 Hz, threshold at theta0 (Hz^2)."""
        return {"x": jnp.zeros((n,)), "y": jnp.zeros(()),
                "theta": jnp.asarray(self.theta0, float) + jnp.zeros(())}

    def update(self, state, w, sig: Signals, dt):
        """Rate traces, weight drift, then threshold relaxation towards y^2."""
        x = decay(state["x"], dt, self.tau_x) + sig.pre * 1000.0 / self.tau_x
        y = decay(state["y"], dt, self.tau_y) + sig.post * 1000.0 / self.tau_y
        dw = self.eta * dt * x * y * (y - state["theta"])
        theta = relax(state["theta"], y**2, dt, self.tau_theta)
        return {"x": x, "y": y, "theta": theta}, self.apply_bounds(w, _relu(dw), _relu(-dw))


class Volterra(AbstractRule):
    """Generic learnable rule (Confavreux et al. 2020; Mehta et al. 2024).

    ``dw/dt = sum_{a,b,c in 0..2} coef[a, b, c] x^a y^b w^c`` with x a presynaptic and y a
    somatic spike trace (jumps of 1, time constants tau_x, tau_y), plus instantaneous terms
    at spikes: ``w += pre * sum_bc on_pre[b, c] y^b w^c + post * sum_ac on_post[a, c] x^a w^c``
    (these express pair STDP exactly). Fit the coefficients by gradient descent, with an L1
    penalty to recover sparse known rules.

    Attributes:
        coef: (3, 3, 3) rate coefficients, 1/ms. on_pre: (3, 3). on_post: (3, 3).
        tau_x, tau_y: trace time constants, ms. w_min, w_max: bounds (hard).
    """

    coef: jax.Array = eqx.field(default_factory=lambda: jnp.zeros((3, 3, 3)))
    on_pre: jax.Array = eqx.field(default_factory=lambda: jnp.zeros((3, 3)))
    on_post: jax.Array = eqx.field(default_factory=lambda: jnp.zeros((3, 3)))
    tau_x: Scalar = 20.0
    tau_y: Scalar = 20.0
    w_min: Scalar = 0.0
    w_max: Scalar = 2.0
    bound: ClassVar[str] = "hard"

    def __check_init__(self):
        _check_positive(self, "tau_x", "tau_y")
        for name, shape in (("coef", (3, 3, 3)), ("on_pre", (3, 3)), ("on_post", (3, 3))):
            if jnp.shape(getattr(self, name)) != shape:
                raise ValueError(f"Volterra: {name} must have shape {shape}.")

    def init_state(self, n, v0=-65.0):
        """Traces at 0."""
        return {"x": jnp.zeros((n,)), "y": jnp.zeros(())}

    def update(self, state, w, sig: Signals, dt):
        """Continuous drift plus the spike-triggered terms; traces jump after their spikes."""
        x = decay(state["x"], dt, self.tau_x)
        y = decay(state["y"], dt, self.tau_y)
        xa = _powers(x)  # (n, 3): 1, x, x^2 (no 0 * inf in the gradient at x = 0)
        yb = _powers(y)  # (3,)
        wc = _powers(w)  # (n, 3)
        drift = jnp.einsum("abc,na,b,nc->n", self.coef, xa, yb, wc)
        at_pre = sig.pre * jnp.einsum("bc,b,nc->n", self.on_pre, yb, wc)
        at_post = sig.post * jnp.einsum("ac,na,nc->n", self.on_post, _powers(x + sig.pre), wc)
        dw = dt * drift + at_pre + at_post
        new = {"x": x + sig.pre, "y": y + sig.post}
        return new, self.apply_bounds(w, _relu(dw), _relu(-dw))


class HeterosynapticNormalization(AbstractRule):
    """Wraps a rule and keeps the summed weight of its synapses at its initial value.

    After the inner rule's update, weights are scaled multiplicatively towards the initial
    total with time constant `tau_norm` ms (0: exactly at every step).

    Attributes:
        rule: the inner rule. tau_norm: normalisation time constant, ms (>= 0).
    """

    rule: AbstractRule
    tau_norm: Scalar
    w_min: Scalar
    w_max: Scalar
    bound: ClassVar[str] = "hard"

    def __init__(self, rule: AbstractRule, tau_norm=0.0):
        """Wrap `rule`; weights stay within its [w_min, w_max] (copied here)."""
        if not isinstance(rule, AbstractRule):
            raise TypeError(f"HeterosynapticNormalization wraps a rule, got {rule!r}.")
        self.rule, self.tau_norm = rule, tau_norm
        self.w_min, self.w_max = rule.w_min, rule.w_max

    def neighbour_cutoff(self) -> float:
        """The inner rule's neighbour cutoff, um."""
        return self.rule.neighbour_cutoff()

    def init_state(self, n, v0=-65.0):
        """Inner state; the target total is taken at the first step."""
        return {"inner": self.rule.init_state(n, v0), "total": jnp.full((), -1.0)}

    def update(self, state, w, sig: Signals, dt):
        """Inner update, then multiplicative scaling towards the initial summed weight."""
        total = jnp.where(state["total"] < 0, jnp.sum(w), state["total"])
        inner, w1 = self.rule.update(state["inner"], w, sig, dt)
        s = jnp.sum(w1)
        factor = total / jnp.where(s > 0, s, 1.0)
        tau = jnp.asarray(self.tau_norm, float)
        frac = jnp.where(tau > 0, 1.0 - jnp.exp(-dt / jnp.where(tau > 0, tau, 1.0)), 1.0)
        w2 = w1 * (1.0 + frac * (factor - 1.0))
        return {"inner": inner, "total": total}, jnp.clip(w2, self.w_min, self.w_max)
