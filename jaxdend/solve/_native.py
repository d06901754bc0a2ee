"""The tree solve, the HH gate step, whole forward runs of HH cells and the run-time checks as
native CPU code, XLA FFI custom calls built on first use (one library from the sources in
`native/`).

On CPU, XLA runs the chain-reduction solve of `_tree.py` as about 60 small kernels per solve,
and their launch cost, not the arithmetic, sets its speed (~10 ns per node on the 2-core dev
machine, against ~4.5 ns for this code; measured by hand with a loop of 4,000 solves of the
1,080-node `binary_tree(depth=7)`, not yet by a benchmark script). `native/tree_solve.cc` is the
same elimination written out in C++ (nodes grouped by height so that independent divisions
overlap), compiled once per machine with the system's C++ compiler into a cache folder and
called through `jax.ffi`. A batch of small trees (vmap; up to ~170 nodes in float64, while
eight node-major copies fit a level-1 cache) is solved eight at a time side by side, one
vector instruction per node for all eight (46-segment reduced cell, batch 100: 32 -> 15 us
per step, by hand); larger trees are solved one after another. GPU and TPU programs keep the
XLA solve (`jax.lax.platform_dependent`).

`native/hh_gates.cc` is `jaxdend.channels.HH`'s exponential-Euler gate step (hh.mod's rates) as
one vectorised loop with a polynomial exponential, where XLA runs the same formulas as about ten
loops per step (1,080-node HH tree, 4,000 steps, same-process A/B by hand: forward 86 -> 56 ms),
and the reverse steps of that gate update and of HH's current and slope: one loop each, the
transposes of the derivatives that `jaxdend._linear.linear_map` gives JAX, which would
otherwise transpose their XLA formulas into a few dozen small kernels per step (session 10,
1,016-compartment HH tree, value-and-gradient: 345 -> 272 ms for the gate step's, a further
-3 to -7 % for the current's; see benchmarks/README.md). An earlier try that returned the gate
step's twelve partial derivatives from native code for JAX to transpose was 2x slower.

`native/hh_run.cc` runs every step of a simulation of a cell of HH and leak channels in one
call, and its reverse (the gradient) in another (`_native_run.py` says when they apply),
since each step's native calls and XLA loops cost more to launch than to run on small cells.

`native/checks.cc` is the run-time check of `_checks.py` (bad parameters, a non-finite result):
it fails the program with the message instead of a host callback, which would keep JAX from its
C++ dispatch path.

Where it does not apply, everything still works with the XLA code:
- ``JAXDEND_NATIVE=0`` in the environment turns it off;
- without a C++ compiler (or if the build fails) jaxdend warns once and uses the XLA solve;
- compiler: ``$CXX``, else ``c++``/``g++``/``clang++`` on the PATH; cache folder:
  ``$JAXDEND_CACHE_DIR``, else ``$XDG_CACHE_HOME/jaxdend`` or ``~/.cache/jaxdend``.

Units: whatever the caller's are (uS, uS and nA give mV).
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
import threading
import warnings
from pathlib import Path

import jax
import numpy as np

_SOURCES = tuple(Path(__file__).with_name("native") / f
                 for f in ("tree_solve.cc", "hh_gates.cc", "hh_run.cc", "checks.cc"))
_HEADERS = tuple(Path(__file__).with_name("native") / f  # included by the sources
                 for f in ("common.h", "hh.h", "tree.h"))
# no trapping math / errno: lets the compiler vectorise branch-free selects (results unchanged)
_FLAGS = ("-O3", "-shared", "-fPIC", "-std=c++17", "-fno-trapping-math", "-fno-math-errno", "-w")
_TARGETS = {  # dtype -> (FFI target name, handler symbol)
    np.dtype(np.float64): ("jaxdend_tree_solve_f64", "JaxdendTreeSolveF64"),
    np.dtype(np.float32): ("jaxdend_tree_solve_f32", "JaxdendTreeSolveF32"),
}
_HH_TARGETS = {  # dtype -> (FFI target name, handler symbol): the HH gate step (hh_gates.cc)
    np.dtype(np.float64): ("jaxdend_hh_gates_f64", "JaxdendHHGatesF64"),
    np.dtype(np.float32): ("jaxdend_hh_gates_f32", "JaxdendHHGatesF32"),
}
_HH_VJP_TARGETS = {  # dtype -> (FFI target name, handler symbol): its reverse step
    np.dtype(np.float64): ("jaxdend_hh_gates_vjp_f64", "JaxdendHHGatesVjpF64"),
    np.dtype(np.float32): ("jaxdend_hh_gates_vjp_f32", "JaxdendHHGatesVjpF32"),
}
_HH_CURRENT_VJP_TARGETS = {  # dtype -> (FFI target name, handler symbol): HH current's VJP
    np.dtype(np.float64): ("jaxdend_hh_current_vjp_f64", "JaxdendHHCurrentVjpF64"),
    np.dtype(np.float32): ("jaxdend_hh_current_vjp_f32", "JaxdendHHCurrentVjpF32"),
}
_HH_STEP_CURRENT_VJP_TARGETS = {  # dtype -> (FFI target name, handler symbol): see below
    np.dtype(np.float64): ("jaxdend_hh_step_current_vjp_f64", "JaxdendHHStepCurrentVjpF64"),
    np.dtype(np.float32): ("jaxdend_hh_step_current_vjp_f32", "JaxdendHHStepCurrentVjpF32"),
}
_HH_RUN_TARGETS = {  # dtype -> (FFI target name, handler symbol): whole runs (hh_run.cc)
    np.dtype(np.float64): ("jaxdend_hh_run_f64", "JaxdendHHRunF64"),
    np.dtype(np.float32): ("jaxdend_hh_run_f32", "JaxdendHHRunF32"),
}
_HH_RUN_VJP_TARGETS = {  # dtype -> (FFI target name, handler symbol): their reverse
    np.dtype(np.float64): ("jaxdend_hh_run_vjp_f64", "JaxdendHHRunVjpF64"),
    np.dtype(np.float32): ("jaxdend_hh_run_vjp_f32", "JaxdendHHRunVjpF32"),
}
#: run-time checks (checks.cc; any dtype): FFI target name, handler symbol
_CHECK_TARGET = ("jaxdend_raise_if", "JaxdendRaiseIf")
_lock = threading.Lock()
_status: dict[str, object] = {}


def cache_dir() -> Path:
    """Folder of the compiled library (see the module docstring)."""
    root = os.environ.get("JAXDEND_CACHE_DIR")
    if not root:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        root = os.path.join(base, "jaxdend")
    return Path(root)


def _compiler() -> str:
    cxx = os.environ.get("CXX") or next(
        (c for c in ("c++", "g++", "clang++") if shutil.which(c)), None)
    if cxx is None:
        raise RuntimeError("no C++ compiler found (install g++ or clang++, or set CXX)")
    return cxx


def _build() -> Path:
    """Compile the handlers (once per source, compiler, jaxlib and machine) and return the
    library's path."""
    if getattr(jax, "ffi", None) is None:
        raise RuntimeError(f"jax {jax.__version__} has no jax.ffi (needs jax >= 0.4.38)")
    cxx = _compiler()
    include = jax.ffi.include_dir()
    key = hashlib.sha256(b"\0".join([
        *(f.read_bytes() for f in (*_SOURCES, *_HEADERS)), cxx.encode(), " ".join(_FLAGS).encode(),
        include.encode(),
        jax.__version__.encode(), platform.machine().encode()])).hexdigest()[:16]
    out = cache_dir() / f"native-{key}.so"
    if out.exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".so", dir=out.parent)
    os.close(fd)
    try:
        cmd = [cxx, *_FLAGS, "-I", include, *map(str, _SOURCES), "-o", tmp]
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        if res.returncode != 0:
            raise RuntimeError(f"`{' '.join(cmd)}` failed: {res.stderr.strip()[-1500:]}")
        os.replace(tmp, out)  # atomic: concurrent builders (test workers) agree
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return out


def available() -> bool:
    """True if the native CPU tree solve is built and registered with XLA (built on the
    first call in a process; False with ``JAXDEND_NATIVE=0`` or when the build failed, after
    one warning that names the reason)."""
    with _lock:
        if "ok" not in _status:
            _status["ok"] = False
            if os.environ.get("JAXDEND_NATIVE", "1").strip() == "0":
                return False
            try:
                lib = ctypes.cdll.LoadLibrary(str(_build()))
                for name, symbol in [*_TARGETS.values(), *_HH_TARGETS.values(),
                                     *_HH_VJP_TARGETS.values(),
                                     *_HH_CURRENT_VJP_TARGETS.values(),
                                     *_HH_STEP_CURRENT_VJP_TARGETS.values(),
                                     *_HH_RUN_TARGETS.values(),
                                     *_HH_RUN_VJP_TARGETS.values(), _CHECK_TARGET]:
                    jax.ffi.register_ffi_target(name, jax.ffi.pycapsule(getattr(lib, symbol)),
                                                platform="cpu")
                _status["lib"] = lib  # keep the library loaded
                _status["ok"] = True
            except Exception as err:  # noqa: BLE001 - any failure means: use the XLA solve
                _status["error"] = f"{type(err).__name__}: {err}"
                warnings.warn(
                    "jaxdend could not build its native CPU tree solver, so simulations use "
                    "the XLA solve (correct; its tree solve is about 2x slower on CPU). "
                    f"Reason: {err}. "
                    "Install a C++ compiler (g++ or clang++, or set CXX), or set "
                    "JAXDEND_NATIVE=0 to silence this.", RuntimeWarning, stacklevel=2)
        return bool(_status["ok"])


def supports(d, g, b) -> bool:
    """True if `available` and the arrays have one dtype the native code handles."""
    dt = np.dtype(d.dtype)
    return (dt in _TARGETS and np.dtype(g.dtype) == dt and np.dtype(b.dtype) == dt
            and available())


def tree_solve(parent: np.ndarray, up: np.ndarray, down: np.ndarray, d, g, b):
    """``M v = b`` for the tree matrix of `parent` (see `jaxdend.solve.tree_solve`), by the
    native CPU handler; `up` / `down` are the elimination and substitution orders (non-root
    nodes, children before parents / parents before children). Batched under vmap."""
    name, _ = _TARGETS[np.dtype(d.dtype)]
    call = jax.ffi.ffi_call(name, jax.ShapeDtypeStruct(b.shape, b.dtype),
                            vmap_method="broadcast_all")
    return call(d, g, b, parent=parent, up=up, down=down)


def hh_gates_supported(v) -> bool:
    """True if `available` and `v` has a dtype the native HH gate step handles."""
    return np.dtype(v.dtype) in _HH_TARGETS and available()


def hh_gates(m, h, n, v, k):
    """One exponential-Euler step of hh.mod's m, h, n at voltage `v` (mV) with
    ``k = dt q10`` (ms; one value per batch element), by the native CPU handler
    (`native/hh_gates.cc`, the formulas of `jaxdend.channels.HH.exp_euler`). Batched under
    vmap."""
    name, _ = _HH_TARGETS[np.dtype(v.dtype)]
    out = jax.ShapeDtypeStruct(v.shape, v.dtype)
    call = jax.ffi.ffi_call(name, (out, out, out), vmap_method="broadcast_all")
    return tuple(call(m, h, n, v, k))


def hh_gates_vjp(m, h, n, v, k, cm, ch, cn):
    """The reverse step of `hh_gates`: given the cotangents `cm`, `ch`, `cn` of its outputs,
    the cotangents of m, h, n, v (the step's rates recomputed from v) and of k (summed over
    each batch element's nodes, shape of `k`), by the native CPU handler. Batched under
    vmap."""
    name, _ = _HH_VJP_TARGETS[np.dtype(v.dtype)]
    out = jax.ShapeDtypeStruct(v.shape, v.dtype)
    call = jax.ffi.ffi_call(name, (out, out, out, out, jax.ShapeDtypeStruct(k.shape, k.dtype)),
                            vmap_method="broadcast_all")
    return tuple(call(m, h, n, v, k, cm, ch, cn))


def hh_current_vjp(*args):
    """The reverse step of HH's current and slope (`jaxdend.channels._hh._current_xla`):
    from m, h, n, v, g_na, g_k, g_l, e_na, e_k, e_l and the cotangents of its outputs (the
    current, the slope and the passed-through m, h, n: 15 arrays of one shape and dtype), the
    cotangents of the first ten, by the native CPU handler. Batched under vmap."""
    name, _ = _HH_CURRENT_VJP_TARGETS[np.dtype(args[0].dtype)]
    out = jax.ShapeDtypeStruct(args[0].shape, args[0].dtype)
    call = jax.ffi.ffi_call(name, (out,) * 10, vmap_method="broadcast_all")
    return tuple(call(*args))


def hh_step_current_vjp(*args):
    """The reverse step of HH's gate step followed by its current and slope at the new gates
    (`jaxdend.channels._hh._hh_step_current`): from m, h, n, v, k (one value per batch
    element), g_na, g_k, g_l, e_na, e_k, e_l and the cotangents of m', h', n', i, g (16
    arrays; all but k of one shape), the cotangents of the first eleven (k's summed over each
    batch element's nodes), by the native CPU handler. Batched under vmap."""
    v, k = args[3], args[4]
    name, _ = _HH_STEP_CURRENT_VJP_TARGETS[np.dtype(v.dtype)]
    out = jax.ShapeDtypeStruct(v.shape, v.dtype)
    call = jax.ffi.ffi_call(name, (out,) * 10 + (jax.ShapeDtypeStruct(k.shape, k.dtype),),
                            vmap_method="broadcast_all")
    res = call(*args)
    return (*res[:4], res[10], *res[4:10])


def hh_run(state, params, k, amps, *, unit=0, **attrs):
    """A whole forward run of a cell of HH and leak channels (`native/hh_run.cc`, whose header
    lists the arguments): `state` (v, m, h, n), `params` the ten per-node arrays, `k` = dt q10
    (ms), `amps` (steps, clamps) clamp currents (nA); `attrs`: parent, up, down, clamp_node,
    probe, steps, every, crank, delta. Returns the recordings (steps / every, probes) in mV,
    the final (v, m, h, n) and, with `unit` > 0, the states before every `unit`-th step
    (units, 4, n). Batched under vmap."""
    v = state[0]
    name, _ = _HH_RUN_TARGETS[np.dtype(v.dtype)]
    steps, every = attrs["steps"], attrs["every"]
    node = jax.ShapeDtypeStruct(v.shape, v.dtype)
    outs = [jax.ShapeDtypeStruct((steps // every, len(attrs["probe"])), v.dtype), *[node] * 4]
    if unit:
        outs.append(jax.ShapeDtypeStruct((-(-steps // unit), 4, v.shape[-1]), v.dtype))
    call = jax.ffi.ffi_call(name, tuple(outs), vmap_method="broadcast_all")
    out = call(*state, *params, k, amps, unit=np.int64(unit), **_run_attrs(attrs))
    return (out[0], tuple(out[1:5])) + ((out[5],) if unit else ())


def hh_run_vjp(params, k, amps, starts, rec_ct, final_ct, *, unit, **attrs):
    """The reverse step of `hh_run` (with the same `attrs` and `unit`, `starts` its states at
    the units' starts): from the cotangents of the recordings and of the final (v, m, h, n),
    those of the initial state (4 arrays), the ten node parameters, k and the clamp currents.
    Batched under vmap."""
    v = final_ct[0]
    name, _ = _HH_RUN_VJP_TARGETS[np.dtype(v.dtype)]
    node = jax.ShapeDtypeStruct(v.shape, v.dtype)
    outs = ([node] * 14 + [jax.ShapeDtypeStruct(k.shape, k.dtype),
                           jax.ShapeDtypeStruct(amps.shape, amps.dtype)])
    call = jax.ffi.ffi_call(name, tuple(outs), vmap_method="broadcast_all")
    out = call(*params, k, amps, starts, rec_ct, *final_ct, unit=np.int64(unit),
               **_run_attrs(attrs))
    return tuple(out[:4]), tuple(out[4:14]), out[14], out[15]


def _run_attrs(attrs):
    return dict(parent=attrs["parent"], up=attrs["up"], down=attrs["down"],
                clamp_node=np.asarray(attrs["clamp_node"], np.int64),
                probe=np.asarray(attrs["probe"], np.int64), steps=np.int64(attrs["steps"]),
                every=np.int64(attrs["every"]), crank=bool(attrs["crank"]),
                delta=bool(attrs["delta"]))


def raise_if(code, leaves, messages: tuple[str, ...]):
    """`leaves` (arrays of any dtype and shape) unchanged, or an XLA run-time error with
    ``messages[c - 1]`` if the largest element of the int32 array `code` is c > 0, by the native
    CPU handler (`native/checks.cc`; no host callback). Not differentiable or batched itself:
    `jaxdend.solve._checks` adds both."""
    outs = tuple(jax.ShapeDtypeStruct(x.shape, x.dtype) for x in leaves)
    call = jax.ffi.ffi_call(_CHECK_TARGET[0], outs,
                            input_output_aliases={i + 1: i for i in range(len(leaves))})
    return list(call(code, *leaves, messages="\x1e".join(messages)))
