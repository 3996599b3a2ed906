// Run-time choice between the CPU kernel variants compiled for different ISAs
// (kernels_cpu.cpp built as ric::isa_base and, on x86-64, ric::isa_avx2); the
// bindings ask once, when the module loads. Both variants compute
// bit-identical results: the build disables FMA contraction, so AVX2 only
// widens the same IEEE operations.
#include <cstdlib>
#include <cstring>

#include "ops.h"

namespace ric {

// RIC_EXT_CPU_ISA=baseline forces the baseline variant (tests compare both).
bool cpu_use_avx2() {
#ifdef RIC_HAVE_AVX2_VARIANT
  static const bool ok = [] {
    const char* force = std::getenv("RIC_EXT_CPU_ISA");
    if (force && std::strcmp(force, "baseline") == 0) return false;
    return __builtin_cpu_supports("avx2") != 0;
  }();
  return ok;
#else
  return false;
#endif
}

const char* cpu_isa() { return cpu_use_avx2() ? "avx2" : "baseline"; }

}  // namespace ric
