// The inner loops the decoding step's kernels share (linear.cpp, attention.cpp, step.cpp).
//
// block_dot: one packed block of 64 output features (see linear.cpp for the layout) times one
// float32 row. The weight is widened to float32 in registers, so every product and sum is
// float32. Decoding streams every weight once per token from memory; the hardware prefetcher alone
// left one core at ~15 GB/s here, so each iteration also asks for the cache line kPrefetch bytes
// ahead (the packed blocks are contiguous, so this runs on into the next block): ~25 GB/s.
//
// block_dot_i16 (AVX-512): an int8 block times one row rounded to int16, in exact int32 sums. The
// float32 widening above costs ~13 instructions per 64 weights, so one core ran it at ~24 GB/s
// with the weights in cache and ~19 GB/s from memory, below the ~27 GB/s it reads otherwise; with
// the row as int16 (one scale; |q| small enough that no sum can overflow int32), pairs of k are
// multiplied and added in one instruction (vpmaddwd): ~54 GB/s in cache, ~25 GB/s from memory on
// Zen 4 in isolation; in the whole decoding step a few % at 1 thread, 1.4-1.5x per weight for 4-8
// batched rows (compute-bound there). The row's rounding is at most half of
// max|x| / 8256 (K <= 2048), ~1e-4 of a product next to the int8 weight's ~1e-2.
//
// attend_head: one (row, head) of single-query attention over a key/value cache (attention.cpp).
// attend_head_bf16 (AVX-512, bf16 cache, head size 32/64/128: `fast`'s): the same in intrinsics,
// 16 keys' scores per shuffle tree and prefetched rows: 1.5-1.9x attend_head alone with the cache
// in L3, 2-4 % of a whole decoding step (which reads the cache from memory: bandwidth-bound).
#pragma once

#include <torch/extension.h>

#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

namespace gpt_kernels {

constexpr int64_t kBlock = 64;       // output features per packed block
constexpr int64_t kPrefetch = 4096;  // bytes ahead of the read position (measured 2-8 KB alike)
// Finite "minus infinity": the module is built with -ffast-math, which assumes no infinities.
constexpr float kMasked = -1e30f;

// Asks for the `lines` cache lines kPrefetch bytes past `at`.
inline void prefetch_ahead(const void* at, int lines) {
  const char* p = static_cast<const char*>(at) + kPrefetch;
  for (int l = 0; l < lines; ++l) _mm_prefetch(p + 64 * l, _MM_HINT_T0);
}

// out[0:64] = sum_k col(k)[0:64] * x[k] for one float16 block (col(k) = w + k * 64).
inline void block_dot(const at::Half* w, const float* x, int64_t k, float* out) {
#if defined(__AVX512F__)
  __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps(), a2 = _mm512_setzero_ps(),
         a3 = _mm512_setzero_ps();
  for (int64_t i = 0; i < k; ++i) {
    const at::Half* c = w + i * kBlock;
    prefetch_ahead(c, 2);
    const __m512 xv = _mm512_set1_ps(x[i]);
    a0 = _mm512_fmadd_ps(_mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(c))), xv, a0);
    a1 = _mm512_fmadd_ps(_mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(c + 16))), xv, a1);
    a2 = _mm512_fmadd_ps(_mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(c + 32))), xv, a2);
    a3 = _mm512_fmadd_ps(_mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(c + 48))), xv, a3);
  }
  _mm512_storeu_ps(out, a0);
  _mm512_storeu_ps(out + 16, a1);
  _mm512_storeu_ps(out + 32, a2);
  _mm512_storeu_ps(out + 48, a3);
#elif defined(__AVX2__) && defined(__F16C__) && defined(__FMA__)
  __m256 a[8];
  for (int j = 0; j < 8; ++j) a[j] = _mm256_setzero_ps();
  for (int64_t i = 0; i < k; ++i) {
    const at::Half* c = w + i * kBlock;
    prefetch_ahead(c, 2);
    const __m256 xv = _mm256_set1_ps(x[i]);
    for (int j = 0; j < 8; ++j) {
      const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(c + 8 * j));
      a[j] = _mm256_fmadd_ps(_mm256_cvtph_ps(h), xv, a[j]);
    }
  }
  for (int j = 0; j < 8; ++j) _mm256_storeu_ps(out + 8 * j, a[j]);
#else
  for (int j = 0; j < kBlock; ++j) out[j] = 0.f;
  for (int64_t i = 0; i < k; ++i) {
    const at::Half* c = w + i * kBlock;
    for (int j = 0; j < kBlock; ++j) out[j] += static_cast<float>(c[j]) * x[i];
  }
#endif
}

// The same for an int8 block: out[0:64] = sum_k col(k)[0:64] * x[k], unscaled. Each 16 weights
// are sign-extended straight from memory (no shuffles of a 64-byte load: ~1.3x faster in cache).
inline void block_dot(const int8_t* w, const float* x, int64_t k, float* out) {
#if defined(__AVX512F__)
  __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps(), a2 = _mm512_setzero_ps(),
         a3 = _mm512_setzero_ps();
  for (int64_t i = 0; i < k; ++i) {
    const int8_t* c = w + i * kBlock;
    prefetch_ahead(c, 1);
    const __m512 xv = _mm512_set1_ps(x[i]);
    const auto q = [c](int j) { return _mm_loadu_si128(reinterpret_cast<const __m128i*>(c + 16 * j)); };
    a0 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(q(0))), xv, a0);
    a1 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(q(1))), xv, a1);
    a2 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(q(2))), xv, a2);
    a3 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(q(3))), xv, a3);
  }
  _mm512_storeu_ps(out, a0);
  _mm512_storeu_ps(out + 16, a1);
  _mm512_storeu_ps(out + 32, a2);
  _mm512_storeu_ps(out + 48, a3);
#elif defined(__AVX2__) && defined(__FMA__)
  __m256 a[8];
  for (int j = 0; j < 8; ++j) a[j] = _mm256_setzero_ps();
  for (int64_t i = 0; i < k; ++i) {
    const int8_t* c = w + i * kBlock;
    prefetch_ahead(c, 1);
    const __m256 xv = _mm256_set1_ps(x[i]);
    for (int j = 0; j < 8; ++j) {
      const __m128i q = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(c + 8 * j));
      a[j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q)), xv, a[j]);
    }
  }
  for (int j = 0; j < 8; ++j) _mm256_storeu_ps(out + 8 * j, a[j]);
#else
  for (int j = 0; j < kBlock; ++j) out[j] = 0.f;
  for (int64_t i = 0; i < k; ++i) {
    const int8_t* c = w + i * kBlock;
    for (int j = 0; j < kBlock; ++j) out[j] += static_cast<float>(c[j]) * x[i];
  }
#endif
}

#if defined(__AVX512F__) && defined(__AVX512BW__)
// The largest |q| of a row of K values such that K products with |w| <= 127 sum within int32.
inline int32_t int16_limit(int64_t K) {
  return static_cast<int32_t>(std::min<int64_t>(32767, 2147483647 / (127 * std::max<int64_t>(K, 1))));
}

// Row x (K floats) to int16 codes q = round(x / s), s = max|x| / int16_limit(K) (1 for a row of
// zeros); q[K] = 0 (pairs read one past an odd K). Returns s, or 0 when x holds an infinity or a
// NaN (found by its bits: the module is built with -ffast-math), which the float path must take.
inline float quantize_i16(const float* x, int64_t K, int16_t* q) {
  const __m512i exp_bits = _mm512_set1_epi32(0x7f800000);
  __m512 m = _mm512_setzero_ps();
  __mmask16 bad = 0;
  int64_t k = 0;
  for (; k + 16 <= K; k += 16) {
    const __m512 v = _mm512_loadu_ps(x + k);
    bad |= _mm512_cmpeq_epi32_mask(_mm512_and_si512(_mm512_castps_si512(v), exp_bits), exp_bits);
    m = _mm512_max_ps(m, _mm512_abs_ps(v));
  }
  if (k < K) {
    const __mmask16 tail = static_cast<__mmask16>((1u << (K - k)) - 1);
    const __m512 v = _mm512_maskz_loadu_ps(tail, x + k);
    bad |= _mm512_mask_cmpeq_epi32_mask(tail, _mm512_and_si512(_mm512_castps_si512(v), exp_bits), exp_bits);
    m = _mm512_max_ps(m, _mm512_abs_ps(v));
  }
  if (bad) return 0.f;
  const float amax = _mm512_reduce_max_ps(m);
  const float s = amax > 0.f ? amax / static_cast<float>(int16_limit(K)) : 1.f;
  const __m512 inv = _mm512_set1_ps(1.f / s);
  for (k = 0; k + 16 <= K; k += 16) {
    const __m512i r = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_loadu_ps(x + k), inv));  // nearest even
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(q + k), _mm512_cvtsepi32_epi16(r));
  }
  for (; k < K; ++k) q[k] = static_cast<int16_t>(std::nearbyint(x[k] / s));
  q[K] = 0;
  return s;
}

// out[0:64] = sum_k col(k)[0:64] * q[k] in int32 for one int8 block (col(k) = w + k * 64). Rows k
// and k + 1 are interleaved byte by byte (per 128-bit lane), widened to int16 pairs and multiplied
// by the pair (q[k], q[k+1]) with vpmaddwd; the lanes come out in the order the stores undo.
inline void block_dot_i16(const int8_t* w, const int16_t* q, int64_t K, int32_t* out) {
  __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0;
  for (int64_t k = 0; k < K; k += 2) {  // q[K] = 0 pairs an odd K's last row with a zero
    const int8_t* c = w + k * kBlock;
    prefetch_ahead(c, 2);
    const __m512i r0 = _mm512_loadu_si512(c);
    const __m512i r1 = k + 1 < K ? _mm512_loadu_si512(c + kBlock) : _mm512_setzero_si512();
    const __m512i lo = _mm512_unpacklo_epi8(r0, r1), hi = _mm512_unpackhi_epi8(r0, r1);
    int32_t pair;
    std::memcpy(&pair, q + k, sizeof pair);
    const __m512i xv = _mm512_set1_epi32(pair);
    a0 = _mm512_add_epi32(a0, _mm512_madd_epi16(_mm512_cvtepi8_epi16(_mm512_castsi512_si256(lo)), xv));
    a1 = _mm512_add_epi32(a1, _mm512_madd_epi16(_mm512_cvtepi8_epi16(_mm512_extracti64x4_epi64(lo, 1)), xv));
    a2 = _mm512_add_epi32(a2, _mm512_madd_epi16(_mm512_cvtepi8_epi16(_mm512_castsi512_si256(hi)), xv));
    a3 = _mm512_add_epi32(a3, _mm512_madd_epi16(_mm512_cvtepi8_epi16(_mm512_extracti64x4_epi64(hi, 1)), xv));
  }
  // unpacklo takes bytes 0-7 of each 128-bit lane (outputs 0-7, 16-23, 32-39, 48-55), unpackhi
  // bytes 8-15 (8-15, 24-31, 40-47, 56-63); each accumulator holds two lanes' worth.
  alignas(64) int32_t t[4][16];
  _mm512_store_si512(t[0], a0);
  _mm512_store_si512(t[1], a1);
  _mm512_store_si512(t[2], a2);
  _mm512_store_si512(t[3], a3);
  for (int j = 0; j < 8; ++j) {
    out[j] = t[0][j];
    out[16 + j] = t[0][8 + j];
    out[32 + j] = t[1][j];
    out[48 + j] = t[1][8 + j];
    out[8 + j] = t[2][j];
    out[24 + j] = t[2][8 + j];
    out[40 + j] = t[3][j];
    out[56 + j] = t[3][8 + j];
  }
}
#endif

// y[m, n] = relu?(scale[n] * sum_k W[n, k] x[m, k] + bias[n]) for rows m < M and
// outputs lo <= n < hi, from the packed (ceil(N / 64), K, 64) weight: the blocks covering [lo, hi)
// are computed, only [lo, hi) written. x is (M, K) row-major, y row-major with row stride ys; scale and
// bias may be null. An int8 weight on AVX-512 takes each row as int16 (block_dot_i16) unless it holds
// an infinity or a NaN.
// y[m, n0:n1] from one block's 64 sums part (outputs blk * 64 ...): relu?(part * scale + bias).
inline void store_block(const float* part, int64_t blk, int64_t n0, int64_t n1, const float* scale,
                        const float* bias, bool relu, float* row) {
  for (int64_t n = n0; n < n1; ++n) {
    float v = part[n - blk * kBlock];
    v = scale != nullptr ? v * scale[n] : v;
    v += bias != nullptr ? bias[n] : 0.f;
    row[n] = relu ? std::max(v, 0.f) : v;
  }
}

template <typename W>
void linear_part(const W* packed, int64_t K, const float* scale, const float* bias, bool relu, const float* x,
                 int64_t M, float* y, int64_t ys, int64_t lo, int64_t hi) {
  alignas(64) float part[kBlock];
#if defined(__AVX512F__) && defined(__AVX512BW__)
  if constexpr (std::is_same_v<W, int8_t>) {
    thread_local std::vector<int16_t> codes;
    codes.resize(static_cast<size_t>(M * (K + 1)));
    thread_local std::vector<float> row_scale;
    row_scale.resize(static_cast<size_t>(M));
    for (int64_t m = 0; m < M; ++m) row_scale[m] = quantize_i16(x + m * K, K, codes.data() + m * (K + 1));
    alignas(64) int32_t sums[kBlock];
    for (int64_t blk = lo / kBlock; blk * kBlock < hi; ++blk) {
      const int64_t n0 = std::max(blk * kBlock, lo), n1 = std::min((blk + 1) * kBlock, hi);
      for (int64_t m = 0; m < M; ++m) {
        const float rs = row_scale[m];
        if (rs > 0.f) {
          block_dot_i16(packed + blk * K * kBlock, codes.data() + m * (K + 1), K, sums);
          for (int j = 0; j < kBlock; ++j) part[j] = static_cast<float>(sums[j]) * rs;
        } else {
          block_dot(packed + blk * K * kBlock, x + m * K, K, part);
        }
        store_block(part, blk, n0, n1, scale, bias, relu, y + m * ys);
      }
    }
    return;
  }
#endif
  for (int64_t blk = lo / kBlock; blk * kBlock < hi; ++blk) {
    const int64_t n0 = std::max(blk * kBlock, lo), n1 = std::min((blk + 1) * kBlock, hi);
    for (int64_t m = 0; m < M; ++m) {
      block_dot(packed + blk * K * kBlock, x + m * K, K, part);
      store_block(part, blk, n0, n1, scale, bias, relu, y + m * ys);
    }
  }
}

inline float widen(float x) { return x; }
inline float widen(c10::BFloat16 x) { return static_cast<float>(x); }

// The step's key and value (qp + dim, qp + 2 * dim) written at column n, rounded to the cache dtype.
template <typename KV, int HD>
inline void write_column(const float* qp, int64_t dim, KV* kp, KV* vp, int64_t ks, int64_t vs, int64_t n) {
  for (int d = 0; d < HD; ++d) {
    kp[n * ks + d] = KV(qp[dim + d]);
    vp[n * vs + d] = KV(qp[2 * dim + d]);
  }
}

// One (row, head): writes the step's key and value (qp + dim, qp + 2 * dim; rounded to the cache
// dtype) at column n of kp / vp (column stride ks / vs), then out[0:HD] = softmax(scale * q . k_j)
// weighted sum of v_j over columns j <= n whose ok[j] is true (ok == nullptr: all). scores holds
// n + 1 floats.
template <typename KV, int HD>
void attend_head(const float* qp, int64_t dim, KV* kp, KV* vp, int64_t ks, int64_t vs, const bool* ok, int64_t n,
                 float scale, float* scores, float* out) {
  write_column<KV, HD>(qp, dim, kp, vp, ks, vs, n);
  float qv[HD];
  for (int d = 0; d < HD; ++d) qv[d] = qp[d] * scale;
  float top = kMasked;
  for (int64_t j = 0; j <= n; ++j) {
    const KV* row = kp + j * ks;
    float s = 0.f;
    for (int d = 0; d < HD; ++d) s += qv[d] * widen(row[d]);
    if (ok != nullptr && !ok[j]) s = kMasked;
    scores[j] = s;
    top = std::max(top, s);
  }
  float total = 0.f;
  for (int64_t j = 0; j <= n; ++j) {
    const float e = std::exp(scores[j] - top);
    scores[j] = e;
    total += e;
  }
  float acc[HD] = {};
  for (int64_t j = 0; j <= n; ++j) {
    const KV* row = vp + j * vs;
    const float p = scores[j];
    for (int d = 0; d < HD; ++d) acc[d] += p * widen(row[d]);
  }
  const float inv = 1.f / total;
  for (int d = 0; d < HD; ++d) out[d] = acc[d] * inv;
}

#if defined(__AVX512F__) && defined(__AVX512BW__)
// The sums of 16 vectors of 16 partial sums each, as one vector (lane i: the sum of v[i]): a
// shuffle tree whose shuffles are shared by all 16 (~3 instructions per sum instead of a
// horizontal reduction each). After four levels lane 4c + m holds v[4m + c]; one permute restores
// the order.
inline __m512 sum16(const __m512* v) {
  __m512 x[8], y[4];
  for (int i = 0; i < 8; ++i) {  // per 256-bit half: [v2i: halves A+C, B+D | v2i+1: the same]
    x[i] = _mm512_add_ps(_mm512_shuffle_f32x4(v[2 * i], v[2 * i + 1], 0x44),
                         _mm512_shuffle_f32x4(v[2 * i], v[2 * i + 1], 0xEE));
  }
  for (int i = 0; i < 4; ++i) {  // one 128-bit chunk per vector: chunk c of y[i] is v[4i + c]
    y[i] = _mm512_add_ps(_mm512_shuffle_f32x4(x[2 * i], x[2 * i + 1], 0x88),
                         _mm512_shuffle_f32x4(x[2 * i], x[2 * i + 1], 0xDD));
  }
  const __m512 w0 = _mm512_add_ps(_mm512_shuffle_ps(y[0], y[1], 0x44), _mm512_shuffle_ps(y[0], y[1], 0xEE));
  const __m512 w1 = _mm512_add_ps(_mm512_shuffle_ps(y[2], y[3], 0x44), _mm512_shuffle_ps(y[2], y[3], 0xEE));
  const __m512 r = _mm512_add_ps(_mm512_shuffle_ps(w0, w1, 0x88), _mm512_shuffle_ps(w0, w1, 0xDD));
  const __m512i order = _mm512_set_epi32(15, 11, 7, 3, 14, 10, 6, 2, 13, 9, 5, 1, 12, 8, 4, 0);
  return _mm512_permutexvar_ps(order, r);
}

// 16 bfloat16 values (32 bytes) widened to float32.
inline __m512 widen16(__m256i h) {
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

// attend_head on a bfloat16 cache whose rows are contiguous (HD a multiple of 32), in AVX-512:
// scores of 16 keys at a time (sum16), the weighted values four keys at a time (independent
// accumulators: one chain of FMAs per output vector waited ~4 cycles per key), and the rows
// asked for kAhead bytes before they are read (the 24 layers' cache does not stay in cache from
// one step to the next: each step reads it from memory, interleaved with the weights).
template <int HD>
void attend_head_bf16(const float* qp, int64_t dim, c10::BFloat16* kp, c10::BFloat16* vp, int64_t ks, int64_t vs,
                      const bool* ok, int64_t n, float scale, float* scores, float* out) {
  static_assert(HD % 32 == 0, "rows of whole 64-byte bf16 vectors");
  constexpr int R = HD / 32;       // 64-byte vectors per row
  constexpr int64_t kAhead = 2048;  // bytes
  constexpr int64_t ahead = std::max<int64_t>(1, kAhead / (HD * 2));
  write_column<c10::BFloat16, HD>(qp, dim, kp, vp, ks, vs, n);
  const __m512 sc = _mm512_set1_ps(scale);
  __m512 q[2 * R];
  for (int r = 0; r < 2 * R; ++r) q[r] = _mm512_mul_ps(_mm512_loadu_ps(qp + 16 * r), sc);
  const auto row_dot = [&](const c10::BFloat16* row) {
    __m512 acc = _mm512_setzero_ps();
    for (int r = 0; r < R; ++r) {
      const __m512i h = _mm512_loadu_si512(row + 32 * r);
      acc = _mm512_fmadd_ps(widen16(_mm512_castsi512_si256(h)), q[2 * r], acc);
      acc = _mm512_fmadd_ps(widen16(_mm512_extracti64x4_epi64(h, 1)), q[2 * r + 1], acc);
    }
    return acc;
  };
  const int64_t cols = n + 1;
  for (int64_t j = 0; j < std::min(ahead, cols); ++j) {
    for (int r = 0; r < R; ++r) _mm_prefetch(reinterpret_cast<const char*>(kp + j * ks + 32 * r), _MM_HINT_T0);
  }
  __m512 top = _mm512_set1_ps(kMasked);
  const __m512 masked = _mm512_set1_ps(kMasked);
  int64_t j = 0;
  for (; j + 16 <= cols; j += 16) {
    __m512 part[16];
    for (int t = 0; t < 16; ++t) {
      for (int r = 0; r < R; ++r) {
        _mm_prefetch(reinterpret_cast<const char*>(kp + (j + t + ahead) * ks + 32 * r), _MM_HINT_T0);
      }
      part[t] = row_dot(kp + (j + t) * ks);
    }
    __m512 s = sum16(part);
    if (ok != nullptr) {
      const __mmask16 keep = _mm512_test_epi32_mask(
          _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(ok + j))), _mm512_set1_epi32(0xff));
      s = _mm512_mask_blend_ps(keep, masked, s);
    }
    _mm512_storeu_ps(scores + j, s);
    top = _mm512_max_ps(top, s);
  }
  float best = _mm512_reduce_max_ps(top);
  for (; j < cols; ++j) {
    float s = _mm512_reduce_add_ps(row_dot(kp + j * ks));
    if (ok != nullptr && !ok[j]) s = kMasked;
    scores[j] = s;
    best = std::max(best, s);
  }
  for (int64_t i = 0; i < std::min(ahead, cols); ++i) {
    for (int r = 0; r < R; ++r) _mm_prefetch(reinterpret_cast<const char*>(vp + i * vs + 32 * r), _MM_HINT_T0);
  }
  float total = 0.f;
  for (int64_t i = 0; i < cols; ++i) {
    const float e = std::exp(scores[i] - best);
    scores[i] = e;
    total += e;
  }
  constexpr int U = 4;  // keys per pass, each with its own accumulators
  __m512 acc[U][2 * R];
  for (int u = 0; u < U; ++u) {
    for (int r = 0; r < 2 * R; ++r) acc[u][r] = _mm512_setzero_ps();
  }
  const auto add_row = [&](__m512* a, const c10::BFloat16* row, float p) {
    const __m512 pv = _mm512_set1_ps(p);
    for (int r = 0; r < R; ++r) {
      const __m512i h = _mm512_loadu_si512(row + 32 * r);
      a[2 * r] = _mm512_fmadd_ps(widen16(_mm512_castsi512_si256(h)), pv, a[2 * r]);
      a[2 * r + 1] = _mm512_fmadd_ps(widen16(_mm512_extracti64x4_epi64(h, 1)), pv, a[2 * r + 1]);
    }
  };
  int64_t i = 0;
  for (; i + U <= cols; i += U) {
    for (int u = 0; u < U; ++u) {
      for (int r = 0; r < R; ++r) {
        _mm_prefetch(reinterpret_cast<const char*>(vp + (i + u + ahead) * vs + 32 * r), _MM_HINT_T0);
      }
      add_row(acc[u], vp + (i + u) * vs, scores[i + u]);
    }
  }
  for (; i < cols; ++i) add_row(acc[0], vp + i * vs, scores[i]);
  const __m512 inv = _mm512_set1_ps(1.f / total);
  for (int r = 0; r < 2 * R; ++r) {
    __m512 a = acc[0][r];
    for (int u = 1; u < U; ++u) a = _mm512_add_ps(a, acc[u][r]);
    _mm512_storeu_ps(out + 16 * r, _mm512_mul_ps(a, inv));
  }
}
#endif

// attend_head for a head size known at run time (the sizes native.HEAD_DIMS lists).
template <typename KV>
using AttendFn = void (*)(const float*, int64_t, KV*, KV*, int64_t, int64_t, const bool*, int64_t, float, float*,
                          float*);

template <typename KV>
AttendFn<KV> attend_for(int64_t hd, const char* who) {
#if defined(__AVX512F__) && defined(__AVX512BW__)
  if constexpr (std::is_same_v<KV, c10::BFloat16>) {
    switch (hd) {
      case 32: return &attend_head_bf16<32>;
      case 64: return &attend_head_bf16<64>;
      case 128: return &attend_head_bf16<128>;
      default: break;
    }
  }
#endif
  switch (hd) {
    case 8: return &attend_head<KV, 8>;
    case 16: return &attend_head<KV, 16>;
    case 32: return &attend_head<KV, 32>;
    case 64: return &attend_head<KV, 64>;
    case 128: return &attend_head<KV, 128>;
    default: TORCH_CHECK(false, who, ": head size ", hd, " is not built (8, 16, 32, 64 or 128)");
  }
}

}  // namespace gpt_kernels
