// Launchers of the fused kernels. Every pointer is to contiguous memory on the
// launcher's device (host memory for *_cpu); shapes are validated in Python
// (ric_ext/ops) before a launcher is called. CUDA launchers enqueue on the
// caller's stream and never synchronise, so they are safe in graph capture.
#pragma once
#include <cstdint>
#include "common/elementwise.h"

namespace ric {

// CPU launchers (cpu/dispatch.cpp picks the best compiled ISA at run time).
#define RIC_CPU_ISA cpu
#include "cpu/kernels_cpu_decl.inc"
#undef RIC_CPU_ISA
const char* cpu_isa();  // "avx2" or "baseline": what the dispatcher selected

#ifdef RIC_WITH_CUDA
void keystream_bytes_cuda(const uint8_t* key, const uint8_t* nonces, uint8_t* out, int64_t batch,
                          int64_t nbytes, uint32_t counter, void* stream);
void keyed_uniform_cuda(const uint8_t* key, const uint8_t* nonces, float* out, int64_t batch,
                        int64_t n, uint32_t counter, bool tanh_space, void* stream);
template <typename T>
void mask_cuda(const T* e, const T* z, T* out, int64_t n, MaskConst<T> k, int mode, const int64_t* seed,
               void* stream);
template <typename T>
void mask_u8_cuda(const T* e, const T* z, uint8_t* out, int64_t n, MaskConst<T> k, void* stream);
template <typename T>
void mask_backward_cuda(const T* grad, const T* e, const T* z, T* ge, T* gz, int64_t n, MaskConst<T> k,
                        int mode, const int64_t* seed, void* stream);
template <typename T>
void unmask_cuda(const T* c, const T* z, T* out, int64_t n, T b, T inv, void* stream);
template <typename T>
void unmask_u8_cuda(const uint8_t* c, const T* z, T* out, int64_t n, T b, T inv, void* stream);
template <typename T>
void cw_margin_cuda(const T* logits, const int64_t* labels, T* out, int64_t rows, int64_t K, T kappa,
                    bool targeted, void* stream);
template <typename T>
void cw_margin_backward_cuda(const T* grad, const T* logits, const int64_t* labels, T* out, int64_t rows,
                             int64_t K, T kappa, bool targeted, void* stream);
template <typename T>
void adam_tanh_cuda(T* w, T* m, T* v, const T* grad, const uint8_t* active, T* adv, int64_t rows,
                    int64_t n, AdamConst c, bool grad_wrt_adv, void* stream);
// Device helpers used by the bindings.
int cuda_current_device();
void cuda_set_device(int device);
#endif

}  // namespace ric
