// The op table: every launcher of the native core is declared here, once.
//
// A launcher takes raw pointers to contiguous memory on its device (host
// memory on the CPU) plus sizes and plain scalars; Python (ric_ext/ops) has
// validated device, dtype, shape and contiguity before it is called. From this
// table the preprocessor makes
//   - the declarations of each CPU ISA variant (ric::isa_base, ric::isa_avx2),
//     defined in cpu/kernels_cpu.cpp and instantiated there for float and double;
//   - the declarations of the CUDA launchers (NAME_cuda, the caller's
//     cudaStream_t appended), defined and instantiated in cuda/kernels_cuda.cu;
//   - the Python bindings ric_ext._C.NAME (bindings.cpp), which pick the CPU
//     variant or the CUDA launcher by device.
// Adding an op: one line here, its CPU loop, its CUDA kernel (CONTRIBUTING.md).
// CUDA launchers enqueue on the caller's stream and never synchronise or
// allocate, so they are safe in CUDA graph capture.
#pragma once
#include <cstdint>

#include "common/elementwise.h"

// Ops without a float type: X(name, (parameters)).
#define RIC_OPS(X)                                                                                                     \
  /* out[b, :nbytes] = ChaCha20 keystream bytes of key with nonces[b], from block `counter` */                         \
  X(keystream_bytes,                                                                                                   \
    (const uint8_t* key, const uint8_t* nonces, uint8_t* out, int64_t batch, int64_t nbytes, uint32_t counter))        \
  /* out[b, i] = word_to_unit(keystream word i); tanh_space: atanh(2u - 1) */                                          \
  X(keyed_uniform, (const uint8_t* key, const uint8_t* nonces, float* out, int64_t batch, int64_t n, uint32_t counter, \
                    bool tanh_space))                                                                                  \
  /* the keyed pad (docs/scheme.md#pad): out = pad_val(in, k, a), or unpad_val with `inverse`; k = keyed_uniform */    \
  X(keyed_pad, (const uint8_t* key, const uint8_t* nonces, const float* in, float* out, int64_t batch, int64_t n,      \
                double a, bool inverse))                                                                               \
  /* the keyed digit pad (docs/scheme.md#digits): out = (in + k) mod base, or with `inverse` */                        \
  /* ((in mod base) - k) mod base; k = word_to_digit(keystream word, base), counter 0 */                               \
  X(keyed_digit_pad, (const uint8_t* key, const uint8_t* nonces, const uint8_t* in, uint8_t* out, int64_t batch,       \
                      int64_t n, int64_t base, bool inverse))

// Ops over T = float or double: X(name, (parameters using T)).
// mask modes: 0 none, 1 train (dither from seed = {seed, offset}, read on the
// kernel's device), 2 eval (rounding). Scalars arrive as double and are
// rounded to T once, as PyTorch rounds a Python-float scalar.
#define RIC_OPS_T(X, T)                                                                                                \
  X(mask, (const T* e, const T* z, T* out, int64_t n, double lam, int mode, const int64_t* seed))                      \
  X(mask_u8, (const T* e, const T* z, uint8_t* out, int64_t n, double lam))                                            \
  X(mask_backward,                                                                                                     \
    (const T* grad, const T* e, const T* z, T* ge, T* gz, int64_t n, double lam, int mode, const int64_t* seed))       \
  X(unmask, (const T* c, const T* z, T* out, int64_t n, double lam))                                                   \
  X(unmask_u8, (const uint8_t* c, const T* z, T* out, int64_t n, double lam))                                          \
  X(cw_margin, (const T* logits, const int64_t* labels, T* out, int64_t rows, int64_t K, double kappa, bool targeted)) \
  X(cw_margin_backward, (const T* grad, const T* logits, const int64_t* labels, T* out, int64_t rows, int64_t K,       \
                         double kappa, bool targeted))                                                                 \
  /* w, m, v: (rows, n) updated in place where active[row] != 0; adv = (tanh(w) + 1) / 2 for every   */                \
  /* row. grad_wrt_adv: grad is d loss / d adv (the chain rule is applied inside). step >= 1.        */                \
  X(adam_tanh, (T * w, T * m, T * v, const T* grad, const uint8_t* active, T* adv, int64_t rows, int64_t n, double lr, \
                double beta1, double beta2, double eps, int64_t step, bool grad_wrt_adv))

// ---- what the table generates ------------------------------------------------
#define RIC_WITH_STREAM(...) (__VA_ARGS__, void* stream)
#define RIC_DECLARE(name, params) void name params;
#define RIC_DECLARE_T(name, params) \
  template <typename T>             \
  void name params;
#define RIC_DECLARE_CUDA(name, params) void name##_cuda RIC_WITH_STREAM params;
#define RIC_DECLARE_CUDA_T(name, params) \
  template <typename T>                  \
  void name##_cuda RIC_WITH_STREAM params;
#define RIC_INSTANTIATE_T(name, params) template void name params;
#define RIC_INSTANTIATE_CUDA_T(name, params) template void name##_cuda RIC_WITH_STREAM params;

namespace ric {

// CPU variants: cpu/kernels_cpu.cpp is compiled once per ISA into its own namespace.
namespace isa_base {
RIC_OPS(RIC_DECLARE)
RIC_OPS_T(RIC_DECLARE_T, T)
}  // namespace isa_base
namespace isa_avx2 {
RIC_OPS(RIC_DECLARE)
RIC_OPS_T(RIC_DECLARE_T, T)
}  // namespace isa_avx2

bool cpu_use_avx2();    // which variant the dispatcher (cpu/dispatch.cpp) picks
const char* cpu_isa();  // "avx2" or "baseline"

#ifdef RIC_WITH_CUDA
RIC_OPS(RIC_DECLARE_CUDA)
RIC_OPS_T(RIC_DECLARE_CUDA_T, T)
int cuda_current_device();
void cuda_set_device(int device);
#endif

}  // namespace ric
