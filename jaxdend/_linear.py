"""Hand-written reverse-mode steps: linear maps with a transpose of their own, and functions
computed by native CPU code where it is available (used by the HH channel and the tree solve).

JAX differentiates a channel's update or current in reverse mode by transposing the XLA
formulas of its derivative, which on CPU run as a few dozen small kernels per time step (the
launch of each costs more than its arithmetic). `linear_map` makes that derivative a JAX
primitive whose transpose is a function we supply (e.g. one native loop); `native_cpu` wraps
such a function so that CPU programs call native code (`jaxdend.solve._native`) and other
platforms, or machines without a compiler, the XLA formulas, with the derivatives of the XLA
formulas either way (higher-order derivatives work).

Units: those of the wrapped functions.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
from jax.core import ShapedArray
from jax.extend.core import Primitive
from jax.interpreters import ad, batching, mlir


def native_cpu(xla: Callable, native: Callable, supported: Callable) -> Callable:
    """`xla(*args)` (a tuple of arrays), computed by `native(*args)` in CPU programs when
    ``supported(*args)``; forward- and reverse-mode derivatives are those of `xla`."""

    @jax.custom_jvp
    def fn(*args):
        if not supported(*args):
            return tuple(xla(*args))
        return tuple(jax.lax.platform_dependent(*args, cpu=native, default=xla))

    fn.defjvp(lambda primals, tangents: jax.jvp(lambda *a: tuple(xla(*a)), primals, tangents))
    return fn


def linear_map(name: str, forward: Callable, transpose: Callable, n_res: int | None,
               shapes: Callable | None = None) -> Callable:
    """A primitive ``f(*res, *lin, **params) = forward(*res, *lin, **params)`` (a tuple of
    arrays), linear in the arguments after the first `n_res`, whose reverse-mode transpose is
    ``transpose(*res, *cts, **params)`` (the cotangents of the linear arguments) instead of
    the transpose of `forward`'s formulas. `params` are static (hashable) settings; with
    ``n_res=None`` the number of non-linear arguments is the bind parameter ``n_res`` (also
    passed on to `forward` and `transpose`). Evaluated, lowered and forward-differentiated
    through `forward`; batched by giving every argument the batch axis in front (so `forward`
    and `transpose` must accept leading batch axes). `shapes(*args, **params)`: the outputs'
    shapes and dtypes (`jax.ShapeDtypeStruct`s), when cheaper than tracing `forward` for
    them. Returns its bind function."""
    prim = Primitive(name)
    prim.multiple_results = True
    fixed_res = n_res

    def out_avals(*args, **params):
        specs = [jax.ShapeDtypeStruct(a.shape, a.dtype) for a in args]
        outs = (shapes(*specs, **params) if shapes is not None
                else jax.eval_shape(lambda *a: forward(*a, **params), *specs))
        return [ShapedArray(o.shape, o.dtype) for o in outs]

    def batch_rule(args, dims, **params):
        size = next(a.shape[d] for a, d in zip(args, dims) if d is not None)
        args = [batching.bdim_at_front(a, d, size) for a, d in zip(args, dims)]
        out = prim.bind(*args, **params)
        return out, [0] * len(out)

    def jvp_rule(primals, tangents, **params):
        tangents = tuple(ad.instantiate_zeros(t) for t in tangents)
        return jax.jvp(lambda *a: list(forward(*a, **params)), tuple(primals), tangents)

    def transpose_rule(cts, *args, **params):
        n_res = params["n_res"] if fixed_res is None else fixed_res
        res, lin = args[:n_res], args[n_res:]
        if any(ad.is_undefined_primal(x) for x in res):
            raise NotImplementedError(f"{name} is linear in its last {len(lin)} arguments only")
        avals = out_avals(*(x.aval if ad.is_undefined_primal(x) else x for x in args), **params)
        cts = [jnp.zeros(a.shape, a.dtype) if type(c) is ad.Zero else c
               for c, a in zip(cts, avals)]
        out = transpose(*res, *cts, **params)
        return [None] * n_res + [c if ad.is_undefined_primal(x) else None
                                 for c, x in zip(out, lin)]

    prim.def_impl(lambda *args, **params: list(forward(*args, **params)))
    prim.def_abstract_eval(out_avals)
    mlir.register_lowering(prim, mlir.lower_fun(
        lambda *a, **params: list(forward(*a, **params)), multiple_results=True))
    batching.primitive_batchers[prim] = batch_rule
    ad.primitive_jvps[prim] = jvp_rule
    ad.primitive_transposes[prim] = transpose_rule
    return prim.bind
