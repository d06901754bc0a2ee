"""Helpers shared by the tests (tests/ is on sys.path under pytest)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import jax
import numpy as np

import jaxdend as jd

#: What a failed run-time check raises (`jaxdend.solve._checks`): JAX raises the error of a
#: running program as jax.errors.JaxRuntimeError (a RuntimeError; equinox.EquinoxRuntimeError
#: under eqx.filter_jit where the checks are equinox's) or, on some of its C++ dispatch paths,
#: as ValueError; the tests match the message.
RUNTIME_ERROR = (RuntimeError, ValueError)


def tree_allclose(a, b, *, rtol: float, atol: float) -> bool:
    """True if two PyTrees have the same structure and all leaves are close."""
    la, ta = jax.tree_util.tree_flatten(a)
    lb, tb = jax.tree_util.tree_flatten(b)
    if ta != tb:
        return False
    return all(np.allclose(np.asarray(x), np.asarray(y), rtol=rtol, atol=atol)
               for x, y in zip(la, lb))


def to_float32(tree):
    """Cast every floating-point array leaf of a PyTree (e.g. a Cell) to float32."""
    import jax.numpy as jnp

    return jax.tree_util.tree_map(
        lambda x: x.astype(jnp.float32)
        if isinstance(x, jax.Array) and jnp.issubdtype(x.dtype, jnp.floating) else x, tree)


def scan_path_record(cell: jd.Cell) -> dict:
    """Records of the soma's voltage ("v") and HH m gate ("m"): a recorded gate keeps
    `simulate` on its scan path, where HH cells recording only voltages would run as one
    native call (`jaxdend.solve._native_run`)."""
    return {"v": cell.probe("v", "soma"), "m": cell.probe("HH.m", "soma")}


def hh_cell(morph, **discretize_kwargs) -> jd.Cell:
    """A cell with NEURON's hh everywhere (Ra 100 Ohm cm, cm 1 uF/cm^2, 6.3 degC)."""
    comps = jd.discretize(morph, **discretize_kwargs)
    return jd.Cell(comps, ra=100.0, cm=1.0).insert(jd.channels.HH())


def load_benchmark(name: str):
    """Import the benchmark script ``benchmarks/<name>.py`` as a module (tests reuse its
    set-ups at small sizes). Registered in sys.modules: dataclasses look their module up."""
    path = Path(__file__).parents[1] / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"benchmark_{name}", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


def worker_env() -> dict:
    """Environment of a JAX worker subprocess: this one's, on the CPU backend, without the
    XLA_FLAGS of this process (the worker sets its own device count)."""
    import os

    env = dict(os.environ)
    env.pop("XLA_FLAGS", None)
    env["JAX_PLATFORMS"] = "cpu"
    return env
