// Shared by jaxdend's native sources (tree_solve.cc, hh_gates.cc); jaxdend/solve/_native.py
// builds them together and hashes this header with them.
#ifndef JAXDEND_NATIVE_COMMON_H_
#define JAXDEND_NATIVE_COMMON_H_

// Function clones for AVX-512 and AVX2, picked at load time (GCC on x86-64 Linux), so the
// vectorised loops use the widest registers the machine has.
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define JAXDEND_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define JAXDEND_CLONES
#endif

// Forced inlining: the vectorised loops vectorise only if every helper is inlined into them.
#if defined(__GNUC__)
#define JAXDEND_INLINE inline __attribute__((always_inline))
#else
#define JAXDEND_INLINE inline
#endif

// Before a loop: its iterations touch distinct elements (no aliasing between its arrays), so
// the compiler may vectorise it without run-time overlap checks (which it gives up on past a
// few arrays).
#if defined(__clang__)
#define JAXDEND_IVDEP _Pragma("clang loop vectorize(assume_safety)")
#elif defined(__GNUC__)
#define JAXDEND_IVDEP _Pragma("GCC ivdep")
#else
#define JAXDEND_IVDEP
#endif

#endif  // JAXDEND_NATIVE_COMMON_H_
