// NEURON's `hh` rates and exponential-Euler gate step and its reverse step, per node, shared by
// hh_gates.cc (the gate step and reverse steps as XLA FFI handlers) and hh_run.cc (whole runs). The formulas and their
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

// z / (e^z - 1) and its derivative in z for e = exp(min(z, 700)), as `_ratio_from_exp` and
// `_slope_from_exp` (one division for both: the reverse step is bound by its divisions)
JAXDEND_INLINE void RatioSlope(double z, double e, double& ratio, double& slope) {
  const bool small = Abs(z) < kSeriesCut;
  const double z2 = z * z;
  const double r_series =
      1.0 - 0.5 * z + z2 * (1.0 / 12.0 + z2 * (-1.0 / 720.0 + z2 * (1.0 / 30240.0)));
  const double s_series = -0.5 + z * (1.0 / 6.0 + z2 * (-1.0 / 180.0 + z2 * (1.0 / 5040.0)));
  const double inv = 1.0 / (small ? 1.0 : e - 1.0);
  const double q = (small ? 1.0 : z) * inv;
  ratio = small ? r_series : (z > kTrapMax ? 0.0 : q);
  slope = small ? s_series : (z > kTrapMax ? 0.0 : (1.0 - ratio * e) * inv);
}

// One gate's step x' = inf + gap with gap = (x - inf) exp(-k s), s = a + b, inf = a / s: its
// intermediate values (the formulas of `_hh_exp_euler_parts`).
struct GateStep {
  double s, inv_s, inf, e, gap;
};

JAXDEND_INLINE GateStep StepParts(double x, double a, double b, double k) {
  GateStep g;
  g.s = a + b;
  g.inv_s = 1.0 / g.s;
  g.inf = a * g.inv_s;
  g.e = Exp(-k * g.s);
  g.gap = (x - g.inf) * g.e;
  return g;
}

// One gate's reverse step: given its `StepParts`, the slopes da, db (per mV) of its rates and
// the cotangent c of x', adds to the cotangents of v and k and returns the cotangent of x.
JAXDEND_INLINE double StepVjp(const GateStep& g, double da, double db, double k, double c,
                              double& cv, double& ck) {
  const double ds = da + db;
  cv += ((1.0 - g.e) * (da - g.inf * ds) * g.inv_s - g.gap * k * ds) * c;
  ck -= g.gap * g.s * c;
  return g.e * c;
}

// HH's six rates (1/ms) at v (mV) and their slopes (1/(ms mV)), in the order am, bm, ah, bh,
// an, bn (`_hh_rates_slopes`).
JAXDEND_INLINE void RatesSlopes(double vi, double* r, double* d) {
  const double u = vi + 65.0;
  const double z_m = (vi + 40.0) * -0.1;
  const double x_w = u * -0.0125;
  const double x_b = u * (-1.0 / 18.0);
  const double e_m = Exp(Min(z_m, kTrapMax));
  const double w = Exp(Min(x_w, 170.0));
  const double e_b = Exp(Min(x_b, kTrapMax));
  const double z_n = z_m - 1.5, e_n = e_m * kEM15;
  double r_m, s_m, r_n, s_n;
  RatioSlope(z_m, e_m, r_m, s_m);
  RatioSlope(z_n, e_n, r_n, s_n);
  const double w2 = w * w;
  const double e_h = e_m * kEHalf;
  r[0] = r_m;
  r[1] = 4.0 * e_b;
  r[2] = 0.07 * (w2 * w2);
  r[3] = 1.0 / (e_h + 1.0);
  r[4] = 0.1 * r_n;
  r[5] = 0.125 * w;
  d[0] = -0.1 * s_m;
  d[1] = x_b < kTrapMax ? r[1] * (-1.0 / 18.0) : 0.0;
  d[2] = x_w < 170.0 ? r[2] * -0.05 : 0.0;
  d[3] = z_m < kTrapMax ? 0.1 * r[3] * r[3] * e_h : 0.0;
  d[4] = -0.01 * s_n;
  d[5] = x_w < 170.0 ? r[5] * -0.0125 : 0.0;
}

// The gate step's reverse at one node: from the cotangents cm, ch, cn of m', h', n' (the step
// from m, h, n with k = dt q10 at v), those of m, h, n (returned in cm_out, ch_out, cn_out),
// and of v and k added to cv and ck (rates recomputed from v).
JAXDEND_INLINE void NodeGatesVjp(double m, double h, double n, double v, double k, double cm,
                                 double ch, double cn, double& cm_out, double& ch_out,
                                 double& cn_out, double& cv, double& ck) {
  double r[6], d[6];
  RatesSlopes(v, r, d);
  cm_out = StepVjp(StepParts(m, r[0], r[1], k), d[0], d[1], k, cm, cv, ck);
  ch_out = StepVjp(StepParts(h, r[2], r[3], k), d[2], d[3], k, ch, cv, ck);
  cn_out = StepVjp(StepParts(n, r[4], r[5], k), d[4], d[5], k, cn, cv, ck);
}

}  // namespace jaxdend

#endif  // JAXDEND_NATIVE_HH_H_
