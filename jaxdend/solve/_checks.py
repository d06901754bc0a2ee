"""Run-time checks of values known only when a program runs (NaN parameters, a non-finite
result, NaN clamp values or spike times): `error_if` and `branched_error_if`, with the
arguments and meaning of equinox's.

Equinox's checks raise from a host callback inside a `lax.cond`. On CPU a program that holds a
host callback cannot take JAX's C++ dispatch path, and the Python path costs ~0.1 ms per call
for an argument as large as a `Cell` (the 46-segment reduced cell's 10 ms batch-1 forward run:
~510 -> ~360 us per call, measured by hand on the 2-core dev machine, 2026-12-06), more than a
short run of a small cell takes to compute. So on CPU jaxdend checks with a native custom call
(`native/checks.cc`) that passes the values through and fails the program with the message.
JAX raises that failure, when the program's result is read, as ``jax.errors.JaxRuntimeError``
(a ``RuntimeError``) or, on some of its C++ dispatch paths (e.g. a jitted function that
closes over arrays), as ``ValueError``; its text is ``FAILED_PRECONDITION: `` and the message
(`is_run_time_error` tells both from errors raised while tracing). Elsewhere (GPU/TPU
programs, ``EQX_ON_ERROR`` set to other than ``raise``, or no native library) the checks are
equinox's, which raise ``equinox.EquinoxRuntimeError`` under ``eqx.filter_jit`` (and the same
JAX errors under ``jax.jit``). Like equinox's, a check whose values no output needs is removed
with them (e.g. the forward values of a gradient that does not use them).
"""

from __future__ import annotations

import functools
import os
import re

import equinox as eqx
import jax
import jax.numpy as jnp
from jax.custom_batching import custom_vmap

from . import _native


def error_if(x, pred, msg: str):
    """`x` (any PyTree) unchanged; at run time an error with `msg` if any element of the
    boolean `pred` is True (vmapped: in any batch element)."""
    return branched_error_if(x, pred, 0, (msg,))


def branched_error_if(x, pred, index, msgs):
    """`x` (any PyTree) unchanged; at run time an error with ``msgs[index]`` if `pred` is True
    (`pred`, `index`: booleans and integers of one shape; with several failures the message
    of the largest index)."""
    msgs = tuple(msgs)
    if not _native_checks():
        return eqx.branched_error_if(x, pred, index, msgs)
    dynamic, static = eqx.partition(x, eqx.is_array)
    leaves, treedef = jax.tree_util.tree_flatten(dynamic)
    if not leaves:  # nothing to pass through: no output would keep the check
        return x
    code = jnp.where(pred, jnp.asarray(index, jnp.int32) + 1, 0).astype(jnp.int32)

    def other(code, leaves):  # GPU / TPU: equinox's check
        return eqx.branched_error_if(leaves, code > 0, jnp.maximum(code - 1, 0), msgs)

    out = jax.lax.platform_dependent(code, leaves, cpu=functools.partial(_differentiable, msgs),
                                     default=other)
    return eqx.combine(jax.tree_util.tree_unflatten(treedef, out), static)


def is_run_time_error(err: BaseException) -> bool:
    """True if `err` is how JAX reports a program that failed as it ran: a failed check here,
    equinox's, or any XLA error (``JaxRuntimeError``, ``equinox.EquinoxRuntimeError``, or a
    ``ValueError`` whose text starts with an XLA status such as ``FAILED_PRECONDITION:``)."""
    if isinstance(err, (jax.errors.JaxRuntimeError, eqx.EquinoxRuntimeError)):
        return True
    return isinstance(err, ValueError) and re.match(r"[A-Z][A-Z_]+: ", str(err)) is not None


def _native_checks() -> bool:
    return os.environ.get("EQX_ON_ERROR", "raise") == "raise" and _native.available()


@functools.partial(jax.custom_jvp, nondiff_argnums=(0,))
def _differentiable(msgs, code, leaves):
    return _batched(msgs, code, leaves)


@_differentiable.defjvp
def _differentiable_jvp(msgs, primals, tangents):
    code, leaves = primals
    return _differentiable(msgs, code, leaves), tangents[1]  # the values pass through


def _batched(msgs, code, leaves):
    @custom_vmap
    def call(code, leaves):
        return _native.raise_if(code, leaves, msgs)

    @call.def_vmap
    def _(axis_size, in_batched, code, leaves):  # noqa: ARG001
        # the handler checks every element of `code` and passes any shape through, so a batch
        # is one call as it is (no copies of the values that are not batched); nested vmaps
        # come back here
        return call(code, leaves), list(in_batched[1])

    return call(code, leaves)
