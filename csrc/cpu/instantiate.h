// Explicit instantiations of the templated CPU launchers for float and double,
// written once for the ISA variants (kernels_cpu.cpp) and the dispatcher
// (dispatch.cpp). Use inside the namespace that defines the templates.
#pragma once

#define RIC_CPU_INSTANTIATE_FOR(T)                                                                    \
  template void mask<T>(const T*, const T*, T*, int64_t, MaskConst<T>, int, const int64_t*);          \
  template void mask_u8<T>(const T*, const T*, uint8_t*, int64_t, MaskConst<T>);                      \
  template void mask_backward<T>(const T*, const T*, const T*, T*, T*, int64_t, MaskConst<T>, int,      \
                                 const int64_t*);                                                    \
  template void unmask<T>(const T*, const T*, T*, int64_t, T, T);                                     \
  template void unmask_u8<T>(const uint8_t*, const T*, T*, int64_t, T, T);                            \
  template void cw_margin<T>(const T*, const int64_t*, T*, int64_t, int64_t, T, bool);                \
  template void cw_margin_backward<T>(const T*, const T*, const int64_t*, T*, int64_t, int64_t, T, bool); \
  template void adam_tanh<T>(T*, T*, T*, const T*, const uint8_t*, T*, int64_t, int64_t, AdamConst, bool);

#define RIC_CPU_INSTANTIATE \
  RIC_CPU_INSTANTIATE_FOR(float) \
  RIC_CPU_INSTANTIATE_FOR(double)
