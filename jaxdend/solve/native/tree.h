// The tree solves (Hines elimination in the orders `up` and `down`; see tree_solve.cc) of one
// system and of kLanes systems side by side, shared by tree_solve.cc and hh_run.cc.
#ifndef JAXDEND_NATIVE_TREE_H_
#define JAXDEND_NATIVE_TREE_H_

#include <cstdint>
#include <cstring>

#include "common.h"

namespace jaxdend {

// Systems solved side by side (see SolveLanesInPlace).
constexpr int64_t kLanes = 8;

// M v = b for diagonal d_in and M[i, parent[i]] = M[parent[i], i] = -g[i]; inv_d: n values of
// scratch (1/d of every eliminated node on return); v may not alias d_in or g.
// No fused multiply-adds in the solves here: the lone solve and the side-by-side one then round
// identically, so a cell's voltages do not depend on the size of the batch it is solved in.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC push_options
#pragma GCC optimize("fp-contract=off")
#endif
template <typename T>
inline void SolveOne(int64_t n, const int64_t* parent, const int64_t* up, const int64_t* down,
                     const T* d_in, const T* g, const T* b_in, T* v, T* inv_d) {
#if defined(__clang__)
#pragma clang fp contract(off)
#endif
  // v doubles as the eliminated right-hand side until the substitution overwrites it
  for (int64_t i = 0; i < n; ++i) {
    inv_d[i] = d_in[i];
    v[i] = b_in[i];
  }
  for (int64_t k = 0; k < n - 1; ++k) {
    const int64_t i = up[k];
    const int64_t p = parent[i];
    const T r = T(1) / inv_d[i];
    const T f = g[i] * r;
    inv_d[i] = r;
    inv_d[p] -= g[i] * f;
    v[p] += f * v[i];
  }
  v[0] = v[0] / inv_d[0];
  for (int64_t k = 0; k < n - 1; ++k) {
    const int64_t i = down[k];
    v[i] = (v[i] + g[i] * v[parent[i]]) * inv_d[i];
  }
}

// kLanes systems side by side, stored node-major (node i of system l at i * kLanes + l): one
// system's elimination is a chain of dependent divisions, so on small trees (tens of nodes) a
// lone solve waits on their latency, while kLanes systems give the processor kLanes
// independent divisions per node (one vector instruction). inv_d: the diagonals in, 1/d of
// every eliminated node out; x: the right-hand sides in, the solutions out; g as in SolveOne.
// A function of its own (with clones for the wider instruction sets), not inlined into
// callers compiled with other floating-point contraction.
template <typename T>
JAXDEND_CLONES __attribute__((noinline)) void SolveLanesInPlace(
    int64_t n, const int64_t* parent, const int64_t* up, const int64_t* down,
    T* __restrict inv_d, T* __restrict x, const T* __restrict g) {
#if defined(__clang__)
#pragma clang fp contract(off)
#endif
  // one vector per node (GCC/Clang vector extension; the compiler lowers it to the widest
  // registers of the function clone)
  typedef T V __attribute__((vector_size(sizeof(T) * kLanes)));
  const auto load = [](const T* p) { V a; std::memcpy(&a, p, sizeof a); return a; };
  const auto store = [](T* p, V a) { std::memcpy(p, &a, sizeof a); };
  for (int64_t k = 0; k < n - 1; ++k) {
    const int64_t i = up[k] * kLanes;
    const int64_t p = parent[up[k]] * kLanes;
    const V r = T(1) / load(inv_d + i);
    const V gi = load(g + i);
    const V f = gi * r;
    store(inv_d + i, r);
    store(inv_d + p, load(inv_d + p) - gi * f);
    store(x + p, load(x + p) + f * load(x + i));
  }
  store(x, load(x) / load(inv_d));
  for (int64_t k = 0; k < n - 1; ++k) {
    const int64_t i = down[k] * kLanes;
    const int64_t p = parent[down[k]] * kLanes;
    store(x + i, (load(x + i) + load(g + i) * load(x + p)) * load(inv_d + i));
  }
}
// M x = b again for a matrix SolveOne or SolveLanesInPlace has eliminated, given the inv_d
// they left (1/pivot of every non-root node, the root's pivot): x holds b on entry and the
// solution on return; L systems side by side (node i of system l at i * L + l), L = 1 or
// kLanes. The same operations, in the same order, as those solves' right-hand side.
template <typename T, int64_t L>
JAXDEND_CLONES __attribute__((noinline)) void SolveFactored(
    int64_t n, const int64_t* parent, const int64_t* up, const int64_t* down,
    const T* __restrict inv_d, const T* __restrict g, T* __restrict x) {
#if defined(__clang__)
#pragma clang fp contract(off)
#endif
  for (int64_t k = 0; k < n - 1; ++k) {
    const int64_t i = up[k] * L, p = parent[up[k]] * L;
    JAXDEND_IVDEP
    for (int64_t l = 0; l < L; ++l) {
      const T f = g[i + l] * inv_d[i + l];
      x[p + l] = x[p + l] + f * x[i + l];
    }
  }
  for (int64_t l = 0; l < L; ++l) x[l] = x[l] / inv_d[l];
  for (int64_t k = 0; k < n - 1; ++k) {
    const int64_t i = down[k] * L, p = parent[down[k]] * L;
    JAXDEND_IVDEP
    for (int64_t l = 0; l < L; ++l) x[i + l] = (x[i + l] + g[i + l] * x[p + l]) * inv_d[i + l];
  }
}
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC pop_options
#endif

}  // namespace jaxdend

#endif  // JAXDEND_NATIVE_TREE_H_
