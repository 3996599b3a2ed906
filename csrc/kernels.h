// Launchers of the fused kernels. Every pointer is to contiguous memory on the
// launcher's device (host memory for *_cpu); shapes are validated in Python
// (ric_ext/ops) before a launcher is called. CUDA launchers enqueue on the
// caller's stream and never synchronise, so they are safe in graph capture.
#pragma once
#include <cstdint>
#include "common/elementwise.h"

namespace ric {

// ---- keyed noise (ChaCha20) ----------------------------------------------
// out[b, :nbytes] = keystream bytes of key with nonces[b] from block `counter`.
void keystream_bytes_cpu(const uint8_t* key, const uint8_t* nonces, uint8_t* out, int64_t batch,
                         int64_t nbytes, uint32_t counter);
// out[b, i] = word_to_unit(word i of the keystream); tanh_space: atanh(2u-1).
void keyed_uniform_cpu(const uint8_t* key, const uint8_t* nonces, float* out, int64_t batch,
                       int64_t n, uint32_t counter, bool tanh_space);

// ---- mask / unmask --------------------------------------------------------
// seed: {seed, offset} of the dither stream (read on the kernel's device).
template <typename T>
void mask_cpu(const T* e, const T* z, T* out, int64_t n, MaskConst<T> k, int mode, const int64_t* seed);
template <typename T>
void mask_u8_cpu(const T* e, const T* z, uint8_t* out, int64_t n, MaskConst<T> k);
template <typename T>
void mask_backward_cpu(const T* grad, const T* e, const T* z, T* ge, T* gz, int64_t n, MaskConst<T> k,
                       int mode, const int64_t* seed);
template <typename T>
void unmask_cpu(const T* c, const T* z, T* out, int64_t n, T b, T inv);
template <typename T>
void unmask_u8_cpu(const uint8_t* c, const T* z, T* out, int64_t n, T b, T inv);

// ---- C&W margin -----------------------------------------------------------
template <typename T>
void cw_margin_cpu(const T* logits, const int64_t* labels, T* out, int64_t rows, int64_t K, T kappa,
                   bool targeted);
template <typename T>
void cw_margin_backward_cpu(const T* grad, const T* logits, const int64_t* labels, T* out, int64_t rows,
                            int64_t K, T kappa, bool targeted);

// ---- fused tanh-space Adam --------------------------------------------------
// w, m, v: (rows, n) updated in place where active[row] != 0; adv = (tanh(w)+1)/2
// for every row. grad_wrt_adv: grad is d loss / d adv (chain rule done inside).
template <typename T>
void adam_tanh_cpu(T* w, T* m, T* v, const T* grad, const uint8_t* active, T* adv, int64_t rows,
                   int64_t n, AdamConst c, bool grad_wrt_adv);

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
