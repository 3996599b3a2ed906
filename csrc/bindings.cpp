// pybind11 module ric_ext._C: thin, torch-free glue. Tensors cross as raw
// data pointers (Python ints) plus sizes; the caller (ric_ext/ops) has already
// validated device, dtype, shape and contiguity. `device` is -1 for host
// memory, else the CUDA device index; `stream` is the caller's cudaStream_t.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <array>
#include <cmath>
#include <stdexcept>
#include <string>

#include "common/chacha20.h"
#include "common/philox.h"
#include "kernels.h"

namespace py = pybind11;
using ric::AdamConst;
using ric::MaskConst;

namespace {

template <typename T>
T* ptr(uintptr_t p) { return reinterpret_cast<T*>(p); }

bool is_f64(const std::string& dtype) {
  if (dtype == "float32") return false;
  if (dtype == "float64") return true;
  throw std::invalid_argument("ric_ext._C: unsupported dtype '" + dtype + "' (float32 or float64)");
}

#ifdef RIC_WITH_CUDA
// Runs `fn` with the CUDA runtime's current device set to `device`, restoring
// it afterwards (our statically linked runtime keeps its own notion of it).
template <typename F>
void on_device(int device, F&& fn) {
  const int prev = ric::cuda_current_device();
  if (prev != device) ric::cuda_set_device(device);
  try {
    fn();
  } catch (...) {
    if (prev != device) ric::cuda_set_device(prev);
    throw;
  }
  if (prev != device) ric::cuda_set_device(prev);
}
#define RIC_DISPATCH(device, cpu_call, cuda_call)          \
  do {                                                     \
    if ((device) < 0) { cpu_call; }                        \
    else on_device((device), [&] { cuda_call; });          \
  } while (0)
#else
#define RIC_DISPATCH(device, cpu_call, cuda_call)                                         \
  do {                                                                                    \
    if ((device) < 0) { cpu_call; }                                                       \
    else throw std::runtime_error("ric_ext was built without CUDA kernels (see ric_ext.build_info())"); \
  } while (0)
#endif

template <typename T>
MaskConst<T> mask_const(double lam) { return MaskConst<T>{T(1.0 - lam), T(lam)}; }

AdamConst adam_const(double lr, double beta1, double beta2, double eps, int64_t step) {
  if (step < 1) throw std::invalid_argument("ric_ext._C.adam_tanh: step must be >= 1");
  AdamConst c;
  c.w1 = 1.0 - beta1;
  c.beta2 = beta2;
  c.one_minus_beta2 = 1.0 - beta2;
  c.neg_step_size = -(lr / (1.0 - std::pow(beta1, double(step))));
  c.bc2_sqrt = std::sqrt(1.0 - std::pow(beta2, double(step)));
  c.eps = eps;
  return c;
}

void keystream_bytes(int device, uintptr_t stream, uintptr_t key, uintptr_t nonces, uintptr_t out, int64_t batch,
                     int64_t nbytes, uint32_t counter) {
  RIC_DISPATCH(device,
               ric::cpu::keystream_bytes(ptr<const uint8_t>(key), ptr<const uint8_t>(nonces), ptr<uint8_t>(out), batch,
                                        nbytes, counter),
               ric::keystream_bytes_cuda(ptr<const uint8_t>(key), ptr<const uint8_t>(nonces), ptr<uint8_t>(out), batch,
                                         nbytes, counter, ptr<void>(stream)));
}

void keyed_uniform(int device, uintptr_t stream, uintptr_t key, uintptr_t nonces, uintptr_t out, int64_t batch,
                   int64_t n, uint32_t counter, bool tanh_space) {
  RIC_DISPATCH(device,
               ric::cpu::keyed_uniform(ptr<const uint8_t>(key), ptr<const uint8_t>(nonces), ptr<float>(out), batch, n,
                                      counter, tanh_space),
               ric::keyed_uniform_cuda(ptr<const uint8_t>(key), ptr<const uint8_t>(nonces), ptr<float>(out), batch, n,
                                       counter, tanh_space, ptr<void>(stream)));
}

template <typename T>
void mask_t(int device, uintptr_t stream, uintptr_t e, uintptr_t z, uintptr_t out, int64_t n, double lam, int mode,
            uintptr_t seed) {
  const auto k = mask_const<T>(lam);
  RIC_DISPATCH(device,
               ric::cpu::mask<T>(ptr<const T>(e), ptr<const T>(z), ptr<T>(out), n, k, mode, ptr<const int64_t>(seed)),
               ric::mask_cuda<T>(ptr<const T>(e), ptr<const T>(z), ptr<T>(out), n, k, mode, ptr<const int64_t>(seed),
                                 ptr<void>(stream)));
}

template <typename T>
void mask_u8_t(int device, uintptr_t stream, uintptr_t e, uintptr_t z, uintptr_t out, int64_t n, double lam) {
  const auto k = mask_const<T>(lam);
  RIC_DISPATCH(device, ric::cpu::mask_u8<T>(ptr<const T>(e), ptr<const T>(z), ptr<uint8_t>(out), n, k),
               ric::mask_u8_cuda<T>(ptr<const T>(e), ptr<const T>(z), ptr<uint8_t>(out), n, k, ptr<void>(stream)));
}

template <typename T>
void mask_backward_t(int device, uintptr_t stream, uintptr_t grad, uintptr_t e, uintptr_t z, uintptr_t ge,
                     uintptr_t gz, int64_t n, double lam, int mode, uintptr_t seed) {
  const auto k = mask_const<T>(lam);
  RIC_DISPATCH(device,
               ric::cpu::mask_backward<T>(ptr<const T>(grad), ptr<const T>(e), ptr<const T>(z), ptr<T>(ge), ptr<T>(gz), n,
                                         k, mode, ptr<const int64_t>(seed)),
               ric::mask_backward_cuda<T>(ptr<const T>(grad), ptr<const T>(e), ptr<const T>(z), ptr<T>(ge), ptr<T>(gz),
                                          n, k, mode, ptr<const int64_t>(seed), ptr<void>(stream)));
}

template <typename T>
void unmask_t(int device, uintptr_t stream, uintptr_t c, bool c_is_u8, uintptr_t z, uintptr_t out, int64_t n,
              double lam) {
  const T b = T(lam), inv = T(1.0 / (1.0 - lam));
  if (c_is_u8) {
    RIC_DISPATCH(device, ric::cpu::unmask_u8<T>(ptr<const uint8_t>(c), ptr<const T>(z), ptr<T>(out), n, b, inv),
                 ric::unmask_u8_cuda<T>(ptr<const uint8_t>(c), ptr<const T>(z), ptr<T>(out), n, b, inv,
                                        ptr<void>(stream)));
  } else {
    RIC_DISPATCH(device, ric::cpu::unmask<T>(ptr<const T>(c), ptr<const T>(z), ptr<T>(out), n, b, inv),
                 ric::unmask_cuda<T>(ptr<const T>(c), ptr<const T>(z), ptr<T>(out), n, b, inv, ptr<void>(stream)));
  }
}

template <typename T>
void cw_margin_t(int device, uintptr_t stream, uintptr_t logits, uintptr_t labels, uintptr_t out, int64_t rows,
                 int64_t K, double kappa, bool targeted) {
  RIC_DISPATCH(device,
               ric::cpu::cw_margin<T>(ptr<const T>(logits), ptr<const int64_t>(labels), ptr<T>(out), rows, K, T(kappa),
                                     targeted),
               ric::cw_margin_cuda<T>(ptr<const T>(logits), ptr<const int64_t>(labels), ptr<T>(out), rows, K, T(kappa),
                                      targeted, ptr<void>(stream)));
}

template <typename T>
void cw_margin_backward_t(int device, uintptr_t stream, uintptr_t grad, uintptr_t logits, uintptr_t labels,
                          uintptr_t out, int64_t rows, int64_t K, double kappa, bool targeted) {
  RIC_DISPATCH(device,
               ric::cpu::cw_margin_backward<T>(ptr<const T>(grad), ptr<const T>(logits), ptr<const int64_t>(labels),
                                              ptr<T>(out), rows, K, T(kappa), targeted),
               ric::cw_margin_backward_cuda<T>(ptr<const T>(grad), ptr<const T>(logits), ptr<const int64_t>(labels),
                                               ptr<T>(out), rows, K, T(kappa), targeted, ptr<void>(stream)));
}

template <typename T>
void adam_tanh_t(int device, uintptr_t stream, uintptr_t w, uintptr_t m, uintptr_t v, uintptr_t grad, uintptr_t active,
                 uintptr_t adv, int64_t rows, int64_t n, double lr, double beta1, double beta2, double eps,
                 int64_t step, bool grad_wrt_adv) {
  const AdamConst c = adam_const(lr, beta1, beta2, eps, step);
  RIC_DISPATCH(device,
               ric::cpu::adam_tanh<T>(ptr<T>(w), ptr<T>(m), ptr<T>(v), ptr<const T>(grad), ptr<const uint8_t>(active),
                                     ptr<T>(adv), rows, n, c, grad_wrt_adv),
               ric::adam_tanh_cuda<T>(ptr<T>(w), ptr<T>(m), ptr<T>(v), ptr<const T>(grad), ptr<const uint8_t>(active),
                                      ptr<T>(adv), rows, n, c, grad_wrt_adv, ptr<void>(stream)));
}

py::dict build_info() {
  py::dict d;
  py::list backends;
  backends.append("cpu");
#ifdef RIC_WITH_CUDA
  backends.append("cuda");
  d["cuda_version"] = RIC_CUDA_VERSION;
  d["cuda_architectures"] = RIC_CUDA_ARCHS;
#else
  d["cuda_version"] = py::none();
  d["cuda_architectures"] = py::none();
#endif
  d["backends"] = backends;
  d["cxx_compiler"] = RIC_CXX_COMPILER;
  d["openmp"] = bool(RIC_OPENMP_ENABLED);
  d["cpu_isa"] = ric::cpu_isa();
  return d;
}

}  // namespace

PYBIND11_MODULE(_C, m) {
  m.doc() = "ric_ext native kernels (torch-free; see ric_ext.ops for the PyTorch ops)";
  auto nogil = py::call_guard<py::gil_scoped_release>();
  m.def("build_info", &build_info);
  // Host entry points to the exact generator code the kernels inline, for
  // known-answer tests of the shared headers.
  m.def("philox4x32_10", [](std::array<uint32_t, 4> ctr, std::array<uint32_t, 2> key) {
    std::array<uint32_t, 4> out;
    ric::philox4x32_10(ctr.data(), key.data(), out.data());
    return out;
  });
  m.def("chacha20_block", [](std::array<uint32_t, 8> key, uint32_t counter, std::array<uint32_t, 3> nonce) {
    std::array<uint32_t, 16> out;
    ric::chacha20_block(key.data(), counter, nonce.data(), out.data());
    return out;
  });
  m.def("keystream_bytes", &keystream_bytes, nogil);
  m.def("keyed_uniform", &keyed_uniform, nogil);
  m.def("mask", [](const std::string& dt, int d, uintptr_t s, uintptr_t e, uintptr_t z, uintptr_t o, int64_t n,
                   double lam, int mode, uintptr_t seed) {
    is_f64(dt) ? mask_t<double>(d, s, e, z, o, n, lam, mode, seed) : mask_t<float>(d, s, e, z, o, n, lam, mode, seed);
  }, nogil);
  m.def("mask_u8", [](const std::string& dt, int d, uintptr_t s, uintptr_t e, uintptr_t z, uintptr_t o, int64_t n,
                      double lam) {
    is_f64(dt) ? mask_u8_t<double>(d, s, e, z, o, n, lam) : mask_u8_t<float>(d, s, e, z, o, n, lam);
  }, nogil);
  m.def("mask_backward", [](const std::string& dt, int d, uintptr_t s, uintptr_t g, uintptr_t e, uintptr_t z,
                            uintptr_t ge, uintptr_t gz, int64_t n, double lam, int mode, uintptr_t seed) {
    is_f64(dt) ? mask_backward_t<double>(d, s, g, e, z, ge, gz, n, lam, mode, seed)
               : mask_backward_t<float>(d, s, g, e, z, ge, gz, n, lam, mode, seed);
  }, nogil);
  m.def("unmask", [](const std::string& dt, int d, uintptr_t s, uintptr_t c, bool c_u8, uintptr_t z, uintptr_t o,
                     int64_t n, double lam) {
    is_f64(dt) ? unmask_t<double>(d, s, c, c_u8, z, o, n, lam) : unmask_t<float>(d, s, c, c_u8, z, o, n, lam);
  }, nogil);
  m.def("cw_margin", [](const std::string& dt, int d, uintptr_t s, uintptr_t lg, uintptr_t lb, uintptr_t o,
                        int64_t rows, int64_t K, double kappa, bool targeted) {
    is_f64(dt) ? cw_margin_t<double>(d, s, lg, lb, o, rows, K, kappa, targeted)
               : cw_margin_t<float>(d, s, lg, lb, o, rows, K, kappa, targeted);
  }, nogil);
  m.def("cw_margin_backward", [](const std::string& dt, int d, uintptr_t s, uintptr_t g, uintptr_t lg, uintptr_t lb,
                                 uintptr_t o, int64_t rows, int64_t K, double kappa, bool targeted) {
    is_f64(dt) ? cw_margin_backward_t<double>(d, s, g, lg, lb, o, rows, K, kappa, targeted)
               : cw_margin_backward_t<float>(d, s, g, lg, lb, o, rows, K, kappa, targeted);
  }, nogil);
  m.def("adam_tanh", [](const std::string& dt, int d, uintptr_t s, uintptr_t w, uintptr_t mm, uintptr_t v,
                        uintptr_t g, uintptr_t act, uintptr_t adv, int64_t rows, int64_t n, double lr, double b1,
                        double b2, double eps, int64_t step, bool gwa) {
    is_f64(dt) ? adam_tanh_t<double>(d, s, w, mm, v, g, act, adv, rows, n, lr, b1, b2, eps, step, gwa)
               : adam_tanh_t<float>(d, s, w, mm, v, g, act, adv, rows, n, lr, b1, b2, eps, step, gwa);
  }, nogil);
}
