// NEURON's `hh` as native CPU code: XLA FFI handlers, built on first use by
// jaxdend/solve/_native.py together with tree_solve.cc.
//
// - Gates: the exponential-Euler step of m, h, n. Same formulas, in the same order of
//   operations, as `_hh_exp_euler_parts` in jaxdend/channels/_hh.py (which documents them):
//   per node the three rate exponentials, the six rates, and per gate
//   x' = inf + (x - inf) exp(-k (a + b)) with k = dt q10.
// - GatesVjp: its reverse step (`_vjp_xla` there): from the cotangents of m', h', n' those of
//   m, h, n, v and k, the rates and their slopes recomputed from v.
// - CurrentVjp: the reverse step of the current and its slope (`_current_vjp_xla` there).
// - StepCurrentVjp: the reverse step of the gate step followed by the current and slope at
//   the new gates (`_step_current_vjp_xla`): GatesVjp and CurrentVjp in one loop.
// XLA runs each of these as several (forward) to a few dozen (reverse) small loops per step;
// here each is one loop whose exponentials are a branch-free polynomial the compiler
// vectorises (function clones for AVX-512 and AVX2 are picked at load time, where the
// compiler supports them), so a step reads and writes every array once.
//
// Accuracy: the exponential of hh.h is within about 1 ulp, so results agree with the XLA
// formulas to round-off. Arithmetic is done in double for both float64 and float32 buffers.
//
// Batches: k has one value per batch element (its element count divides that of v; leading
// dimensions are the batch); consecutive elements with equal k run as one loop (a batch of
// small cells would otherwise spend much of each short loop in its scalar remainder). The
// current's arrays all have one shape.

#include <cstdint>
#include <initializer_list>
#include <cstring>

#include "common.h"
#include "hh.h"
#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace {

using namespace jaxdend;  // NOLINT: the HH formulas of hh.h

template <typename T>
JAXDEND_CLONES void Gates(int64_t count, double k, const T* __restrict m,
                          const T* __restrict h, const T* __restrict n,
                          const T* __restrict v, T* __restrict m_out, T* __restrict h_out,
                          T* __restrict n_out) {
  for (int64_t i = 0; i < count; ++i) {
    double m1, h1, n1;
    StepGates(static_cast<double>(m[i]), static_cast<double>(h[i]), static_cast<double>(n[i]),
              static_cast<double>(v[i]), k, m1, h1, n1);
    m_out[i] = static_cast<T>(m1);
    h_out[i] = static_cast<T>(h1);
    n_out[i] = static_cast<T>(n1);
  }
}

// The reverse (vector-Jacobian) step of `Gates` for nodes [0, count): cotangents of m, h, n,
// v, and per node the cotangent of k into `ck` (`_hh_exp_euler_parts`'s derivatives, rates
// recomputed).
template <typename T>
JAXDEND_CLONES void GatesVjp(int64_t count, double k, const T* __restrict m,
                             const T* __restrict h, const T* __restrict n,
                             const T* __restrict v, const T* __restrict cm,
                             const T* __restrict ch, const T* __restrict cn,
                             T* __restrict m_out, T* __restrict h_out, T* __restrict n_out,
                             T* __restrict v_out, double* __restrict ck_out) {
  for (int64_t i = 0; i < count; ++i) {
    double cv = 0.0, ck = 0.0, m1, h1, n1;
    NodeGatesVjp(static_cast<double>(m[i]), static_cast<double>(h[i]), static_cast<double>(n[i]),
                 static_cast<double>(v[i]), k, static_cast<double>(cm[i]),
                 static_cast<double>(ch[i]), static_cast<double>(cn[i]), m1, h1, n1, cv, ck);
    m_out[i] = static_cast<T>(m1);
    h_out[i] = static_cast<T>(h1);
    n_out[i] = static_cast<T>(n1);
    v_out[i] = static_cast<T>(cv);
    ck_out[i] = ck;
  }
}

// A per-node reverse step `block(o, c, ck)` (nodes [o, o + c), each node's cotangent of k into
// ck[0, c)) over nodes [0, count) in blocks, the cotangents of k summed in node order per
// batch element of `per` nodes into `ck_sum` (one entry per element).
template <typename T, typename Block>
void BlocksCkSum(int64_t count, int64_t per, Block block, T* ck_sum) {
  constexpr int64_t kBlock = 512;
  double ck[kBlock];
  double sum = 0.0;
  int64_t end = per;  // index past the last node of the current batch element
  for (int64_t o = 0; o < count; o += kBlock) {
    const int64_t c = count - o < kBlock ? count - o : kBlock;
    block(o, c, ck);
    for (int64_t i = 0; i < c; ++i) {
      sum += ck[i];
      if (o + i + 1 == end) {  // a comparison, not a division, per node
        *ck_sum++ = static_cast<T>(sum);
        sum = 0.0;
        end += per;
      }
    }
  }
}

// `GatesVjp` over nodes [0, count), for batch elements of `per` nodes each that share k: the
// sum of k's cotangent over each element's nodes goes to its entry of `ck_sum`.
template <typename T>
void GatesVjpSum(int64_t count, int64_t per, double k, const T* m, const T* h, const T* n,
                 const T* v, const T* cm, const T* ch, const T* cn, T* m_out, T* h_out,
                 T* n_out, T* v_out, T* ck_sum) {
  BlocksCkSum<T>(count, per, [&](int64_t o, int64_t c, double* ck) {
    GatesVjp<T>(c, k, m + o, h + o, n + o, v + o, cm + o, ch + o, cn + o, m_out + o,
                h_out + o, n_out + o, v_out + o, ck);
  }, ck_sum);
}

// The end of the run of batch elements from `g` on that share k (its index past the last).
template <typename T>
int64_t SameK(const T* k, int64_t g, int64_t groups) {
  int64_t g1 = g + 1;
  while (g1 < groups && k[g1] == k[g]) ++g1;
  return g1;
}

// One node's reverse step of HH's current and slope (see `CurrentVjp`): given m, h, n, v, the
// six parameters, the cotangents a of i and b of g and pm, ph, pn of the passed-through gates,
// the cotangents of m, h, n, v and of the parameters.
struct CurrentCts {
  double m, h, n, v, gna, gk, gl, ena, ek, el;
};

JAXDEND_INLINE CurrentCts CurrentReverse(double m, double h, double n, double v, double g_na,
                                         double g_k, double g_l, double e_na, double e_k,
                                         double e_l, double a, double b, double pm, double ph,
                                         double pn) {
  const double m2 = m * m, n3 = n * n * n;
  const double m3h = m2 * m * h, n4 = n3 * n;
  const double p_na = g_na * m3h, p_k = g_k * n4;
  const double a_na = (v - e_na) * a + b, a_k = (v - e_k) * a + b;
  CurrentCts c;
  c.m = pm + g_na * 3.0 * m2 * h * a_na;
  c.h = ph + g_na * m2 * m * a_na;
  c.n = pn + g_k * 4.0 * n3 * a_k;
  c.v = (p_na + p_k + g_l) * a;
  c.gna = m3h * a_na;
  c.gk = n4 * a_k;
  c.gl = (v - e_l) * a + b;
  c.ena = -p_na * a;
  c.ek = -p_k * a;
  c.el = -g_l * a;
  return c;
}

// Node i's cotangents of the six parameters from `CurrentReverse`, stored as T.
template <typename T>
JAXDEND_INLINE void StoreParamCts(const CurrentCts& c, int64_t i, T* __restrict ogna,
                                  T* __restrict ogk, T* __restrict ogl, T* __restrict oena,
                                  T* __restrict oek, T* __restrict oel) {
  ogna[i] = static_cast<T>(c.gna);
  ogk[i] = static_cast<T>(c.gk);
  ogl[i] = static_cast<T>(c.gl);
  oena[i] = static_cast<T>(c.ena);
  oek[i] = static_cast<T>(c.ek);
  oel[i] = static_cast<T>(c.el);
}

// The reverse step of HH's current and its slope (`jaxdend.channels._hh._current_vjp_xla`):
// i = P_na (v - e_na) + P_k (v - e_k) + g_l (v - e_l) and g = P_na + P_k + g_l with
// P_na = g_na m^3 h, P_k = g_k n^4; the function also passes m, h, n through unchanged (the
// gate step reads them from there, so their two cotangents meet here instead of in three
// extra kernels). Given the cotangents ci of i, cg of g and pm, ph, pn of the passed gates,
// the cotangents of m, h, n, v and of the six parameters (all arrays of one shape).
template <typename T>
JAXDEND_CLONES void CurrentVjp(int64_t count, const T* __restrict m, const T* __restrict h,
                               const T* __restrict n, const T* __restrict v,
                               const T* __restrict gna, const T* __restrict gk,
                               const T* __restrict gl, const T* __restrict ena,
                               const T* __restrict ek, const T* __restrict el,
                               const T* __restrict ci, const T* __restrict cg,
                               const T* __restrict pm, const T* __restrict ph,
                               const T* __restrict pn, T* __restrict om, T* __restrict oh, T* __restrict on,
                               T* __restrict ov, T* __restrict ogna, T* __restrict ogk,
                               T* __restrict ogl, T* __restrict oena, T* __restrict oek,
                               T* __restrict oel) {
  for (int64_t i = 0; i < count; ++i) {
    const CurrentCts c = CurrentReverse(m[i], h[i], n[i], v[i], gna[i], gk[i], gl[i], ena[i],
                                        ek[i], el[i], ci[i], cg[i], pm[i], ph[i], pn[i]);
    om[i] = static_cast<T>(c.m);
    oh[i] = static_cast<T>(c.h);
    on[i] = static_cast<T>(c.n);
    ov[i] = static_cast<T>(c.v);
    StoreParamCts(c, i, ogna, ogk, ogl, oena, oek, oel);
  }
}

// The reverse step of the gate step followed by the current and slope at the new gates
// (`jaxdend.channels._hh._step_current_vjp_xla`): m' = step(m, v, k) etc., then i and g of
// `CurrentVjp` at m', h', n', v. Given the cotangents cm1, ch1, cn1 of m', h', n' and ci, cg
// of i, g: those of m, h, n, v, the six parameters and, per node, k (into ck_out). One loop
// for what `GatesVjp` and `CurrentVjp` do in two: m', h', n' come from the step's own
// intermediate values, and both cotangents of v add up here.
template <typename T>
JAXDEND_CLONES void StepCurrentVjp(
    int64_t count, double k, const T* __restrict m, const T* __restrict h,
    const T* __restrict n, const T* __restrict v, const T* __restrict gna,
    const T* __restrict gk, const T* __restrict gl, const T* __restrict ena,
    const T* __restrict ek, const T* __restrict el, const T* __restrict cm1,
    const T* __restrict ch1, const T* __restrict cn1, const T* __restrict ci,
    const T* __restrict cg, T* __restrict om, T* __restrict oh, T* __restrict on,
    T* __restrict ov, T* __restrict ogna, T* __restrict ogk, T* __restrict ogl,
    T* __restrict oena, T* __restrict oek, T* __restrict oel, double* __restrict ck_out) {
  for (int64_t i = 0; i < count; ++i) {
    const double vi = static_cast<double>(v[i]);
    double r[6], d[6];
    RatesSlopes(vi, r, d);
    const GateStep sm = StepParts(static_cast<double>(m[i]), r[0], r[1], k);
    const GateStep sh = StepParts(static_cast<double>(h[i]), r[2], r[3], k);
    const GateStep sn = StepParts(static_cast<double>(n[i]), r[4], r[5], k);
    // the new gates, rounded to T as the gate step stores them
    const double m1 = static_cast<T>(sm.inf + sm.gap);
    const double h1 = static_cast<T>(sh.inf + sh.gap);
    const double n1 = static_cast<T>(sn.inf + sn.gap);
    // the current's reverse step at the new gates; its gate cotangents then go through the
    // gate step's
    const CurrentCts c = CurrentReverse(m1, h1, n1, vi, gna[i], gk[i], gl[i], ena[i], ek[i],
                                        el[i], ci[i], cg[i], cm1[i], ch1[i], cn1[i]);
    double cv = c.v, ck = 0.0;
    om[i] = static_cast<T>(StepVjp(sm, d[0], d[1], k, c.m, cv, ck));
    oh[i] = static_cast<T>(StepVjp(sh, d[2], d[3], k, c.h, cv, ck));
    on[i] = static_cast<T>(StepVjp(sn, d[4], d[5], k, c.n, cv, ck));
    ov[i] = static_cast<T>(cv);
    StoreParamCts(c, i, ogna, ogk, ogl, oena, oek, oel);
    ck_out[i] = ck;
  }
}

// args: m, h, n, v, k, g_na, g_k, g_l, e_na, e_k, e_l, cm1, ch1, cn1, ci, cg (k: one value
// per batch element, the others one shape); rets: the cotangents of m, h, n, v, the six
// parameters and k (see StepCurrentVjp).
template <ffi::DataType DT>
ffi::Error RunStepCurrentVjp(ffi::RemainingArgs args, ffi::RemainingRets rets) {
  using T = ffi::NativeType<DT>;
  constexpr size_t kArgs = 16, kRets = 11, kK = 4;
  if (args.size() != kArgs || rets.size() != kRets) {
    return ffi::Error::InvalidArgument("jaxdend hh step-current vjp: needs 16 inputs, 11 results");
  }
  const T* in[kArgs];
  T* out[kRets];
  int64_t total = -1, groups = -1;
  for (size_t j = 0; j < kArgs; ++j) {
    auto x = args.get<ffi::AnyBuffer>(j);
    if (x.has_error()) return x.error();
    const int64_t c = static_cast<int64_t>(x->element_count());
    if (x->element_type() != DT) {
      return ffi::Error::InvalidArgument("jaxdend hh step-current vjp: dtypes differ");
    }
    if (j == kK) {
      groups = c;
    } else if (total >= 0 && c != total) {
      return ffi::Error::InvalidArgument("jaxdend hh step-current vjp: inputs differ");
    } else {
      total = c;
    }
    in[j] = reinterpret_cast<const T*>(x->untyped_data());
  }
  if (groups <= 0 || total % groups != 0) {
    return ffi::Error::InvalidArgument("jaxdend hh step-current vjp: v and k do not match");
  }
  for (size_t j = 0; j < kRets; ++j) {
    auto x = rets.get<ffi::AnyBuffer>(j);
    if (x.has_error()) return x.error();
    const int64_t want = j == kRets - 1 ? groups : total;
    if ((*x)->element_type() != DT || static_cast<int64_t>((*x)->element_count()) != want) {
      return ffi::Error::InvalidArgument("jaxdend hh step-current vjp: results differ");
    }
    out[j] = reinterpret_cast<T*>((*x)->untyped_data());
  }
  const T* kp = in[kK];
  const int64_t per = total / groups;
  for (int64_t g = 0, g1; g < groups; g = g1) {
    g1 = SameK(kp, g, groups);  // one loop over the batch elements that share k
    const int64_t b = g * per;
    BlocksCkSum<T>((g1 - g) * per, per, [&](int64_t o0, int64_t c, double* ck) {
      const int64_t o = b + o0;
      StepCurrentVjp<T>(c, static_cast<double>(kp[g]), in[0] + o, in[1] + o, in[2] + o,
                        in[3] + o, in[5] + o, in[6] + o, in[7] + o, in[8] + o, in[9] + o,
                        in[10] + o, in[11] + o, in[12] + o, in[13] + o, in[14] + o, in[15] + o,
                        out[0] + o, out[1] + o, out[2] + o, out[3] + o, out[4] + o, out[5] + o,
                        out[6] + o, out[7] + o, out[8] + o, out[9] + o, ck);
    }, out[10] + g);
  }
  return ffi::Error::Success();
}

template <ffi::DataType DT>
ffi::Error RunCurrentVjp(ffi::RemainingArgs args, ffi::RemainingRets rets) {
  using T = ffi::NativeType<DT>;
  if (args.size() != 15 || rets.size() != 10) {
    return ffi::Error::InvalidArgument("jaxdend hh current vjp: needs 15 inputs, 10 results");
  }
  const T* in[15];
  T* out[10];
  int64_t total = -1;
  for (size_t k = 0; k < 15; ++k) {
    auto x = args.get<ffi::AnyBuffer>(k);
    if (x.has_error()) return x.error();
    const int64_t c = static_cast<int64_t>(x->element_count());
    if (x->element_type() != DT || (total >= 0 && c != total)) {
      return ffi::Error::InvalidArgument("jaxdend hh current vjp: inputs differ");
    }
    total = c;
    in[k] = reinterpret_cast<const T*>(x->untyped_data());
  }
  for (size_t k = 0; k < 10; ++k) {
    auto x = rets.get<ffi::AnyBuffer>(k);
    if (x.has_error()) return x.error();
    if ((*x)->element_type() != DT || static_cast<int64_t>((*x)->element_count()) != total) {
      return ffi::Error::InvalidArgument("jaxdend hh current vjp: results differ from inputs");
    }
    out[k] = reinterpret_cast<T*>((*x)->untyped_data());
  }
  CurrentVjp<T>(total, in[0], in[1], in[2], in[3], in[4], in[5], in[6], in[7], in[8], in[9],
                in[10], in[11], in[12], in[13], in[14], out[0], out[1], out[2], out[3], out[4], out[5], out[6], out[7],
                out[8], out[9]);
  return ffi::Error::Success();
}

// True if every buffer has `total` elements of type DT (the handlers' argument checks)
template <ffi::DataType DT>
bool AllOf(std::initializer_list<const ffi::AnyBuffer*> xs, int64_t total) {
  for (const ffi::AnyBuffer* x : xs) {
    if (static_cast<int64_t>(x->element_count()) != total || x->element_type() != DT) return false;
  }
  return true;
}

template <ffi::DataType DT>
bool AllOf(std::initializer_list<ffi::Result<ffi::AnyBuffer>*> xs, int64_t total) {
  for (ffi::Result<ffi::AnyBuffer>* x : xs) {
    if (static_cast<int64_t>((*x)->element_count()) != total || (*x)->element_type() != DT) {
      return false;
    }
  }
  return true;
}

template <typename T>
const T* In(const ffi::AnyBuffer& x) { return reinterpret_cast<const T*>(x.untyped_data()); }

template <typename T>
T* Out(ffi::Result<ffi::AnyBuffer>& x) { return reinterpret_cast<T*>(x->untyped_data()); }

template <ffi::DataType DT>
ffi::Error Run(ffi::AnyBuffer m, ffi::AnyBuffer h, ffi::AnyBuffer n, ffi::AnyBuffer v,
               ffi::AnyBuffer k, ffi::Result<ffi::AnyBuffer> m_out,
               ffi::Result<ffi::AnyBuffer> h_out, ffi::Result<ffi::AnyBuffer> n_out) {
  using T = ffi::NativeType<DT>;
  const int64_t total = static_cast<int64_t>(v.element_count());
  const int64_t groups = static_cast<int64_t>(k.element_count());
  if (!AllOf<DT>({&m, &h, &n}, total)) {
    return ffi::Error::InvalidArgument("jaxdend hh gates: m, h, n and v differ");
  }
  if (!AllOf<DT>({&m_out, &h_out, &n_out}, total)) {
    return ffi::Error::InvalidArgument("jaxdend hh gates: results differ from v");
  }
  if (v.element_type() != DT || k.element_type() != DT || groups == 0 || total % groups != 0) {
    return ffi::Error::InvalidArgument("jaxdend hh gates: v and k do not match");
  }
  const auto in = In<T>;
  const auto out = Out<T>;
  const T* kp = in(k);
  const int64_t per = total / groups;
  for (int64_t g = 0, g1; g < groups; g = g1) {
    g1 = SameK(kp, g, groups);  // one loop over the batch elements that share k
    const int64_t o = g * per;
    Gates<T>((g1 - g) * per, static_cast<double>(kp[g]), in(m) + o, in(h) + o, in(n) + o,
             in(v) + o, out(m_out) + o, out(h_out) + o, out(n_out) + o);
  }
  return ffi::Error::Success();
}

template <ffi::DataType DT>
ffi::Error RunVjp(ffi::AnyBuffer m, ffi::AnyBuffer h, ffi::AnyBuffer n, ffi::AnyBuffer v,
                  ffi::AnyBuffer k, ffi::AnyBuffer cm, ffi::AnyBuffer ch, ffi::AnyBuffer cn,
                  ffi::Result<ffi::AnyBuffer> m_out, ffi::Result<ffi::AnyBuffer> h_out,
                  ffi::Result<ffi::AnyBuffer> n_out, ffi::Result<ffi::AnyBuffer> v_out,
                  ffi::Result<ffi::AnyBuffer> k_out) {
  using T = ffi::NativeType<DT>;
  const int64_t total = static_cast<int64_t>(v.element_count());
  const int64_t groups = static_cast<int64_t>(k.element_count());
  if (!AllOf<DT>({&m, &h, &n, &v, &cm, &ch, &cn}, total)) {
    return ffi::Error::InvalidArgument("jaxdend hh gates vjp: inputs differ from v");
  }
  if (!AllOf<DT>({&m_out, &h_out, &n_out, &v_out}, total)) {
    return ffi::Error::InvalidArgument("jaxdend hh gates vjp: results differ from v");
  }
  if (!AllOf<DT>({&k}, groups) || !AllOf<DT>({&k_out}, groups) || groups == 0 ||
      total % groups != 0) {
    return ffi::Error::InvalidArgument("jaxdend hh gates vjp: v and k do not match");
  }
  const auto in = In<T>;
  const auto out = Out<T>;
  const T* kp = in(k);
  T* ko = out(k_out);
  const int64_t per = total / groups;
  for (int64_t g = 0, g1; g < groups; g = g1) {
    g1 = SameK(kp, g, groups);
    const int64_t o = g * per;
    GatesVjpSum<T>((g1 - g) * per, per, static_cast<double>(kp[g]), in(m) + o, in(h) + o,
                   in(n) + o, in(v) + o, in(cm) + o, in(ch) + o, in(cn) + o, out(m_out) + o,
                   out(h_out) + o, out(n_out) + o, out(v_out) + o, ko + g);
  }
  return ffi::Error::Success();
}

}  // namespace

// buffer arguments and results of the handlers' bindings
#define JAXDEND_ARG .Arg<ffi::AnyBuffer>()
#define JAXDEND_RET .Ret<ffi::AnyBuffer>()

// m, h, n, v, k -> m', h', n'
XLA_FFI_DEFINE_HANDLER_SYMBOL(JaxdendHHGatesF64, Run<ffi::F64>,
                              ffi::Ffi::Bind() JAXDEND_ARG JAXDEND_ARG JAXDEND_ARG JAXDEND_ARG
                                  JAXDEND_ARG JAXDEND_RET JAXDEND_RET JAXDEND_RET);
XLA_FFI_DEFINE_HANDLER_SYMBOL(JaxdendHHGatesF32, Run<ffi::F32>,
                              ffi::Ffi::Bind() JAXDEND_ARG JAXDEND_ARG JAXDEND_ARG JAXDEND_ARG
                                  JAXDEND_ARG JAXDEND_RET JAXDEND_RET JAXDEND_RET);

// m, h, n, v, k and the cotangents of m', h', n' -> cotangents of m, h, n, v, k
XLA_FFI_DEFINE_HANDLER_SYMBOL(JaxdendHHGatesVjpF64, RunVjp<ffi::F64>,
                              ffi::Ffi::Bind() JAXDEND_ARG JAXDEND_ARG JAXDEND_ARG JAXDEND_ARG
                                  JAXDEND_ARG JAXDEND_ARG JAXDEND_ARG JAXDEND_ARG JAXDEND_RET
                                      JAXDEND_RET JAXDEND_RET JAXDEND_RET JAXDEND_RET);
XLA_FFI_DEFINE_HANDLER_SYMBOL(JaxdendHHGatesVjpF32, RunVjp<ffi::F32>,
                              ffi::Ffi::Bind() JAXDEND_ARG JAXDEND_ARG JAXDEND_ARG JAXDEND_ARG
                                  JAXDEND_ARG JAXDEND_ARG JAXDEND_ARG JAXDEND_ARG JAXDEND_RET
                                      JAXDEND_RET JAXDEND_RET JAXDEND_RET JAXDEND_RET);

// 15 arrays -> 10 cotangents (see CurrentVjp)
XLA_FFI_DEFINE_HANDLER_SYMBOL(JaxdendHHCurrentVjpF64, RunCurrentVjp<ffi::F64>,
                              ffi::Ffi::Bind().RemainingArgs().RemainingRets());
XLA_FFI_DEFINE_HANDLER_SYMBOL(JaxdendHHCurrentVjpF32, RunCurrentVjp<ffi::F32>,
                              ffi::Ffi::Bind().RemainingArgs().RemainingRets());

// 16 arrays -> 11 cotangents (see StepCurrentVjp)
XLA_FFI_DEFINE_HANDLER_SYMBOL(JaxdendHHStepCurrentVjpF64, RunStepCurrentVjp<ffi::F64>,
                              ffi::Ffi::Bind().RemainingArgs().RemainingRets());
XLA_FFI_DEFINE_HANDLER_SYMBOL(JaxdendHHStepCurrentVjpF32, RunStepCurrentVjp<ffi::F32>,
                              ffi::Ffi::Bind().RemainingArgs().RemainingRets());
