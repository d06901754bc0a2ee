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
#include <vector>

#include "common.h"
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

template <typename T>
void SolveOne(int64_t n, const int64_t* parent, const int64_t* up, const int64_t* down,
              const T* d_in, const T* g, const T* b_in, T* v, T* inv_d) {
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

// Systems solved side by side in a batch (see SolveLanes).
constexpr int64_t kLanes = 8;

// Solves the systems first, ..., first + kLanes - 1 of a batch side by side: one system's
// elimination is a chain of dependent divisions, so on small trees (tens of nodes) a lone
// solve waits on their latency, while kLanes systems give the processor kLanes independent
// divisions per node (one vector instruction). The systems are copied node-major into `work`
// (3 n kLanes values); lanes past the last system repeat it and are not written back.
template <typename T>
JAXDEND_CLONES void SolveLanes(int64_t n, int64_t first, int64_t count, const int64_t* parent,
                               const int64_t* up, const int64_t* down, const T* d_in,
                               const T* g_in, const T* b_in, T* v_out, T* work) {
  T* __restrict inv_d = work;
  T* __restrict x = work + n * kLanes;
  T* __restrict g = work + 2 * n * kLanes;
  for (int64_t l = 0; l < kLanes; ++l) {
    const int64_t o = (first + l < count ? first + l : count - 1) * n;
    for (int64_t i = 0; i < n; ++i) {
      inv_d[i * kLanes + l] = d_in[o + i];
      x[i * kLanes + l] = b_in[o + i];
      g[i * kLanes + l] = g_in[o + i];
    }
  }
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
  for (int64_t l = 0; l < kLanes && first + l < count; ++l) {
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
  // side by side (see SolveLanes) while the node-major copies fit in a level-1 data cache;
  // larger trees are faster one at a time (1,080 nodes: 3.8 against 7.0 ns per node; the
  // crossover lies between 140 and 284 nodes in float64, measured by hand)
  if (batch >= kLanes / 2 && 3 * n * kLanes * static_cast<int64_t>(sizeof(T)) <= 32768) {
    std::vector<T> work(static_cast<size_t>(3 * n * kLanes));
    for (int64_t k = 0; k < batch; k += kLanes) {
      SolveLanes<T>(n, k, batch, parent.begin(), up.begin(), down.begin(), dp, gp, bp, vp,
                    work.data());
    }
    return ffi::Error::Success();
  }
  std::vector<T> work(static_cast<size_t>(n));
  for (int64_t k = 0; k < batch; ++k) {
    SolveOne<T>(n, parent.begin(), up.begin(), down.begin(), dp + k * n, gp + k * n,
                bp + k * n, vp + k * n, work.data());
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
