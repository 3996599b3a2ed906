// Philox4x32-10 counter-based generator (Salmon et al., SC'11; Random123),
// shared by CPU and CUDA.
#pragma once
#include "common/platform.h"

namespace ric {

RIC_HD void mulhilo32(uint32_t a, uint32_t b, uint32_t& hi, uint32_t& lo) {
  uint64_t p = uint64_t(a) * uint64_t(b);
  hi = uint32_t(p >> 32);
  lo = uint32_t(p);
}

RIC_HD void philox4x32_10(const uint32_t ctr_in[4], const uint32_t key_in[2], uint32_t out[4]) {
  uint32_t c0 = ctr_in[0], c1 = ctr_in[1], c2 = ctr_in[2], c3 = ctr_in[3];
  uint32_t k0 = key_in[0], k1 = key_in[1];
  RIC_UNROLL
  for (int r = 0; r < 10; ++r) {
    if (r > 0) {
      k0 += 0x9E3779B9u;
      k1 += 0xBB67AE85u;
    }
    uint32_t hi0, lo0, hi1, lo1;
    mulhilo32(0xD2511F53u, c0, hi0, lo0);
    mulhilo32(0xCD9E8D57u, c2, hi1, lo1);
    c0 = hi1 ^ c1 ^ k0;
    c1 = lo1;
    c2 = hi0 ^ c3 ^ k1;
    c3 = lo0;
  }
  out[0] = c0;
  out[1] = c1;
  out[2] = c2;
  out[3] = c3;
}

// The dither stream of the mask op. Element i of a call with (seed, offset)
// takes word i%4 of philox(counter = (i/4, offset), key = seed), each 64-bit
// value split into (low, high) 32-bit words; u = (w >> 8) * 2^-24 - 0.5 is in
// [-0.5, 0.5) and exact in float32.
RIC_HD void dither4(uint64_t group, uint64_t seed, uint64_t offset, float u[4]) {
  const uint32_t ctr[4] = {uint32_t(group), uint32_t(group >> 32), uint32_t(offset), uint32_t(offset >> 32)};
  const uint32_t key[2] = {uint32_t(seed), uint32_t(seed >> 32)};
  uint32_t w[4];
  philox4x32_10(ctr, key, w);
  RIC_UNROLL
  for (int k = 0; k < 4; ++k) u[k] = float(w[k] >> 8) * 5.9604644775390625e-08f - 0.5f;
}

}  // namespace ric
