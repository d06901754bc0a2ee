// NEURON's `hh` rates and exponential-Euler gate step, per node, shared by hh_gates.cc (the
// gate step as an XLA FFI handler) and hh_run.cc (whole forward runs). The formulas and their
// order of operations are those of `_hh_exp_euler_parts` in jaxdend/channels/_hh.py; exp below
// agrees with the correctly rounded value to about 1 ulp (degree-13 Taylor polynomial on
// |r| <= ln2/2 after Cody-Waite reduction; truncation < 5e-18). Arithmetic in double.
#ifndef JAXDEND_NATIVE_HH_H_
#define JAXDEND_NATIVE_HH_H_

#include <cstdint>
#include <cstring>

#include "common.h"

namespace jaxdend {

JAXDEND_INLINE double Exp(double x) {
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

JAXDEND_INLINE double Abs(double x) { return x < 0.0 ? -x : x; }
JAXDEND_INLINE double Min(double a, double b) { return a < b ? a : b; }

// z / (e - 1) for e = exp(min(z, 700)), as `_ratio_from_exp`
JAXDEND_INLINE double Ratio(double z, double e) {
  const bool small = Abs(z) < kSeriesCut;
  const double z2 = z * z;
  const double series =
      1.0 - 0.5 * z + z2 * (1.0 / 12.0 + z2 * (-1.0 / 720.0 + z2 * (1.0 / 30240.0)));
  const double den = small ? 1.0 : e - 1.0;
  const double q = (small ? 1.0 : z) / den;
  return small ? series : (z > kTrapMax ? 0.0 : q);
}

// one gate: x' = inf + (x - inf) exp(-k (a + b)), inf = a / (a + b)
JAXDEND_INLINE double Gate(double x, double a, double b, double k) {
  const double s = a + b;
  const double inf = a / s;
  return inf + (x - inf) * Exp(-k * s);
}

// The gate step of one node: m, h, n after a step with k = dt q10 (ms) at v (mV).
JAXDEND_INLINE void StepGates(double m, double h, double n, double vi, double k, double& m1,
                              double& h1, double& n1) {
  const double u = vi + 65.0;
  const double z_m = (vi + 40.0) * -0.1;
  const double e_m = Exp(Min(z_m, kTrapMax));
  const double w = Exp(Min(u * -0.0125, 170.0));
  const double e_b = Exp(Min(u * (-1.0 / 18.0), kTrapMax));
  const double w2 = w * w;
  const double am = Ratio(z_m, e_m), bm = 4.0 * e_b;
  const double ah = 0.07 * (w2 * w2), bh = 1.0 / (e_m * kEHalf + 1.0);
  const double an = 0.1 * Ratio(z_m - 1.5, e_m * kEM15), bn = 0.125 * w;
  m1 = Gate(m, am, bm, k);
  h1 = Gate(h, ah, bh, k);
  n1 = Gate(n, an, bn, k);
}

}  // namespace jaxdend

#endif  // JAXDEND_NATIVE_HH_H_
