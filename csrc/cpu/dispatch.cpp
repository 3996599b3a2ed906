// Run-time choice between the CPU kernel variants compiled for different ISAs
// (kernels_cpu.cpp built as ric::isa_base and, on x86-64, ric::isa_avx2).
// Both variants compute bit-identical results: the build disables FMA
// contraction, so AVX2 only widens the same IEEE operations.
#include <cstdlib>
#include <cstring>

#include "cpu/instantiate.h"
#include "kernels.h"

namespace ric {

#define RIC_CPU_ISA isa_base
#include "cpu/kernels_cpu_decl.inc"
#undef RIC_CPU_ISA
#ifdef RIC_HAVE_AVX2_VARIANT
#define RIC_CPU_ISA isa_avx2
#include "cpu/kernels_cpu_decl.inc"
#undef RIC_CPU_ISA
#endif

namespace {
// RIC_EXT_CPU_ISA=baseline forces the baseline variant (tests compare both).
bool use_avx2() {
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
}  // namespace

const char* cpu_isa() { return use_avx2() ? "avx2" : "baseline"; }

#ifdef RIC_HAVE_AVX2_VARIANT
#define RIC_PICK(fn, ...) (use_avx2() ? isa_avx2::fn(__VA_ARGS__) : isa_base::fn(__VA_ARGS__))
#else
#define RIC_PICK(fn, ...) isa_base::fn(__VA_ARGS__)
#endif

namespace cpu {

void keystream_bytes(const uint8_t* key, const uint8_t* nonces, uint8_t* out, int64_t batch, int64_t nbytes,
                     uint32_t counter) {
  RIC_PICK(keystream_bytes, key, nonces, out, batch, nbytes, counter);
}
void keyed_uniform(const uint8_t* key, const uint8_t* nonces, float* out, int64_t batch, int64_t n,
                   uint32_t counter, bool tanh_space) {
  RIC_PICK(keyed_uniform, key, nonces, out, batch, n, counter, tanh_space);
}
template <typename T>
void mask(const T* e, const T* z, T* out, int64_t n, MaskConst<T> k, int mode, const int64_t* seed) {
  RIC_PICK(mask<T>, e, z, out, n, k, mode, seed);
}
template <typename T>
void mask_u8(const T* e, const T* z, uint8_t* out, int64_t n, MaskConst<T> k) {
  RIC_PICK(mask_u8<T>, e, z, out, n, k);
}
template <typename T>
void mask_backward(const T* grad, const T* e, const T* z, T* ge, T* gz, int64_t n, MaskConst<T> k, int mode,
                   const int64_t* seed) {
  RIC_PICK(mask_backward<T>, grad, e, z, ge, gz, n, k, mode, seed);
}
template <typename T>
void unmask(const T* c, const T* z, T* out, int64_t n, T b, T inv) {
  RIC_PICK(unmask<T>, c, z, out, n, b, inv);
}
template <typename T>
void unmask_u8(const uint8_t* c, const T* z, T* out, int64_t n, T b, T inv) {
  RIC_PICK(unmask_u8<T>, c, z, out, n, b, inv);
}
template <typename T>
void cw_margin(const T* logits, const int64_t* labels, T* out, int64_t rows, int64_t K, T kappa, bool targeted) {
  RIC_PICK(cw_margin<T>, logits, labels, out, rows, K, kappa, targeted);
}
template <typename T>
void cw_margin_backward(const T* grad, const T* logits, const int64_t* labels, T* out, int64_t rows, int64_t K,
                        T kappa, bool targeted) {
  RIC_PICK(cw_margin_backward<T>, grad, logits, labels, out, rows, K, kappa, targeted);
}
template <typename T>
void adam_tanh(T* w, T* m, T* v, const T* grad, const uint8_t* active, T* adv, int64_t rows, int64_t n,
               AdamConst c, bool grad_wrt_adv) {
  RIC_PICK(adam_tanh<T>, w, m, v, grad, active, adv, rows, n, c, grad_wrt_adv);
}

RIC_CPU_INSTANTIATE

}  // namespace cpu
}  // namespace ric
