// Declarations of one ISA variant of the CPU kernels (RIC_CPU_ISA is set by
// the build to isa_base or isa_avx2).
#pragma once
#include "common/elementwise.h"

namespace ric {
#include "cpu/kernels_cpu_decl.inc"
}  // namespace ric
