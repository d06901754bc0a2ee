// The exponential-Euler step of NEURON's `hh` gates as native CPU code: an XLA FFI handler,
// built on first use by jaxdend/solve/_native.py together with tree_solve.cc.
//
// Same formulas, in the same order of operations, as `_hh_exp_euler_parts` in
// jaxdend/channels/_hh.py (which documents them): per node the three rate exponentials, the
// six rates, and per gate x' = inf + (x - inf) exp(-k (a + b)) with k = dt q10 (the value only;
// derivatives stay in XLA, see _native.py). XLA runs these formulas as about ten separate loops per
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

// one gate: x' = inf + (x - inf) exp(-k (a + b)), inf = a / (a + b)
inline double Gate(double x, double a, double b, double k) {
  const double s = a + b;
  const double inf = a / s;
  return inf + (x - inf) * Exp(-k * s);
}

template <typename T>
JAXDEND_CLONES void Gates(int64_t count, double k, const T* __restrict m,
                          const T* __restrict h, const T* __restrict n,
                          const T* __restrict v, T* __restrict m_out, T* __restrict h_out,
                          T* __restrict n_out) {
  for (int64_t i = 0; i < count; ++i) {
    const double vi = static_cast<double>(v[i]);
    const double u = vi + 65.0;
    const double z_m = (vi + 40.0) * -0.1;
    const double e_m = Exp(Min(z_m, kTrapMax));
    const double w = Exp(Min(u * -0.0125, 170.0));
    const double e_b = Exp(Min(u * (-1.0 / 18.0), kTrapMax));
    const double w2 = w * w;
    const double am = Ratio(z_m, e_m), bm = 4.0 * e_b;
    const double ah = 0.07 * (w2 * w2), bh = 1.0 / (e_m * kEHalf + 1.0);
    const double an = 0.1 * Ratio(z_m - 1.5, e_m * kEM15), bn = 0.125 * w;
    m_out[i] = static_cast<T>(Gate(static_cast<double>(m[i]), am, bm, k));
    h_out[i] = static_cast<T>(Gate(static_cast<double>(h[i]), ah, bh, k));
    n_out[i] = static_cast<T>(Gate(static_cast<double>(n[i]), an, bn, k));
  }
}

template <ffi::DataType DT>
ffi::Error Run(ffi::AnyBuffer m, ffi::AnyBuffer h, ffi::AnyBuffer n, ffi::AnyBuffer v,
               ffi::AnyBuffer k, ffi::Result<ffi::AnyBuffer> m_out,
               ffi::Result<ffi::AnyBuffer> h_out, ffi::Result<ffi::AnyBuffer> n_out) {
  using T = ffi::NativeType<DT>;
  const int64_t total = static_cast<int64_t>(v.element_count());
  const int64_t groups = static_cast<int64_t>(k.element_count());
  for (const ffi::AnyBuffer* x : {&m, &h, &n}) {
    if (static_cast<int64_t>(x->element_count()) != total || x->element_type() != DT) {
      return ffi::Error::InvalidArgument("jaxdend hh gates: m, h, n and v differ");
    }
  }
  for (ffi::Result<ffi::AnyBuffer>* x : {&m_out, &h_out, &n_out}) {
    if (static_cast<int64_t>((*x)->element_count()) != total || (*x)->element_type() != DT) {
      return ffi::Error::InvalidArgument("jaxdend hh gates: results differ from v");
    }
  }
  if (v.element_type() != DT || k.element_type() != DT || groups == 0 || total % groups != 0) {
    return ffi::Error::InvalidArgument("jaxdend hh gates: v and k do not match");
  }
  const auto in = [](const ffi::AnyBuffer& x) {
    return reinterpret_cast<const T*>(x.untyped_data());
  };
  const auto out = [](ffi::Result<ffi::AnyBuffer>& x) {
    return reinterpret_cast<T*>(x->untyped_data());
  };
  const T* kp = in(k);
  const int64_t per = total / groups;
  for (int64_t g = 0; g < groups; ++g) {
    const int64_t o = g * per;
    Gates<T>(per, static_cast<double>(kp[g]), in(m) + o, in(h) + o, in(n) + o, in(v) + o,
             out(m_out) + o, out(h_out) + o, out(n_out) + o);
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
      .Ret<ffi::AnyBuffer>()                                                              \
      .Ret<ffi::AnyBuffer>()                                                              \
      .Ret<ffi::AnyBuffer>()

XLA_FFI_DEFINE_HANDLER_SYMBOL(JaxdendHHGatesF64, Run<ffi::F64>, JAXDEND_HH_BIND);
XLA_FFI_DEFINE_HANDLER_SYMBOL(JaxdendHHGatesF32, Run<ffi::F32>, JAXDEND_HH_BIND);
