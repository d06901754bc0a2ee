// A whole forward run of a cell of HH and leak channels in one native call: an XLA FFI
// handler, built on first use by jaxdend/solve/_native.py with the other sources.
//
// The scan path of `jaxdend.simulate` takes every step as a few native calls (gate step, tree
// solve) and XLA loops; on a small cell each of them costs more to launch than to run (46
// segments: ~1.5 us per step, of which the arithmetic is a third). This handler runs all the
// steps of `jaxdend.solve._native_run` in one call, per step and node the same formulas as
// the scan path:
//   1. HH's current and slope at the present state (`_current_xla`), plus the leaks,
//      times the node's membrane area: I (nA), G (uS);
//   2. the implicit voltage step of `_implicit_voltage`: diagonal d = C/h + G + axial part,
//      and right-hand side (C/h + G) v - I + I_ext (float64), or for float32 the change of v,
//      I_ext - I - axial current (NEURON's form); the tree solve of tree.h;
//   3. Crank-Nicolson only: v' = 2 v_half - v;
//   4. the gates' exponential-Euler step at v' (hh.h);
//   5. every `every` steps, the voltage at the probed nodes.
// Results agree with the scan path to round-off (the order of a few additions differs).
//
// Inputs (one cell; under vmap every buffer gains the same leading batch dimensions and the
// batch elements run one after another): v, m, h, n (n,), and per node g_na, g_k, e_na, e_k
// (HH's, zero where it is not inserted), g_l and e_l (HH's leak and every Leak channel as one:
// sum of g and the g-weighted mean reversal), membrane area (cm^2 times the unit factor), C/h
// (uS), axial conductance to the parent and the axial part of the diagonal (uS); k = dt q10
// (ms, one value); the clamp currents (n_steps, n_clamps) at the steps' midpoints (nA).
// Attributes: the tree's parent, up and down orders (tree_solve.cc), the clamps' nodes, the
// probed nodes, the number of steps, `every`, `crank` (Crank-Nicolson) and `delta` (solve for
// the change of v).
// Results: the recordings (n_steps / every, n_probes) and the final v, m, h, n.

#include <cstdint>
#include <string>
#include <vector>

#include "common.h"
#include "hh.h"
#include "tree.h"
#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace {

using namespace jaxdend;  // NOLINT: hh.h's formulas and tree.h's solve

// Per-node inputs in the order of the handler's arguments 4..13.
enum Param { kGNa, kGK, kENa, kEK, kGL, kEL, kArea, kCdt, kGAx, kDiag, kParams };

// Bytes of node arrays up to which a batch runs kLanes cells side by side (session 14, by
// hand, HH binary trees, batch 8, float64, against one at a time: 1,148 nodes 106-120 vs 92
// Mcs/s, 2,300 nodes 97-102 vs 90-97, 9,212 nodes 77 vs 85; ~1.2 kB per node).
constexpr int64_t kSideBySide = 1 << 22;

struct Layout {
  int64_t n, steps, clamps, probes, every;
  const int64_t *parent, *up, *down, *clamp_node, *probe;
};

// Step 1 and 2's diagonal and right-hand side for the `count` entries of the node arrays,
// from the state v, m, h, n (Delta: the change of v's, with the axial currents `axial`).
template <typename T, bool Delta>
JAXDEND_CLONES void Assemble(int64_t count, const T* const* p, const T* __restrict v,
                             const T* __restrict m, const T* __restrict h, const T* __restrict nn,
                             const T* __restrict axial, T* __restrict d, T* __restrict b) {
  const T *g_na = p[kGNa], *g_k = p[kGK], *e_na = p[kENa], *e_k = p[kEK], *g_l = p[kGL],
          *e_l = p[kEL], *area = p[kArea], *cdt = p[kCdt], *diag = p[kDiag];
  for (int64_t i = 0; i < count; ++i) {
    const T m3h = m[i] * m[i] * m[i] * h[i];
    const T n2 = nn[i] * nn[i];
    const T p_na = g_na[i] * m3h, p_k = g_k[i] * (n2 * n2);
    const T vi = v[i];
    const T cur = (p_na * (vi - e_na[i]) + p_k * (vi - e_k[i]) + g_l[i] * (vi - e_l[i])) * area[i];
    const T slope = (p_na + p_k + g_l[i]) * area[i];
    const T cg = cdt[i] + slope;
    d[i] = cg + diag[i];
    b[i] = Delta ? -cur - axial[i] : cg * vi - cur;
  }
}

// Steps 3 and 4 for the `count` entries: v (the solve's result x, or v + x when Delta) becomes
// v' (Crank: 2 v_half - v), and the gates advance at v' with k = dt q10 (ms, per entry).
template <typename T, bool Delta, bool Crank>
JAXDEND_CLONES void Advance(int64_t count, const double* __restrict k, const T* __restrict x,
                            T* __restrict v, T* __restrict m, T* __restrict h, T* __restrict nn) {
  for (int64_t i = 0; i < count; ++i) {
    const T half = Delta ? v[i] + x[i] : x[i];
    const T v1 = Crank ? T(2) * half - v[i] : half;
    double m1, h1, n1;
    StepGates(static_cast<double>(m[i]), static_cast<double>(h[i]), static_cast<double>(nn[i]),
              static_cast<double>(v1), k[i], m1, h1, n1);
    v[i] = v1;
    m[i] = static_cast<T>(m1);
    h[i] = static_cast<T>(h1);
    nn[i] = static_cast<T>(n1);
  }
}

// The axial current out of every node (nA) at v: the sum over its edges of g (v - v_other);
// L cells side by side (node i of cell l at i * L + l).
template <typename T, int64_t L>
void Axial(const Layout& s, const T* g, const T* v, T* out) {
  for (int64_t l = 0; l < L; ++l) out[l] = T(0);
  for (int64_t i = 1; i < s.n; ++i) {
    for (int64_t l = 0; l < L; ++l) out[i * L + l] = g[i * L + l] * (v[i * L + l] - v[s.parent[i] * L + l]);
  }
  for (int64_t i = s.n - 1; i > 0; --i) {
    const int64_t q = s.parent[i] * L;
    for (int64_t l = 0; l < L; ++l) out[q + l] -= g[i * L + l] * (v[i * L + l] - v[q + l]);
  }
}

// The run of L cells side by side (L = 1, or kLanes: the tree solves of the kLanes cells as
// one vector instruction per node): p their per-node inputs, k per entry, the state v, m, h,
// nn updated in place, node i of cell l at i * L + l; amps[l] and rec[l] the clamp currents
// and recordings of cell l.
template <typename T, int64_t L, bool Delta, bool Crank>
void RunCells(const Layout& s, const T* const* p, const double* k, const T* const* amps, T* v,
              T* m, T* h, T* nn, T* const* rec, T* work) {
  const int64_t count = s.n * L;
  T* d = work;
  T* b = work + count;
  T* x = work + 2 * count;
  T* axial = work + 3 * count;
  for (int64_t step = 0; step < s.steps; ++step) {
    if (Delta) Axial<T, L>(s, p[kGAx], v, axial);
    Assemble<T, Delta>(count, p, v, m, h, nn, axial, d, b);
    for (int64_t l = 0; l < L; ++l) {
      const T* amp = amps[l] + step * s.clamps;
      for (int64_t c = 0; c < s.clamps; ++c) b[s.clamp_node[c] * L + l] += amp[c];
    }
    if constexpr (L == 1) {
      SolveOne<T>(s.n, s.parent, s.up, s.down, d, p[kGAx], b, x, axial + count);
    } else {  // in place: d becomes 1/d, b the solution
      SolveLanesInPlace<T>(s.n, s.parent, s.up, s.down, d, b, p[kGAx]);
      x = b;
    }
    Advance<T, Delta, Crank>(count, k, x, v, m, h, nn);
    if ((step + 1) % s.every == 0) {
      const int64_t row = ((step + 1) / s.every - 1) * s.probes;
      for (int64_t l = 0; l < L; ++l) {
        for (int64_t j = 0; j < s.probes; ++j) rec[l][row + j] = v[s.probe[j] * L + l];
      }
    }
  }
}

// Cells first, ..., first + L - 1 of the batch: their inputs copied side by side into `lanes`
// (node arrays and k), run, and the final state copied out.
template <typename T, int64_t L, bool Delta, bool Crank>
void RunGroup(const Layout& s, int64_t first, const std::vector<const T*>& in,
              const std::vector<T*>& out, size_t ik, size_t iamp, std::vector<T>& lanes,
              std::vector<double>& k, std::vector<T>& work) {
  const int64_t n = s.n, count = n * L;
  lanes.resize(static_cast<size_t>((4 + kParams) * count));
  k.resize(static_cast<size_t>(count));
  work.resize(static_cast<size_t>(5 * count));
  for (size_t a = 0; a < 4 + kParams; ++a) {  // state v, m, h, n, then the parameters
    for (int64_t l = 0; l < L; ++l) {
      const T* src = in[a] + (first + l) * n;
      T* dst = lanes.data() + a * count + l;
      for (int64_t i = 0; i < n; ++i) dst[i * L] = src[i];
    }
  }
  for (int64_t l = 0; l < L; ++l) {
    for (int64_t i = 0; i < n; ++i) k[i * L + l] = static_cast<double>(in[ik][first + l]);
  }
  const T* p[kParams];
  for (int q = 0; q < kParams; ++q) p[q] = lanes.data() + (4 + q) * count;
  const T* amps[L];
  T* rec[L];
  for (int64_t l = 0; l < L; ++l) {
    amps[l] = in[iamp] + (first + l) * s.steps * s.clamps;
    rec[l] = out[0] + (first + l) * (s.steps / s.every) * s.probes;
  }
  T* state = lanes.data();
  RunCells<T, L, Delta, Crank>(s, p, k.data(), amps, state, state + count, state + 2 * count,
                               state + 3 * count, rec, work.data());
  for (size_t a = 0; a < 4; ++a) {  // final v, m, h, n
    for (int64_t l = 0; l < L; ++l) {
      T* dst = out[1 + a] + (first + l) * n;
      const T* src = lanes.data() + a * count + l;
      for (int64_t i = 0; i < n; ++i) dst[i] = src[i * L];
    }
  }
}

// The batch: whole groups of kLanes cells side by side unless the cells are large (their node
// arrays past a few MB), the rest one at a time.
template <typename T, bool Delta, bool Crank>
void RunBatch(const Layout& s, int64_t batch, const std::vector<const T*>& in,
              const std::vector<T*>& out, size_t ik, size_t iamp) {
  std::vector<T> lanes, work;
  std::vector<double> k;
  const bool small =
      s.n * kLanes * (9 + kParams) * static_cast<int64_t>(sizeof(T)) <= kSideBySide;
  const int64_t grouped = small ? batch - batch % kLanes : 0;
  for (int64_t e = 0; e < grouped; e += kLanes) {
    RunGroup<T, kLanes, Delta, Crank>(s, e, in, out, ik, iamp, lanes, k, work);
  }
  for (int64_t e = grouped; e < batch; ++e) {
    RunGroup<T, 1, Delta, Crank>(s, e, in, out, ik, iamp, lanes, k, work);
  }
}

template <ffi::DataType DT>
ffi::Error Run(ffi::RemainingArgs args, ffi::RemainingRets rets,
               ffi::Span<const int64_t> parent, ffi::Span<const int64_t> up,
               ffi::Span<const int64_t> down, ffi::Span<const int64_t> clamp_node,
               ffi::Span<const int64_t> probe, int64_t steps, int64_t every, bool crank,
               bool delta) {
  using T = ffi::NativeType<DT>;
  const auto bad = [](const char* what) {
    return ffi::Error::InvalidArgument(std::string("jaxdend hh run: ") + what);
  };
  Layout s{static_cast<int64_t>(parent.size()), steps, static_cast<int64_t>(clamp_node.size()),
           static_cast<int64_t>(probe.size()), every, parent.begin(), up.begin(), down.begin(),
           clamp_node.begin(), probe.begin()};
  if (args.size() != 4 + kParams + 2 || rets.size() != 5) return bad("wrong number of buffers");
  if (s.n == 0 || static_cast<int64_t>(up.size()) != s.n - 1 ||
      static_cast<int64_t>(down.size()) != s.n - 1 || every < 1 || steps % every != 0) {
    return bad("inconsistent tree layout");
  }
  std::vector<const T*> in;
  std::vector<int64_t> count;
  for (size_t a = 0; a < args.size(); ++a) {
    auto x = args.get<ffi::AnyBuffer>(a);
    if (x.has_error() || x->element_type() != DT) return bad("an input has another dtype");
    in.push_back(reinterpret_cast<const T*>(x->untyped_data()));
    count.push_back(static_cast<int64_t>(x->element_count()));
  }
  const int64_t batch = count[0] / s.n;
  for (size_t a = 0; a < 4 + kParams; ++a) {
    if (count[a] != batch * s.n) return bad("state and node parameters differ in size");
  }
  const size_t ik = 4 + kParams, iamp = ik + 1;
  if (count[ik] != batch) return bad("k needs one value per batch element");
  if (count[iamp] != batch * s.steps * s.clamps) return bad("clamp currents do not fit");
  std::vector<T*> out;
  for (size_t r = 0; r < rets.size(); ++r) {
    auto x = rets.get<ffi::AnyBuffer>(r);
    if (x.has_error() || (*x)->element_type() != DT) return bad("a result has another dtype");
    out.push_back(reinterpret_cast<T*>((*x)->untyped_data()));
    const int64_t want = r == 0 ? batch * (s.steps / every) * s.probes : batch * s.n;
    if (static_cast<int64_t>((*x)->element_count()) != want) {
      return bad("results do not fit the state, steps and probes");
    }
  }
  for (int64_t j = 0; j < s.clamps; ++j) {
    if (clamp_node[j] < 0 || clamp_node[j] >= s.n) return bad("clamp node out of range");
  }
  for (int64_t j = 0; j < s.probes; ++j) {
    if (probe[j] < 0 || probe[j] >= s.n) return bad("probe out of range");
  }
  const auto run = delta ? (crank ? RunBatch<T, true, true> : RunBatch<T, true, false>)
                         : (crank ? RunBatch<T, false, true> : RunBatch<T, false, false>);
  run(s, batch, in, out, ik, iamp);
  return ffi::Error::Success();
}

}  // namespace

#define JAXDEND_RUN_BIND                                  \
  ffi::Ffi::Bind()                                        \
      .RemainingArgs()                                    \
      .RemainingRets()                                    \
      .Attr<ffi::Span<const int64_t>>("parent")           \
      .Attr<ffi::Span<const int64_t>>("up")               \
      .Attr<ffi::Span<const int64_t>>("down")             \
      .Attr<ffi::Span<const int64_t>>("clamp_node")       \
      .Attr<ffi::Span<const int64_t>>("probe")            \
      .Attr<int64_t>("steps")                             \
      .Attr<int64_t>("every")                             \
      .Attr<bool>("crank")                                \
      .Attr<bool>("delta")

XLA_FFI_DEFINE_HANDLER_SYMBOL(JaxdendHHRunF64, Run<ffi::F64>, JAXDEND_RUN_BIND);
XLA_FFI_DEFINE_HANDLER_SYMBOL(JaxdendHHRunF32, Run<ffi::F32>, JAXDEND_RUN_BIND);
