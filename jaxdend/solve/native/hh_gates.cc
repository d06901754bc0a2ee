// The exponential-Euler step of NEURON's `hh` gates as native CPU code: an XLA FFI handler,
// built on first use by jaxdend/solve/_native.py together with tree_solve.cc.
//
// Same formulas, in the same order of operations, as `_hh_exp_euler_parts` in
// jaxdend/channels/_hh.py (which documents them): per node the three rate exponentials, the
// six rates, and per gate x' = inf + (x - inf) exp(-k (a + b)) with k = dt q10. The "parts"
// handler also returns the partial derivatives of x' (d x'/d x, d x'/d v, d x'/d k) that the
// custom JVP of `_hh_exp_euler` needs. XLA runs these formulas as about ten separate loops per
// step; here they are one loop whose exponentials are a branch-free polynomial the compiler
// vectorises (function clones for AVX-512 and AVX2 are picked at load time, where the
// compiler supports them), so a step reads and writes every array once.
//
// Accuracy: exp below agrees with the correctly rounded value to about 1 ulp (degree-13
// Taylor polynomial on |r| <= ln2/2 after Cody-Waite reduction; truncation < 5e-18), so
// results agree with the XLA formulas to round-off. Arithmetic is done in double for both
// float64 and float32 buffers.
//
// Batches: k has one value per batch element (its element count divides that of v; leading
// dimensions are the batch).

#include <cstdint>
#include <cstring>

#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace {

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define JAXDEND_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define JAXDEND_CLONES
#endif

inline double Exp(double x) {
  // exp(x) for x <= 709 (callers clip larger arguments); 0 below -708 (the XLA exp gives a
  // subnormal there, below 3e-308 either way)
  const double lo = -708.0;
  const bool under = x < lo;
  x = under ? lo : x;
  const double shifter = 0x1.8p52;  // adding it rounds to an integer held in the low bits
  const double kd = x * 1.4426950408889634 + shifter;
  const double n = kd - shifter;
  double r = x - n * 6.93147180369123816490e-01;  // ln2 high part: n * hi is exact
  r = r - n * 1.90821492927058770002e-10;          // ln2 low part
  double p = 1.0 / 6227020800.0;                   // 1/13!
  p = p * r + 1.0 / 479001600.0;
  p = p * r + 1.0 / 39916800.0;
  p = p * r + 1.0 / 3628800.0;
  p = p * r + 1.0 / 362880.0;
  p = p * r + 1.0 / 40320.0;
  p = p * r + 1.0 / 5040.0;
  p = p * r + 1.0 / 720.0;
  p = p * r + 1.0 / 120.0;
  p = p * r + 1.0 / 24.0;
  p = p * r + 1.0 / 6.0;
  p = p * r + 0.5;
  p = p * r + 1.0;
  p = p * r + 1.0;
  int64_t kbits, sbits;
  std::memcpy(&kbits, &kd, sizeof kd);
  std::memcpy(&sbits, &shifter, sizeof shifter);
  const int64_t bits = (kbits - sbits + 1023) << 52;  // 2^n
  double scale;
  std::memcpy(&scale, &bits, sizeof bits);
  return under ? 0.0 : p * scale;
}

constexpr double kTrapMax = 700.0;
constexpr double kSeriesCut = 1e-2;
constexpr double kEHalf = 1.6487212707001282;   // exp(0.5)
constexpr double kEM15 = 0.22313016014842982;   // exp(-1.5)

inline double Abs(double x) { return x < 0.0 ? -x : x; }
inline double Min(double a, double b) { return a < b ? a : b; }

// z / (e - 1) for e = exp(min(z, 700)), as `_ratio_from_exp`
inline double Ratio(double z, double e) {
  const bool small = Abs(z) < kSeriesCut;
  const double z2 = z * z;
  const double series =
      1.0 - 0.5 * z + z2 * (1.0 / 12.0 + z2 * (-1.0 / 720.0 + z2 * (1.0 / 30240.0)));
  const double den = small ? 1.0 : e - 1.0;
  const double q = (small ? 1.0 : z) / den;
  return small ? series : (z > kTrapMax ? 0.0 : q);
}

// d/dz of z / (e^z - 1), as `_slope_from_exp`
inline double Slope(double z, double ratio, double e) {
  const bool small = Abs(z) < kSeriesCut;
  const double z2 = z * z;
  const double series = -0.5 + z * (1.0 / 6.0 + z2 * (-1.0 / 180.0 + z2 * (1.0 / 5040.0)));
  const double den = small ? 1.0 : e - 1.0;
  const double q = (1.0 - ratio * e) / den;
  return small ? series : (z > kTrapMax ? 0.0 : q);
}

struct Step {
  double x, e, dv, dk;
};

// one gate: x' = inf + (x - inf) e, e = exp(-k (a + b)), and (if parts) its derivatives
inline Step Gate(double x, double a, double b, double da, double db, double k) {
  const double s = a + b;
  const double inf = a / s;
  const double e = Exp(-k * s);
  const double gap = (x - inf) * e;
  const double ds = da + db;
  return {inf + gap, e, (1.0 - e) * (da - inf * ds) / s - gap * k * ds, -gap * s};
}

template <typename T, bool kParts>
JAXDEND_CLONES void Gates(int64_t count, double k, const T* __restrict m,
                          const T* __restrict h, const T* __restrict n,
                          const T* __restrict v, T* const* out_ptrs) {
  T* __restrict o[12];
  for (int j = 0; j < 12; ++j) o[j] = out_ptrs[j];
  T* __restrict o0 = o[0]; T* __restrict o1 = o[1]; T* __restrict o2 = o[2];
  T* __restrict o3 = o[3]; T* __restrict o4 = o[4]; T* __restrict o5 = o[5];
  T* __restrict o6 = o[6]; T* __restrict o7 = o[7]; T* __restrict o8 = o[8];
  T* __restrict o9 = o[9]; T* __restrict o10 = o[10]; T* __restrict o11 = o[11];
  for (int64_t i = 0; i < count; ++i) {
    const double vi = static_cast<double>(v[i]);
    const double u = vi + 65.0;
    const double z_m = (vi + 40.0) * -0.1;
    const double x_w = u * -0.0125;
    const double x_b = u * (-1.0 / 18.0);
    const double e_m = Exp(Min(z_m, kTrapMax));
    const double w = Exp(Min(x_w, 170.0));
    const double e_b = Exp(Min(x_b, kTrapMax));
    const double z_n = z_m - 1.5;
    const double e_n = e_m * kEM15;
    const double ratio_m = Ratio(z_m, e_m);
    const double ratio_n = Ratio(z_n, e_n);
    const double w2 = w * w;
    const double e_h = e_m * kEHalf;
    const double am = ratio_m, ah = 0.07 * (w2 * w2), an = 0.1 * ratio_n;
    const double bm = 4.0 * e_b, bh = 1.0 / (e_h + 1.0), bn = 0.125 * w;
    double dam = 0.0, dbm = 0.0, dah = 0.0, dbh = 0.0, dan = 0.0, dbn = 0.0;
    if (kParts) {
      dam = -0.1 * Slope(z_m, ratio_m, e_m);
      dbm = x_b < kTrapMax ? bm * (-1.0 / 18.0) : 0.0;
      dah = x_w < 170.0 ? ah * -0.05 : 0.0;
      dbh = z_m < kTrapMax ? 0.1 * bh * bh * e_h : 0.0;
      dan = -0.01 * Slope(z_n, ratio_n, e_n);
      dbn = x_w < 170.0 ? bn * -0.0125 : 0.0;
    }
    const Step sm = Gate(static_cast<double>(m[i]), am, bm, dam, dbm, k);
    const Step sh = Gate(static_cast<double>(h[i]), ah, bh, dah, dbh, k);
    const Step sn = Gate(static_cast<double>(n[i]), an, bn, dan, dbn, k);
    o0[i] = static_cast<T>(sm.x);
    o1[i] = static_cast<T>(sh.x);
    o2[i] = static_cast<T>(sn.x);
    if (kParts) {
      o3[i] = static_cast<T>(sm.e); o4[i] = static_cast<T>(sh.e); o5[i] = static_cast<T>(sn.e);
      o6[i] = static_cast<T>(sm.dv); o7[i] = static_cast<T>(sh.dv);
      o8[i] = static_cast<T>(sn.dv);
      o9[i] = static_cast<T>(sm.dk); o10[i] = static_cast<T>(sh.dk);
      o11[i] = static_cast<T>(sn.dk);
    }
  }
}

template <ffi::DataType DT, bool kParts>
ffi::Error Run(ffi::AnyBuffer m, ffi::AnyBuffer h, ffi::AnyBuffer n, ffi::AnyBuffer v,
               ffi::AnyBuffer k, ffi::RemainingRets rets) {
  using T = ffi::NativeType<DT>;
  const int64_t total = static_cast<int64_t>(v.element_count());
  const int64_t groups = static_cast<int64_t>(k.element_count());
  const size_t n_out = kParts ? 12 : 3;
  if (rets.size() != n_out) {
    return ffi::Error::InvalidArgument("jaxdend hh gates: wrong number of results");
  }
  if (static_cast<int64_t>(m.element_count()) != total ||
      static_cast<int64_t>(h.element_count()) != total ||
      static_cast<int64_t>(n.element_count()) != total || groups == 0 || total % groups != 0) {
    return ffi::Error::InvalidArgument("jaxdend hh gates: m, h, n, v and k differ in size");
  }
  if (m.element_type() != DT || h.element_type() != DT || n.element_type() != DT ||
      v.element_type() != DT || k.element_type() != DT) {
    return ffi::Error::InvalidArgument("jaxdend hh gates: m, h, n, v and k differ in dtype");
  }
  T* out[12];
  for (size_t j = 0; j < n_out; ++j) {
    auto r = rets.get<ffi::AnyBuffer>(j);
    if (r.has_error()) return r.error();
    if (static_cast<int64_t>((*r)->element_count()) != total || (*r)->element_type() != DT) {
      return ffi::Error::InvalidArgument("jaxdend hh gates: results differ from v");
    }
    out[j] = reinterpret_cast<T*>((*r)->untyped_data());
  }
  const T* mp = reinterpret_cast<const T*>(m.untyped_data());
  const T* hp = reinterpret_cast<const T*>(h.untyped_data());
  const T* np_ = reinterpret_cast<const T*>(n.untyped_data());
  const T* vp = reinterpret_cast<const T*>(v.untyped_data());
  const T* kp = reinterpret_cast<const T*>(k.untyped_data());
  const int64_t per = total / groups;
  for (int64_t gi = 0; gi < groups; ++gi) {
    const int64_t o = gi * per;
    T* outs[12];
    for (size_t j = 0; j < 12; ++j) outs[j] = j < n_out ? out[j] + o : out[0] + o;
    Gates<T, kParts>(per, static_cast<double>(kp[gi]), mp + o, hp + o, np_ + o, vp + o, outs);
  }
  return ffi::Error::Success();
}

}  // namespace

#define JAXDEND_HH_BIND                                                                   \
  ffi::Ffi::Bind()                                                                        \
      .Arg<ffi::AnyBuffer>()                                                              \
      .Arg<ffi::AnyBuffer>()                                                              \
      .Arg<ffi::AnyBuffer>()                                                              \
      .Arg<ffi::AnyBuffer>()                                                              \
      .Arg<ffi::AnyBuffer>()                                                              \
      .RemainingRets()

XLA_FFI_DEFINE_HANDLER_SYMBOL(JaxdendHHGatesF64, (Run<ffi::F64, false>), JAXDEND_HH_BIND);
XLA_FFI_DEFINE_HANDLER_SYMBOL(JaxdendHHGatesF32, (Run<ffi::F32, false>), JAXDEND_HH_BIND);
XLA_FFI_DEFINE_HANDLER_SYMBOL(JaxdendHHPartsF64, (Run<ffi::F64, true>), JAXDEND_HH_BIND);
XLA_FFI_DEFINE_HANDLER_SYMBOL(JaxdendHHPartsF32, (Run<ffi::F32, true>), JAXDEND_HH_BIND);
