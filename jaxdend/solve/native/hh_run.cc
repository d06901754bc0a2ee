// Whole runs of a cell of HH and leak channels in one native call, forward (Run) and reverse
// (RunVjp): XLA FFI handlers, built on first use by jaxdend/solve/_native.py with the other
// sources.
//
// The scan path of `jaxdend.simulate` takes every step as a few native calls (gate step, tree
// solve) and XLA loops; on a small cell each of them costs more to launch than to run (46
// segments: ~1.5 us per step, of which the arithmetic is a third). Run takes all the steps of
// `jaxdend.solve._native_run` in one call, per step and node the same formulas as the scan
// path:
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
// Inputs (one cell; under vmap every buffer gains the same leading batch dimensions): v, m,
// h, n (n,), and per node g_na, g_k, e_na, e_k (HH's, zero where it is not inserted), g_l and
// e_l (HH's leak and every Leak channel as one: sum of g and the g-weighted mean reversal),
// membrane area (um^2 x 1e-2: S/cm^2 times it is uS), C/h (uS), axial conductance to the
// parent and the axial part of the diagonal (uS); k = dt q10 (ms, one value); the clamp currents
// (n_steps, n_clamps) at the steps' midpoints (nA). Attributes: the tree's parent, up and
// down orders (tree_solve.cc), the clamps' nodes, the probed nodes, the number of steps,
// `every`, `unit`, `crank` (Crank-Nicolson) and `delta` (solve for the change of v).
// Results: the recordings (n_steps / every, n_probes), the final v, m, h, n and, with
// unit > 0, the state before every unit-th step (n_units, 4, n) for RunVjp (see there).
// A batch runs in groups of kLanes cells side by side (their tree solves as one vector
// instruction per node), the rest one at a time; a cell's forward results do not depend on
// which (tests/test_native_run.py checks them bit for bit).

#include <algorithm>
#include <cstdint>
#include <string>
#include <type_traits>
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
  int64_t n, steps, clamps, probes, every, unit;
  const int64_t *parent, *up, *down, *clamp_node, *probe;
};

// Number of checkpointed units of `unit` steps (the last one may be shorter).
inline int64_t Units(const Layout& s) { return s.unit > 0 ? (s.steps + s.unit - 1) / s.unit : 0; }

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

// Cell l's n node values at cell(l) (one array per cell, l < L) into the side-by-side layout
// (node i of cell l at i * L + l), and back.
template <int64_t L, typename D, typename Cell>
void ToLanes(int64_t n, Cell cell, D* lanes) {
  for (int64_t l = 0; l < L; ++l) {
    const auto* src = cell(l);
    for (int64_t i = 0; i < n; ++i) lanes[i * L + l] = static_cast<D>(src[i]);
  }
}

template <int64_t L, typename S, typename Cell>
void FromLanes(int64_t n, const S* lanes, Cell cell) {
  for (int64_t l = 0; l < L; ++l) {
    auto* dst = cell(l);
    using D = std::remove_pointer_t<decltype(dst)>;
    for (int64_t i = 0; i < n; ++i) dst[i] = static_cast<D>(lanes[i * L + l]);
  }
}

// Every node's k = dt q10 (ms) of the side-by-side layout from cell l's value k_cell[l].
template <int64_t L, typename T>
void LaneK(int64_t n, const T* k_cell, double* k) {
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t l = 0; l < L; ++l) k[i * L + l] = static_cast<double>(k_cell[l]);
  }
}

// The axial current out of every node (nA) at v: the sum over its edges of g (v - v_other);
// L cells side by side (node i of cell l at i * L + l).
template <typename T, int64_t L>
void Axial(const Layout& s, const T* g, const T* v, T* out) {
  for (int64_t l = 0; l < L; ++l) out[l] = T(0);
  for (int64_t i = 1; i < s.n; ++i) {
    const int64_t q = s.parent[i] * L;
    for (int64_t l = 0; l < L; ++l) out[i * L + l] = g[i * L + l] * (v[i * L + l] - v[q + l]);
  }
  for (int64_t i = s.n - 1; i > 0; --i) {
    const int64_t q = s.parent[i] * L;
    for (int64_t l = 0; l < L; ++l) out[q + l] -= g[i * L + l] * (v[i * L + l] - v[q + l]);
  }
}

// Step `step` of L cells side by side (L = 1, or kLanes: the tree solves of the kLanes cells
// as one vector instruction per node): p their per-node inputs, k per entry, the state v, m,
// h, nn updated in place, node i of cell l at i * L + l; amps[l] the clamp currents of cell l.
// work: 5 n L values; returns where in work the solve left its result x and its inv_d (for
// SolveFactored).
template <typename T>
struct Solved {
  const T* x;
  const T* inv_d;
};

template <typename T, int64_t L, bool Delta, bool Crank>
Solved<T> StepCells(const Layout& s, int64_t step, const T* const* p, const double* k,
                   const T* const* amps, T* v, T* m, T* h, T* nn, T* work) {
  const int64_t count = s.n * L;
  T* d = work;
  T* b = work + count;
  T* x = work + 2 * count;
  T* axial = work + 3 * count;
  if (Delta) Axial<T, L>(s, p[kGAx], v, axial);
  Assemble<T, Delta>(count, p, v, m, h, nn, axial, d, b);
  for (int64_t l = 0; l < L; ++l) {
    const T* amp = amps[l] + step * s.clamps;
    for (int64_t c = 0; c < s.clamps; ++c) b[s.clamp_node[c] * L + l] += amp[c];
  }
  T* inv_d = axial + count;
  if constexpr (L == 1) {
    SolveOne<T>(s.n, s.parent, s.up, s.down, d, p[kGAx], b, x, inv_d);
  } else {  // in place: d becomes inv_d, b the solution
    SolveLanesInPlace<T>(s.n, s.parent, s.up, s.down, d, b, p[kGAx]);
    x = b;
    inv_d = d;
  }
  Advance<T, Delta, Crank>(count, k, x, v, m, h, nn);
  return {x, inv_d};
}

// The run of L cells side by side (see StepCells), rec[l] the recordings of cell l; with
// `starts`, the state (v, m, h, n) before every `unit`-th step into starts[l] (cell l's
// (n_units, 4, n) array).
template <typename T, int64_t L, bool Delta, bool Crank>
void RunCells(const Layout& s, const T* const* p, const double* k, const T* const* amps, T* v,
              T* m, T* h, T* nn, T* const* rec, T* const* starts, T* work) {
  for (int64_t step = 0; step < s.steps; ++step) {
    if (s.unit > 0 && step % s.unit == 0) {
      const T* state[4] = {v, m, h, nn};
      for (int q = 0; q < 4; ++q) {
        FromLanes<L>(s.n, state[q],
                     [&](int64_t l) { return starts[l] + ((step / s.unit) * 4 + q) * s.n; });
      }
    }
    StepCells<T, L, Delta, Crank>(s, step, p, k, amps, v, m, h, nn, work);
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
              const std::vector<T*>& out, std::vector<T>& lanes,
              std::vector<double>& k, std::vector<T>& work) {
  const int64_t n = s.n, count = n * L;
  const size_t ik = 4 + kParams, iamp = ik + 1;  // the inputs k and clamp currents
  lanes.resize(static_cast<size_t>((4 + kParams) * count));
  k.resize(static_cast<size_t>(count));
  work.resize(static_cast<size_t>(5 * count));
  for (size_t a = 0; a < 4 + kParams; ++a) {  // state v, m, h, n, then the parameters
    ToLanes<L>(n, [&](int64_t l) { return in[a] + (first + l) * n; }, lanes.data() + a * count);
  }
  LaneK<L>(n, in[ik] + first, k.data());
  const T* p[kParams];
  for (int q = 0; q < kParams; ++q) p[q] = lanes.data() + (4 + q) * count;
  const T* amps[L];
  T* rec[L];
  T* starts[L];
  for (int64_t l = 0; l < L; ++l) {
    amps[l] = in[iamp] + (first + l) * s.steps * s.clamps;
    rec[l] = out[0] + (first + l) * (s.steps / s.every) * s.probes;
    starts[l] = s.unit > 0 ? out[5] + (first + l) * Units(s) * 4 * n : nullptr;
  }
  T* state = lanes.data();
  RunCells<T, L, Delta, Crank>(s, p, k.data(), amps, state, state + count, state + 2 * count,
                               state + 3 * count, rec, starts, work.data());
  for (size_t a = 0; a < 4; ++a) {  // final v, m, h, n
    FromLanes<L>(n, lanes.data() + a * count,
                 [&](int64_t l) { return out[1 + a] + (first + l) * n; });
  }
}

// Whether a batch's cells run kLanes side by side (see kSideBySide).
template <typename T>
bool SideBySide(const Layout& s) {
  return s.n * kLanes * (9 + kParams) * static_cast<int64_t>(sizeof(T)) <= kSideBySide;
}

// The batch: whole groups of kLanes cells side by side unless the cells are large (their node
// arrays past a few MB), the rest one at a time.
template <typename T, bool Delta, bool Crank>
void RunBatch(const Layout& s, int64_t batch, const std::vector<const T*>& in,
              const std::vector<T*>& out) {
  std::vector<T> lanes, work;
  std::vector<double> k;
  const int64_t grouped = SideBySide<T>(s) ? batch - batch % kLanes : 0;
  for (int64_t e = 0; e < grouped; e += kLanes) {
    RunGroup<T, kLanes, Delta, Crank>(s, e, in, out, lanes, k, work);
  }
  for (int64_t e = grouped; e < batch; ++e) {
    RunGroup<T, 1, Delta, Crank>(s, e, in, out, lanes, k, work);
  }
}

// The buffers of a handler call as typed pointers and element counts, checked for one dtype.
template <typename T, ffi::DataType DT>
bool Buffers(ffi::RemainingArgs& args, ffi::RemainingRets& rets, std::vector<const T*>& in,
             std::vector<int64_t>& in_count, std::vector<T*>& out,
             std::vector<int64_t>& out_count) {
  for (size_t a = 0; a < args.size(); ++a) {
    auto x = args.get<ffi::AnyBuffer>(a);
    if (x.has_error() || x->element_type() != DT) return false;
    in.push_back(reinterpret_cast<const T*>(x->untyped_data()));
    in_count.push_back(static_cast<int64_t>(x->element_count()));
  }
  for (size_t r = 0; r < rets.size(); ++r) {
    auto x = rets.get<ffi::AnyBuffer>(r);
    if (x.has_error() || (*x)->element_type() != DT) return false;
    out.push_back(reinterpret_cast<T*>((*x)->untyped_data()));
    out_count.push_back(static_cast<int64_t>((*x)->element_count()));
  }
  return true;
}

// The layout from the attributes, or an error message (nullptr if consistent).
const char* MakeLayout(ffi::Span<const int64_t> parent, ffi::Span<const int64_t> up,
                       ffi::Span<const int64_t> down, ffi::Span<const int64_t> clamp_node,
                       ffi::Span<const int64_t> probe, int64_t steps, int64_t every,
                       int64_t unit, Layout& s) {
  s = Layout{static_cast<int64_t>(parent.size()), steps, static_cast<int64_t>(clamp_node.size()),
             static_cast<int64_t>(probe.size()), every, unit, parent.begin(), up.begin(),
             down.begin(), clamp_node.begin(), probe.begin()};
  if (s.n == 0 || static_cast<int64_t>(up.size()) != s.n - 1 ||
      static_cast<int64_t>(down.size()) != s.n - 1 || every < 1 || steps % every != 0 ||
      unit < 0) {
    return "inconsistent tree layout";
  }
  for (int64_t j = 0; j < s.clamps; ++j) {
    if (clamp_node[j] < 0 || clamp_node[j] >= s.n) return "clamp node out of range";
  }
  for (int64_t j = 0; j < s.probes; ++j) {
    if (probe[j] < 0 || probe[j] >= s.n) return "probe out of range";
  }
  return nullptr;
}

ffi::Error Bad(const char* what) {
  return ffi::Error::InvalidArgument(std::string("jaxdend hh run: ") + what);
}

// ---------------------------------------------------------------------------- reverse mode
// The reverse (vector-Jacobian) step of a whole run: given the parameters, the states at the
// units' starts (`Run` with `unit`) and the cotangents of the recordings and the final state,
// the cotangents of the initial state, the ten node parameters, k and the clamp currents.
// Each unit is recomputed from its start (keeping every step's state and solve), then its
// steps are reversed: the gate step's (hh.h's StepVjp), the voltage step's (v' = x,
// 2 x - v or v + x), the solve's (M lambda = x_bar: the matrix is symmetric; d_bar = -lambda
// x, g_bar_i = lambda_i x_parent + lambda_parent x_i, b_bar = lambda) and the assembly's.

// The gate step's reverse for nodes [0, n): from the cotangents cv, cm, ch, cn of the state
// after the step (v1 = v', gates stepped from m, h, nn at v1 with k = kk per entry), the
// cotangent of the solve's result into x_ct, those of the state before it into cv_out,
// cm_out, ch_out, cn_out (the voltage step's and the decay's parts; the assembly's are added
// later), k's into ck.
template <typename T, bool Delta, bool Crank>
JAXDEND_CLONES void GatesReverse(int64_t n, const double* __restrict kk, const T* __restrict m,
                                 const T* __restrict h, const T* __restrict nn,
                                 const T* __restrict v1, const T* __restrict cv,
                                 const T* __restrict cm, const T* __restrict ch,
                                 const T* __restrict cn, T* __restrict x_ct,
                                 T* __restrict cv_out, T* __restrict cm_out,
                                 T* __restrict ch_out, T* __restrict cn_out,
                                 double* __restrict ck) {
  for (int64_t i = 0; i < n; ++i) {
    double cvg = 0.0, cki = 0.0, m1, h1, n1;
    NodeGatesVjp(static_cast<double>(m[i]), static_cast<double>(h[i]),
                 static_cast<double>(nn[i]), static_cast<double>(v1[i]), kk[i],
                 static_cast<double>(cm[i]), static_cast<double>(ch[i]),
                 static_cast<double>(cn[i]), m1, h1, n1, cvg, cki);
    cm_out[i] = static_cast<T>(m1);
    ch_out[i] = static_cast<T>(h1);
    cn_out[i] = static_cast<T>(n1);
    const T c1 = cv[i] + static_cast<T>(cvg);  // cotangent of v'
    const T half = Crank ? T(2) * c1 : c1;     // of the implicit step's voltage
    x_ct[i] = half;                            // of the solve's result
    cv_out[i] = (Crank ? -c1 : T(0)) + (Delta ? half : T(0));
    ck[i] = cki;
  }
}

// The assembly's reverse for nodes [0, n) (see Assemble): from b_bar = lam and d_bar =
// -lam x, adds to the cotangents cv, cm, ch, cn of the state before the step and to the
// parameters' (pc, accumulated in double over the run).
template <typename T, bool Delta>
JAXDEND_CLONES void AssembleReverse(int64_t n, const T* const* p, const T* __restrict v,
                                    const T* __restrict m, const T* __restrict h,
                                    const T* __restrict nn, const T* __restrict lam,
                                    const T* __restrict x, T* __restrict cv,
                                    T* __restrict cm, T* __restrict ch, T* __restrict cn,
                                    double* const* pc) {
  const T *g_na = p[kGNa], *g_k = p[kGK], *e_na = p[kENa], *e_k = p[kEK], *g_l = p[kGL],
          *e_l = p[kEL], *area = p[kArea], *cdt = p[kCdt];
  double* __restrict c_gna = pc[kGNa];
  double* __restrict c_gk = pc[kGK];
  double* __restrict c_ena = pc[kENa];
  double* __restrict c_ek = pc[kEK];
  double* __restrict c_gl = pc[kGL];
  double* __restrict c_el = pc[kEL];
  double* __restrict c_area = pc[kArea];
  double* __restrict c_cdt = pc[kCdt];
  double* __restrict c_diag = pc[kDiag];
  JAXDEND_IVDEP
  for (int64_t i = 0; i < n; ++i) {
    const T mi = m[i], hi = h[i], ni = nn[i], vi = v[i], a = area[i];
    const T m2 = mi * mi, n2 = ni * ni;
    const T m3h = m2 * mi * hi, n4 = n2 * n2;
    const T gna = g_na[i], gk = g_k[i], gl = g_l[i];
    const T p_na = gna * m3h, p_k = gk * n4;
    const T dna = vi - e_na[i], dk = vi - e_k[i], dl = vi - e_l[i];
    const T inner_cur = p_na * dna + p_k * dk + gl * dl;
    const T inner_slope = p_na + p_k + gl;
    const T cg = cdt[i] + inner_slope * a;
    const T b_bar = lam[i];
    const T d_bar = -lam[i] * x[i];
    const T cg_bar = (Delta ? T(0) : b_bar * vi) + d_bar;
    const T cur_bar = -b_bar;
    c_diag[i] += d_bar;
    c_cdt[i] += cg_bar;
    c_area[i] += cur_bar * inner_cur + cg_bar * inner_slope;
    const T ci = cur_bar * a, si = cg_bar * a;
    const T pna_bar = ci * dna + si, pk_bar = ci * dk + si;
    c_gl[i] += ci * dl + si;
    c_ena[i] -= ci * p_na;
    c_ek[i] -= ci * p_k;
    c_el[i] -= ci * gl;
    c_gna[i] += pna_bar * m3h;
    c_gk[i] += pk_bar * n4;
    cv[i] += ci * inner_slope + (Delta ? T(0) : b_bar * cg);
    cm[i] += pna_bar * gna * T(3) * m2 * hi;
    ch[i] += pna_bar * gna * m2 * mi;
    cn[i] += pk_bar * gk * T(4) * n2 * ni;
  }
}

// The reverse of the runs of L cells side by side (node i of cell l at i * L + l; p, k and
// the state as in StepCells): from cell l's unit starts starts[l] (n_units, 4, n), recording
// and final-state cotangents rec_ct[l] and final_ct[l][0..3], its cotangents of the initial
// state (state_ct[l][0..3]), the node parameters (param_ct[l][..]), k (k_ct[l]) and the clamp
// currents (amp_ct[l], steps x clamps).
template <typename T, int64_t L, bool Delta, bool Crank>
void ReverseCells(const Layout& s, const T* const* p, const double* k, const T* const* amps,
                  const T* const* starts, const T* const* rec_ct, const T* const* final_ct,
                  T* const* state_ct, T* const* param_ct, T* const* k_ct, T* const* amp_ct) {
  const int64_t n = s.n, unit = s.unit, count = n * L;
  // per step of a unit its state before (v, m, h, n), its solve's result x and the inv_d of
  // its elimination: slot j at kSlot count j; the state after the unit's last step in the
  // slot after it
  constexpr int64_t kSlot = 6;
  std::vector<T> keep(static_cast<size_t>(kSlot * (unit + 1) * count));
  std::vector<T> work(static_cast<size_t>(5 * count)), ct(static_cast<size_t>(8 * count));
  std::vector<T> x_ct(count), ax(count);
  std::vector<double> acc(static_cast<size_t>(kParams * count)), ck(count), k_sum(L, 0.0);
  T* c = ct.data();         // cotangents of the state after the step being reversed
  T* c2 = c + 4 * count;    // and of the state before it
  for (int q = 0; q < 4; ++q) {
    ToLanes<L>(n, [&](int64_t l) { return final_ct[l * 4 + q]; }, c + q * count);
  }
  double* pc[kParams];
  for (int q = 0; q < kParams; ++q) pc[q] = acc.data() + q * count;
  const T* g = p[kGAx];
  for (int64_t u = Units(s) - 1; u >= 0; --u) {
    const int64_t s0 = u * unit, len = std::min(unit, s.steps - s0);
    for (int q = 0; q < 4; ++q) {
      ToLanes<L>(n, [&](int64_t l) { return starts[l] + (u * 4 + q) * n; },
                 keep.data() + q * count);
    }
    for (int64_t j = 0; j < len; ++j) {  // recompute the unit
      T* pre = keep.data() + kSlot * j * count;
      T* post = pre + kSlot * count;
      for (int64_t q = 0; q < 4 * count; ++q) post[q] = pre[q];
      const Solved<T> r = StepCells<T, L, Delta, Crank>(s, s0 + j, p, k, amps, post,
                                                       post + count, post + 2 * count,
                                                       post + 3 * count, work.data());
      for (int64_t i = 0; i < count; ++i) {
        pre[4 * count + i] = r.x[i];
        pre[5 * count + i] = r.inv_d[i];
      }
    }
    for (int64_t j = len - 1; j >= 0; --j) {
      const int64_t step = s0 + j;
      const T* pre = keep.data() + kSlot * j * count;
      const T* post = pre + kSlot * count;
      const T* x = pre + 4 * count;
      if ((step + 1) % s.every == 0) {
        const int64_t row = ((step + 1) / s.every - 1) * s.probes;
        for (int64_t l = 0; l < L; ++l) {
          for (int64_t q = 0; q < s.probes; ++q) c[s.probe[q] * L + l] += rec_ct[l][row + q];
        }
      }
      GatesReverse<T, Delta, Crank>(count, k, pre + count, pre + 2 * count, pre + 3 * count,
                                    post, c, c + count, c + 2 * count, c + 3 * count,
                                    x_ct.data(), c2, c2 + count, c2 + 2 * count,
                                    c2 + 3 * count, ck.data());
      for (int64_t i = 0; i < count; ++i) k_sum[i % L] += ck[i];
      // the step's matrix is symmetric: M lam = x_ct, from its elimination's inv_d
      T* lam = x_ct.data();
      SolveFactored<T, L>(n, s.parent, s.up, s.down, pre + 5 * count, g, lam);
      for (int64_t l = 0; l < L; ++l) {
        T* arow = amp_ct[l] + step * s.clamps;
        for (int64_t q = 0; q < s.clamps; ++q) arow[q] = lam[s.clamp_node[q] * L + l];
      }
      for (int64_t i = 1; i < n; ++i) {  // the solve's off-diagonal -g
        const int64_t q = s.parent[i] * L, o = i * L;
        for (int64_t l = 0; l < L; ++l) {
          pc[kGAx][o + l] += static_cast<double>(lam[o + l] * x[q + l] + lam[q + l] * x[o + l]);
        }
      }
      AssembleReverse<T, Delta>(count, p, pre, pre + count, pre + 2 * count, pre + 3 * count,
                                lam, x, c2, c2 + count, c2 + 2 * count, c2 + 3 * count, pc);
      if (Delta) {  // b = -I - axial(v): axial is the tree's Laplacian in v, linear in g
        Axial<T, L>(s, g, lam, ax.data());
        for (int64_t i = 0; i < count; ++i) c2[i] -= ax[i];
        for (int64_t i = 1; i < n; ++i) {
          const int64_t q = s.parent[i] * L, o = i * L;
          for (int64_t l = 0; l < L; ++l) {
            pc[kGAx][o + l] -=
                static_cast<double>((lam[o + l] - lam[q + l]) * (pre[o + l] - pre[q + l]));
          }
        }
      }
      std::swap(c, c2);
    }
  }
  for (int q = 0; q < 4; ++q) {
    FromLanes<L>(n, c + q * count, [&](int64_t l) { return state_ct[l * 4 + q]; });
  }
  for (int q = 0; q < kParams; ++q) {
    FromLanes<L>(n, pc[q], [&](int64_t l) { return param_ct[l * kParams + q]; });
  }
  for (int64_t l = 0; l < L; ++l) *k_ct[l] = static_cast<T>(k_sum[l]);
}

// Batch elements first, ..., first + L - 1 of the reverse run (buffers as in RunVjp).
template <typename T, int64_t L, bool Delta, bool Crank>
void ReverseGroup(const Layout& s, int64_t first, const std::vector<const T*>& in,
                  const std::vector<T*>& out) {
  const int64_t n = s.n, count = n * L, steps = s.steps;
  const int64_t nrec = (steps / s.every) * s.probes;
  const size_t ik = kParams, iamp = ik + 1, istart = ik + 2, irec = ik + 3, ifin = ik + 4;
  std::vector<T> lanes(static_cast<size_t>(kParams * count));
  std::vector<double> k(count);
  for (int q = 0; q < kParams; ++q) {
    ToLanes<L>(n, [&](int64_t l) { return in[q] + (first + l) * n; }, lanes.data() + q * count);
  }
  LaneK<L>(n, in[ik] + first, k.data());
  const T* p[kParams];
  for (int q = 0; q < kParams; ++q) p[q] = lanes.data() + q * count;
  const T *amps[L], *starts[L], *rec_ct[L], *fin[4 * L];
  T *sct[4 * L], *pct[kParams * L], *kct[L], *act[L];
  for (int64_t l = 0; l < L; ++l) {
    const int64_t e = first + l;
    amps[l] = in[iamp] + e * steps * s.clamps;
    starts[l] = in[istart] + e * Units(s) * 4 * n;
    rec_ct[l] = in[irec] + e * nrec;
    for (int q = 0; q < 4; ++q) {
      fin[l * 4 + q] = in[ifin + q] + e * n;
      sct[l * 4 + q] = out[q] + e * n;
    }
    for (int q = 0; q < kParams; ++q) pct[l * kParams + q] = out[4 + q] + e * n;
    kct[l] = out[4 + kParams] + e;
    act[l] = out[5 + kParams] + e * steps * s.clamps;
  }
  ReverseCells<T, L, Delta, Crank>(s, p, k.data(), amps, starts, rec_ct, fin, sct, pct, kct,
                                   act);
}

// The reverse batch: whole groups of kLanes cells side by side while a group's kept unit
// (6 values per node and step) stays within kSideBySide bytes, the rest one at a time
// (session 14, by hand, batched value-and-gradient: 46-segment cell x 100 (20-step units)
// side by side 60.6 against 83.1 ms one at a time; 1,080-node tree x 10 (63-step units,
// 26 MB a group) 161 against 153 ms).
template <typename T, bool Delta, bool Crank>
void ReverseBatch(const Layout& s, int64_t batch, const std::vector<const T*>& in,
                  const std::vector<T*>& out) {
  const bool small =
      6 * s.n * kLanes * (s.unit + 1) * static_cast<int64_t>(sizeof(T)) <= kSideBySide;
  const int64_t grouped = small ? batch - batch % kLanes : 0;
  for (int64_t e = 0; e < grouped; e += kLanes) {
    ReverseGroup<T, kLanes, Delta, Crank>(s, e, in, out);
  }
  for (int64_t e = grouped; e < batch; ++e) ReverseGroup<T, 1, Delta, Crank>(s, e, in, out);
}

// The sizes of a forward (Run: state (4), node parameters, k, clamp currents -> recordings,
// final state (4)[, unit starts]) or reverse call's buffers (RunVjp: node parameters, k, clamp
// currents, unit starts, recording and final-state cotangents (4) -> cotangents of the initial
// state (4), node parameters, k and clamp currents), or what does not fit.
template <bool Reverse>
const char* CheckSizes(const Layout& s, int64_t batch, const std::vector<int64_t>& in,
                       const std::vector<int64_t>& out) {
  const int64_t n = s.n, steps = s.steps, nrec = (steps / s.every) * s.probes;
  const int64_t amps = batch * steps * s.clamps, starts = batch * Units(s) * 4 * n;
  const size_t p0 = Reverse ? 0 : 4, ik = p0 + kParams;  // first node parameter, k
  if (in.size() != (Reverse ? kParams + 8 : kParams + 6) ||
      out.size() != (Reverse ? kParams + 6 : (s.unit > 0 ? 6u : 5u)) || (Reverse && s.unit < 1)) {
    return "wrong number of buffers";
  }
  bool ok = in[ik] == batch && in[ik + 1] == amps;
  for (size_t q = 0; q < p0 + kParams; ++q) ok = ok && in[q] == batch * n;
  if (!ok) return "state, node parameters, k or clamp currents do not fit";
  if (Reverse) {
    ok = in[ik + 2] == starts && in[ik + 3] == batch * nrec;
    for (size_t q = 0; q < 4; ++q) ok = ok && in[ik + 4 + q] == batch * n;
    for (size_t q = 0; q < 4 + kParams; ++q) ok = ok && out[q] == batch * n;
    ok = ok && out[4 + kParams] == batch && out[5 + kParams] == amps;
  } else {
    ok = out[0] == batch * nrec && (s.unit == 0 || out[5] == starts);
    for (size_t q = 1; q < 5; ++q) ok = ok && out[q] == batch * n;
  }
  return ok ? nullptr : "results or cotangents do not fit the state, steps and probes";
}

// Run (Reverse = false) or RunVjp (true): the buffers checked, then the batch.
template <ffi::DataType DT, bool Reverse>
ffi::Error Handle(ffi::RemainingArgs args, ffi::RemainingRets rets,
                  ffi::Span<const int64_t> parent, ffi::Span<const int64_t> up,
                  ffi::Span<const int64_t> down, ffi::Span<const int64_t> clamp_node,
                  ffi::Span<const int64_t> probe, int64_t steps, int64_t every, int64_t unit,
                  bool crank, bool delta) {
  using T = ffi::NativeType<DT>;
  Layout s;
  if (const char* err = MakeLayout(parent, up, down, clamp_node, probe, steps, every, unit, s)) {
    return Bad(err);
  }
  std::vector<const T*> in;
  std::vector<T*> out;
  std::vector<int64_t> count, out_count;
  if (!Buffers<T, DT>(args, rets, in, count, out, out_count)) return Bad("a buffer's dtype");
  const int64_t batch = count.empty() ? 0 : count[0] / s.n;
  if (const char* err = CheckSizes<Reverse>(s, batch, count, out_count)) return Bad(err);
  using Batch = void (*)(const Layout&, int64_t, const std::vector<const T*>&,
                         const std::vector<T*>&);
  Batch run;
  if constexpr (Reverse) {
    run = delta ? (crank ? ReverseBatch<T, true, true> : ReverseBatch<T, true, false>)
                : (crank ? ReverseBatch<T, false, true> : ReverseBatch<T, false, false>);
  } else {
    run = delta ? (crank ? RunBatch<T, true, true> : RunBatch<T, true, false>)
                : (crank ? RunBatch<T, false, true> : RunBatch<T, false, false>);
  }
  run(s, batch, in, out);
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
      .Attr<int64_t>("unit")                              \
      .Attr<bool>("crank")                                \
      .Attr<bool>("delta")

XLA_FFI_DEFINE_HANDLER_SYMBOL(JaxdendHHRunF64, (Handle<ffi::F64, false>), JAXDEND_RUN_BIND);
XLA_FFI_DEFINE_HANDLER_SYMBOL(JaxdendHHRunF32, (Handle<ffi::F32, false>), JAXDEND_RUN_BIND);
XLA_FFI_DEFINE_HANDLER_SYMBOL(JaxdendHHRunVjpF64, (Handle<ffi::F64, true>), JAXDEND_RUN_BIND);
XLA_FFI_DEFINE_HANDLER_SYMBOL(JaxdendHHRunVjpF32, (Handle<ffi::F32, true>), JAXDEND_RUN_BIND);
