// pybind11 module ric_ext._C: thin, torch-free glue generated from the op
// table (ops.h). Every op NAME becomes
//   ric_ext._C.NAME([dtype,] device, stream, *args)
// with the launcher's parameters in order: pointers as Python ints (data
// pointers), scalars as they are. `dtype` ("float32" or "float64") is there
// for the ops over T. `device` is -1 for host memory, else the CUDA device
// index; `stream` is the caller's cudaStream_t. The caller (ric_ext/ops) has
// already validated device, dtype, shape and contiguity.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <array>
#include <cstddef>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "common/chacha20.h"
#include "common/philox.h"
#include "ops.h"

namespace py = pybind11;

namespace {

// How a launcher parameter crosses from Python: pointers as ints, the rest unchanged.
template <typename P>
struct Arg {
  using type = P;
  static P get(P v) { return v; }
};
template <typename T>
struct Arg<T*> {
  using type = uintptr_t;
  static T* get(uintptr_t v) { return reinterpret_cast<T*>(v); }
};

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
#endif

// Calls `cpu` for host memory (device < 0), else `cuda` on that device.
template <typename C, typename G>
void launch(int device, C&& cpu, G&& cuda) {
  if (device < 0) {
    cpu();
    return;
  }
#ifdef RIC_WITH_CUDA
  on_device(device, cuda);
#else
  (void)cuda;
  throw std::runtime_error("ric_ext was built without CUDA kernels (see ric_ext.build_info())");
#endif
}

// One op: `cpu` is the chosen ISA's launcher; `cuda` its CUDA launcher, or nullptr without CUDA.
template <typename G, typename... P>
void def_op(py::module_& m, const char* name, void (*cpu)(P...), G cuda) {
  m.def(
      name,
      [cpu, cuda](int device, uintptr_t stream, typename Arg<P>::type... a) {
        launch(
            device, [&] { cpu(Arg<P>::get(a)...); },
            [&] {
              if constexpr (!std::is_same_v<G, std::nullptr_t>)
                cuda(Arg<P>::get(a)..., reinterpret_cast<void*>(stream));
            });
      },
      py::call_guard<py::gil_scoped_release>());
}

// One op over T: the float and double launchers behind a dtype argument.
template <typename GF, typename GD, typename... F, typename... D>
void def_op_t(py::module_& m, const char* name, void (*cpu_f)(F...), void (*cpu_d)(D...), GF cuda_f, GD cuda_d) {
  m.def(
      name,
      [=](const std::string& dtype, int device, uintptr_t stream, typename Arg<F>::type... a) {
        void* s = reinterpret_cast<void*>(stream);
        if (is_f64(dtype)) {
          launch(
              device, [&] { cpu_d(Arg<D>::get(a)...); },
              [&] {
                if constexpr (!std::is_same_v<GD, std::nullptr_t>) cuda_d(Arg<D>::get(a)..., s);
              });
        } else {
          launch(
              device, [&] { cpu_f(Arg<F>::get(a)...); },
              [&] {
                if constexpr (!std::is_same_v<GF, std::nullptr_t>) cuda_f(Arg<F>::get(a)..., s);
              });
        }
      },
      py::call_guard<py::gil_scoped_release>());
}

#ifdef RIC_HAVE_AVX2_VARIANT
#define RIC_CPU_FN(fn) (ric::cpu_use_avx2() ? &ric::isa_avx2::fn : &ric::isa_base::fn)
#else
#define RIC_CPU_FN(fn) (&ric::isa_base::fn)
#endif
#ifdef RIC_WITH_CUDA
#define RIC_CUDA_FN(fn) (&ric::fn)
#else
#define RIC_CUDA_FN(fn) nullptr
#endif
#define RIC_BIND(name, params) def_op(m, #name, RIC_CPU_FN(name), RIC_CUDA_FN(name##_cuda));
#define RIC_BIND_T(name, params)                                                                         \
  def_op_t(m, #name, RIC_CPU_FN(name<float>), RIC_CPU_FN(name<double>), RIC_CUDA_FN(name##_cuda<float>), \
           RIC_CUDA_FN(name##_cuda<double>));

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
  RIC_OPS(RIC_BIND)
  RIC_OPS_T(RIC_BIND_T, T)
}
