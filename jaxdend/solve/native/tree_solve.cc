// jaxdend's tree solve as native CPU code: an XLA FFI handler, built on first use by
// jaxdend/solve/_native.py (any C++17 compiler; no library besides the FFI headers that ship
// with jaxlib).
//
// Solves M v = b for the symmetric matrix of a tree in Hines order: diagonal d, and
// M[i, parent[i]] = M[parent[i], i] = -g[i] (g[0] unused). Gaussian elimination from the
// leaves to the root, then substitution from the root to the leaves: exact and O(n).
//
// Node order: `up` lists the non-root nodes so that every node comes after all of its
// children (grouped by height, leaves first), `down` lists them so that every node comes
// after its parent (grouped by depth). Consecutive nodes of one group do not depend on each
// other, so the processor overlaps their divisions; plain Hines order (n-1 down to 1) would
// chain every division of a cable to the previous one. The elimination keeps 1/d of every
// node for the substitution (one division per node in all).
//
// Batches: the buffers hold `batch` independent systems of n nodes one after another
// (leading dimensions flattened); all share the tree.

#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <type_traits>
#include <utility>
#include <vector>

#include "common.h"
#include "tree.h"
#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

// No fused multiply-adds here: the lone solve (SolveOne) and the side-by-side one (SolveLanes,
// compiled for wider instruction sets) then round identically, so a cell's voltages do not
// depend on the size of the batch it is simulated in.
#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

namespace {

using jaxdend::kLanes;
using jaxdend::SolveLanesInPlace;
using jaxdend::SolveOne;

// A vector shuffle (GCC / Clang vector extensions): the elements at the indices `...` of
// a and b laid end to end
#if defined(__clang__)
#define JAXDEND_SHUFFLE(M, a, b, ...) __builtin_shufflevector(a, b, __VA_ARGS__)
#else
#define JAXDEND_SHUFFLE(M, a, b, ...) __builtin_shuffle(a, b, M{__VA_ARGS__})
#endif

// Transposes 8 vectors of 8 elements in place (r[l][j] -> r[j][l]) in three rounds of
// shuffles; M: integer vectors of V's shape (the shuffle masks).
template <typename V, typename M>
JAXDEND_INLINE void Transpose8(V* r) {
  V t[8], u[8];
  for (int k = 0; k < 8; k += 2) {
    t[k] = JAXDEND_SHUFFLE(M, r[k], r[k + 1], 0, 8, 2, 10, 4, 12, 6, 14);
    t[k + 1] = JAXDEND_SHUFFLE(M, r[k], r[k + 1], 1, 9, 3, 11, 5, 13, 7, 15);
  }
  for (int k = 0; k < 8; k += 4) {
    u[k] = JAXDEND_SHUFFLE(M, t[k], t[k + 2], 0, 1, 8, 9, 4, 5, 12, 13);
    u[k + 2] = JAXDEND_SHUFFLE(M, t[k], t[k + 2], 2, 3, 10, 11, 6, 7, 14, 15);
    u[k + 1] = JAXDEND_SHUFFLE(M, t[k + 1], t[k + 3], 0, 1, 8, 9, 4, 5, 12, 13);
    u[k + 3] = JAXDEND_SHUFFLE(M, t[k + 1], t[k + 3], 2, 3, 10, 11, 6, 7, 14, 15);
  }
  for (int j = 0; j < 4; ++j) {
    r[j] = JAXDEND_SHUFFLE(M, u[j], u[j + 4], 0, 1, 2, 3, 8, 9, 10, 11);
    r[j + 4] = JAXDEND_SHUFFLE(M, u[j], u[j + 4], 4, 5, 6, 7, 12, 13, 14, 15);
  }
}

// Solves the systems first, ..., first + kLanes - 1 of a batch side by side: one system's
// elimination is a chain of dependent divisions, so on small trees (tens of nodes) a lone
// solve waits on their latency, while kLanes systems give the processor kLanes independent
// divisions per node (one vector instruction). The systems are copied node-major into `work`
// (3 n kLanes values) and back, eight nodes at a time through `Transpose8`; lanes past the
// last system repeat it and are not written back.
template <typename T>
JAXDEND_CLONES void SolveLanes(int64_t n, int64_t first, int64_t count, const int64_t* parent,
                               const int64_t* up, const int64_t* down, const T* d_in,
                               const T* g_in, const T* b_in, T* v_out, T* work) {
  T* __restrict inv_d = work;
  T* __restrict x = work + n * kLanes;
  T* __restrict g = work + 2 * n * kLanes;
  // one vector per node (GCC/Clang vector extension; the compiler lowers it to the widest
  // registers of the function clone)
  typedef T V __attribute__((vector_size(sizeof(T) * kLanes)));
  typedef std::conditional_t<sizeof(T) == 8, int64_t, int32_t> I;
  typedef I M __attribute__((vector_size(sizeof(T) * kLanes)));
  const auto load = [](const T* p) { V a; std::memcpy(&a, p, sizeof a); return a; };
  const auto store = [](T* p, V a) { std::memcpy(p, &a, sizeof a); };
  int64_t o[kLanes];
  for (int64_t l = 0; l < kLanes; ++l) o[l] = (first + l < count ? first + l : count - 1) * n;
  // node-major copies, 8 nodes of the 8 systems at a time through a register transpose (an
  // element-wise copy took half of a 50-node batch's solve)
  const int64_t whole = n - n % kLanes;
  for (const auto& [src, dst] : {std::pair<const T*, T*>{d_in, inv_d}, {b_in, x}, {g_in, g}}) {
    for (int64_t i = 0; i < whole; i += kLanes) {
      V r[kLanes];
      for (int64_t l = 0; l < kLanes; ++l) r[l] = load(src + o[l] + i);
      Transpose8<V, M>(r);
      for (int64_t j = 0; j < kLanes; ++j) store(dst + (i + j) * kLanes, r[j]);
    }
    for (int64_t i = whole; i < n; ++i) {
      for (int64_t l = 0; l < kLanes; ++l) dst[i * kLanes + l] = src[o[l] + i];
    }
  }
  SolveLanesInPlace<T>(n, parent, up, down, inv_d, x, g);
  if (first + kLanes <= count) {
    for (int64_t i = 0; i < whole; i += kLanes) {
      V r[kLanes];
      for (int64_t j = 0; j < kLanes; ++j) r[j] = load(x + (i + j) * kLanes);
      Transpose8<V, M>(r);
      for (int64_t l = 0; l < kLanes; ++l) store(v_out + o[l] + i, r[l]);
    }
    for (int64_t i = whole; i < n; ++i) {
      for (int64_t l = 0; l < kLanes; ++l) v_out[o[l] + i] = x[i * kLanes + l];
    }
    return;
  }
  for (int64_t l = 0; first + l < count; ++l) {
    T* v = v_out + (first + l) * n;
    for (int64_t i = 0; i < n; ++i) v[i] = x[i * kLanes + l];
  }
}

template <ffi::DataType DT>
ffi::Error TreeSolve(ffi::AnyBuffer d, ffi::AnyBuffer g, ffi::AnyBuffer b,
                     ffi::Span<const int64_t> parent, ffi::Span<const int64_t> up,
                     ffi::Span<const int64_t> down, ffi::Result<ffi::AnyBuffer> v) {
  using T = ffi::NativeType<DT>;
  const int64_t n = static_cast<int64_t>(parent.size());
  const int64_t total = static_cast<int64_t>(v->element_count());
  if (n == 0 || total % n != 0 || static_cast<int64_t>(up.size()) != n - 1 ||
      static_cast<int64_t>(down.size()) != n - 1) {
    return ffi::Error::InvalidArgument("jaxdend tree solve: inconsistent tree layout");
  }
  if (static_cast<int64_t>(d.element_count()) != total ||
      static_cast<int64_t>(g.element_count()) != total ||
      static_cast<int64_t>(b.element_count()) != total) {
    return ffi::Error::InvalidArgument("jaxdend tree solve: d, g, b and v differ in size");
  }
  if (d.element_type() != DT || g.element_type() != DT || b.element_type() != DT ||
      v->element_type() != DT) {
    return ffi::Error::InvalidArgument("jaxdend tree solve: d, g, b and v differ in dtype");
  }
  const T* dp = reinterpret_cast<const T*>(d.untyped_data());
  const T* gp = reinterpret_cast<const T*>(g.untyped_data());
  const T* bp = reinterpret_cast<const T*>(b.untyped_data());
  T* vp = reinterpret_cast<T*>(v->untyped_data());
  const int64_t batch = total / n;
  // Whole groups of kLanes systems side by side (SolveLanes), the rest one at a time, or side
  // by side too when they are at least kLanes / 2 and small enough for the level-1 data cache
  // (session 13, by hand, float64, batch 50: side by side 2.1 against 2.9 ns per node on
  // 1,080 nodes, 2.3 / 2.9 on 930, 2.8 / 3.4 on 1,953, 4.3 / 5.4 on 9,212; but a lone group
  // of 4 on 1,080 nodes 20.4 against 13.1 us).
  const int64_t grouped = batch - batch % kLanes;
  const bool small = 3 * n * kLanes * static_cast<int64_t>(sizeof(T)) <= 32768;
  const int64_t lanes_end = batch - grouped >= kLanes / 2 && small ? batch : grouped;
  if (lanes_end > 0) {
    std::vector<T> work(static_cast<size_t>(3 * n * kLanes));
    for (int64_t k = 0; k < lanes_end; k += kLanes) {
      SolveLanes<T>(n, k, lanes_end, parent.begin(), up.begin(), down.begin(), dp, gp, bp, vp,
                    work.data());
    }
  }
  if (lanes_end < batch) {
    std::vector<T> work(static_cast<size_t>(n));
    for (int64_t k = lanes_end; k < batch; ++k) {
      SolveOne<T>(n, parent.begin(), up.begin(), down.begin(), dp + k * n, gp + k * n,
                  bp + k * n, vp + k * n, work.data());
    }
  }
  return ffi::Error::Success();
}

}  // namespace

#define JAXDEND_BIND                                                                      \
  ffi::Ffi::Bind()                                                                        \
      .Arg<ffi::AnyBuffer>()                                                              \
      .Arg<ffi::AnyBuffer>()                                                              \
      .Arg<ffi::AnyBuffer>()                                                              \
      .Attr<ffi::Span<const int64_t>>("parent")                                           \
      .Attr<ffi::Span<const int64_t>>("up")                                               \
      .Attr<ffi::Span<const int64_t>>("down")                                             \
      .Ret<ffi::AnyBuffer>()

XLA_FFI_DEFINE_HANDLER_SYMBOL(JaxdendTreeSolveF64, TreeSolve<ffi::F64>, JAXDEND_BIND);
XLA_FFI_DEFINE_HANDLER_SYMBOL(JaxdendTreeSolveF32, TreeSolve<ffi::F32>, JAXDEND_BIND);
