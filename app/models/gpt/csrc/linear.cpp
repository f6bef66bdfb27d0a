// y = x @ W^T + b for a float32 input and a weight held as float16 or int8: the decoding step's GEMV.
//
// float16 (linear_f16):
// A GPT file stores its weights in float16 (upstream writes them so), and upstream computes with
// their exact float32 upcast. Decoding one token reads every weight once, so the step is bound by
// memory traffic: holding the weight in float16 and widening it in registers halves the bytes
// read, while every product and sum is still float32 (the same numbers as the float32 weight, up
// to the summation order). Only used for weights that are exactly representable in float16.
//
// int8 (linear_int8, the fast mode): weight-only quantisation with one scale per output feature;
// the int8 weight is widened to float32 in registers and x stays float32, so the only error is the
// weight's rounding (the activations are not quantised). A quarter of the float32 bytes.
//
// Layout (both): the weight is packed once as (N / 64, K, 64): for each block of 64 output features,
// column k of the block's rows is 64 contiguous halves. A block is then one contiguous stream,
// and its 64 outputs are built in vector registers with no horizontal sums: for every k, the
// widened column times x[k] is added to them. Blocks are shared out over ATen's threads.
#include <torch/extension.h>

#include <ATen/Parallel.h>

#include "kernels.h"

#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <cmath>
#include <cstring>
#include <vector>

namespace {

using gpt_kernels::kBlock;

// relu?(x @ W^T * scale + bias) of every row of x, blocks shared out over ATen's threads.
template <typename W>
torch::Tensor blocked_linear(const char* name, const torch::Tensor& x, const torch::Tensor& packed, int64_t N,
                             const float* scale, const c10::optional<torch::Tensor>& bias, bool relu) {
  TORCH_CHECK(x.device().is_cpu() && packed.device().is_cpu(), name, ": CPU tensors only");
  TORCH_CHECK(x.dim() == 2 && x.is_contiguous() && x.scalar_type() == at::kFloat, name,
              ": x must be a contiguous (M, K) float32 tensor");
  TORCH_CHECK(packed.dim() == 3 && packed.is_contiguous() && packed.size(2) == kBlock, name,
              ": the weight must be packed as a contiguous (N / 64, K, 64) tensor");
  const int64_t M = x.size(0), K = x.size(1), blocks = packed.size(0);
  TORCH_CHECK(packed.size(1) == K, name, ": x has ", K, " features, the weight expects ", packed.size(1));
  TORCH_CHECK(N > (blocks - 1) * kBlock && N <= blocks * kBlock, name, ": ", N, " outputs do not match ", blocks,
              " packed blocks");
  const float* b = nullptr;
  if (bias.has_value()) {
    TORCH_CHECK(bias->dim() == 1 && bias->size(0) == N && bias->is_contiguous() && bias->scalar_type() == at::kFloat,
                name, ": the bias must be a contiguous (N,) float32 tensor");
    b = bias->data_ptr<float>();
  }
  auto out = torch::empty({M, N}, x.options());
  const float* xp = x.data_ptr<float>();
  const W* wp = static_cast<const W*>(packed.data_ptr());
  float* op = out.data_ptr<float>();
  at::parallel_for(0, blocks, 1, [&](int64_t begin, int64_t end) {
    gpt_kernels::linear_part(wp, K, scale, b, relu, xp, M, op, N, begin * kBlock, std::min(end * kBlock, N));
  });
  return out;
}

// Row k of the packing's W^T: out[blk * 64 + j] = w[(blk * K + k) * 64 + j] for every block, the
// last one cut at N. Widened with AVX-512 where there is a fast exact way, else one by one.
// With `scale` (int8 weights only) each value is multiplied by its column's scale first (in float32;
// a bfloat16 result is then rounded to nearest even).
inline void widen_run(const int8_t* src, const float* scale, int64_t width, float* dst) {
  int64_t j = 0;
#if defined(__AVX512F__)
  for (; j + 16 <= width; j += 16) {
    __m512 f = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src + j))));
    if (scale) f = _mm512_mul_ps(f, _mm512_loadu_ps(scale + j));
    _mm512_storeu_ps(dst + j, f);
  }
#endif
  for (; j < width; ++j) dst[j] = static_cast<float>(src[j]) * (scale ? scale[j] : 1.0f);
}

#if defined(__AVX512F__)
// Stores 16 finite floats as bfloat16, rounded to nearest even. A float that is already a
// bfloat16 (its lower 16 bits zero) is stored exactly: the added 0x7FFF (+1 if odd) never carries.
inline void store_bf16_rne(at::BFloat16* dst, __m512 v) {
  __m512i bits = _mm512_castps_si512(v);
  const __m512i odd = _mm512_and_si512(_mm512_srli_epi32(bits, 16), _mm512_set1_epi32(1));
  bits = _mm512_add_epi32(bits, _mm512_add_epi32(_mm512_set1_epi32(0x7FFF), odd));
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst), _mm512_cvtepi32_epi16(_mm512_srli_epi32(bits, 16)));
}
#endif

inline void widen_run(const int8_t* src, const float* scale, int64_t width, at::BFloat16* dst) {
  int64_t j = 0;
#if defined(__AVX512F__)
  // Unscaled, |q| <= 128 fits bfloat16's 8 significant bits: the float is its exact bfloat16.
  // Scaled, the float is rounded to nearest even (finite values only).
  for (; j + 16 <= width; j += 16) {
    const __m512 f =
        _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src + j))));
    store_bf16_rne(dst + j, scale ? _mm512_mul_ps(f, _mm512_loadu_ps(scale + j)) : f);
  }
#endif
  for (; j < width; ++j) dst[j] = static_cast<at::BFloat16>(static_cast<float>(src[j]) * (scale ? scale[j] : 1.0f));
}

inline void widen_run(const int8_t* src, const float* /*scale: none for an int8 result*/, int64_t width, int8_t* dst) {
  std::memcpy(dst, src, static_cast<size_t>(width));
}

inline void widen_run(const at::Half* src, const float* /*scale: int8 only*/, int64_t width, float* dst) {
  int64_t j = 0;
#if defined(__AVX512F__)
  for (; j + 16 <= width; j += 16) {
    _mm512_storeu_ps(dst + j, _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + j))));
  }
#endif
  for (; j < width; ++j) dst[j] = static_cast<float>(src[j]);
}

inline void widen_run(const at::Half* src, const float* /*scale: int8 only*/, int64_t width, at::BFloat16* dst) {
  for (int64_t j = 0; j < width; ++j) dst[j] = static_cast<at::BFloat16>(static_cast<float>(src[j]));
}

template <typename W, typename O>
void unpack_cols_rows(const W* w, const float* scale, int64_t K, int64_t N, int64_t k0, int64_t k1, O* out) {
  const int64_t blocks = (N + kBlock - 1) / kBlock;
  for (int64_t k = k0; k < k1; ++k) {
    for (int64_t blk = 0; blk < blocks; ++blk) {
      widen_run(w + (blk * K + k) * kBlock, scale ? scale + blk * kBlock : nullptr,
                std::min(kBlock, N - blk * kBlock), out + k * N + blk * kBlock);
    }
  }
}

}  // namespace

// x: (M, K) float32, contiguous. packed: (ceil(N / 64), K, 64) float16 (see the layout above; rows
// past N are padding). bias: (N,) float32 or None. Returns relu?(x @ W^T + bias) as (M, N) float32.
torch::Tensor linear_f16(const torch::Tensor& x, const torch::Tensor& packed, int64_t N,
                         const c10::optional<torch::Tensor>& bias, bool relu) {
  TORCH_CHECK(packed.scalar_type() == at::kHalf, "linear_f16: the packed weight must be float16");
  return blocked_linear<at::Half>("linear_f16", x, packed, N, nullptr, bias, relu);
}

// As linear_f16 with an int8 packed weight and scale (N,) float32: relu?((x @ Q^T) * scale + bias).
torch::Tensor linear_int8(const torch::Tensor& x, const torch::Tensor& packed, const torch::Tensor& scale,
                          const c10::optional<torch::Tensor>& bias, bool relu) {
  TORCH_CHECK(packed.scalar_type() == at::kChar, "linear_int8: the packed weight must be int8");
  TORCH_CHECK(scale.dim() == 1 && scale.is_contiguous() && scale.scalar_type() == at::kFloat,
              "linear_int8: the scales must be a contiguous (N,) float32 tensor");
  return blocked_linear<int8_t>("linear_int8", x, packed, scale.size(0), scale.data_ptr<float>(), bias, relu);
}

// The packed weight as W^T, a row-major (K, N) tensor of `dtype` (float32 or bfloat16; both hold
// an int8 weight exactly, float32 a float16 one): the prefill's many rows are then one GEMM for
// oneDNN (x @ W^T). Unscaled, or with an int8 weight's `scale` (N,) float32 applied (then rounded
// to `dtype`). Row k gathers the k-th 64-wide column of every block: contiguous runs in, one
// contiguous row out.
torch::Tensor unpack_cols(const torch::Tensor& packed, int64_t N, at::ScalarType dtype,
                          const c10::optional<torch::Tensor>& scale) {
  TORCH_CHECK(packed.device().is_cpu() && packed.dim() == 3 && packed.is_contiguous() && packed.size(2) == kBlock,
              "unpack_cols: the weight must be a contiguous CPU tensor packed as (N / 64, K, 64)");
  const int64_t K = packed.size(1), blocks = packed.size(0);
  TORCH_CHECK(N > (blocks - 1) * kBlock && N <= blocks * kBlock, "unpack_cols: ", N, " columns do not match ",
              blocks, " packed blocks");
  TORCH_CHECK(dtype == at::kFloat || dtype == at::kBFloat16 || (dtype == at::kChar && !scale.has_value() &&
                                                                  packed.scalar_type() == at::kChar),
              "unpack_cols: float32 or bfloat16, or an int8 weight unscaled as int8");
  TORCH_CHECK(packed.scalar_type() == at::kHalf || packed.scalar_type() == at::kChar,
              "unpack_cols: the packed weight must be float16 or int8");
  const float* scales = nullptr;
  if (scale.has_value()) {
    TORCH_CHECK(packed.scalar_type() == at::kChar, "unpack_cols: scales apply to an int8 weight only");
    TORCH_CHECK(scale->dim() == 1 && scale->size(0) == N && scale->is_contiguous() &&
                    scale->scalar_type() == at::kFloat && scale->device().is_cpu(),
                "unpack_cols: the scales must be a contiguous (N,) float32 CPU tensor");
    scales = scale->data_ptr<float>();
  }
  auto out = torch::empty({K, N}, packed.options().dtype(dtype));
  at::parallel_for(0, K, 8, [&](int64_t k0, int64_t k1) {
    if (packed.scalar_type() == at::kHalf) {
      const at::Half* w = packed.data_ptr<at::Half>();
      if (dtype == at::kFloat) unpack_cols_rows(w, scales, K, N, k0, k1, out.data_ptr<float>());
      else unpack_cols_rows(w, scales, K, N, k0, k1, out.data_ptr<at::BFloat16>());
    } else {
      const int8_t* w = packed.data_ptr<int8_t>();
      if (dtype == at::kFloat) unpack_cols_rows(w, scales, K, N, k0, k1, out.data_ptr<float>());
      else if (dtype == at::kChar) unpack_cols_rows(w, scales, K, N, k0, k1, out.data_ptr<int8_t>());
      else unpack_cols_rows(w, scales, K, N, k0, k1, out.data_ptr<at::BFloat16>());
    }
  });
  return out;
}

namespace {

// float32 of 16 inputs at `p` (float32 or bfloat16: a bfloat16 is a float's upper half).
#if defined(__AVX512F__)
inline __m512 load16(const float* p) { return _mm512_loadu_ps(p); }
inline __m512 load16(const at::BFloat16* p) {
  const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}
#endif

// Row r of x (K values) to int8 with one scale: q = round(x / s), s = max|x| / 127 (s = 1 for a
// row of zeros). Rounded to nearest even (the vector conversion's default mode, as nearbyint).
template <typename T>
float quantize_row(const T* x, int64_t K, int8_t* q) {
  float amax = 0.0f;
  int64_t k = 0;
#if defined(__AVX512F__)
  __m512 m = _mm512_setzero_ps();
  for (; k + 16 <= K; k += 16) m = _mm512_max_ps(m, _mm512_abs_ps(load16(x + k)));
  amax = _mm512_reduce_max_ps(m);
#endif
  for (; k < K; ++k) amax = std::max(amax, std::fabs(static_cast<float>(x[k])));
  const float s = amax > 0.0f ? amax / 127.0f : 1.0f, inv = 1.0f / s;
  k = 0;
#if defined(__AVX512F__)
  const __m512 vinv = _mm512_set1_ps(inv), lim = _mm512_set1_ps(127.0f);
  for (; k + 16 <= K; k += 16) {
    const __m512 v = _mm512_min_ps(_mm512_max_ps(_mm512_mul_ps(load16(x + k), vinv), -lim), lim);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(q + k), _mm512_cvtsepi32_epi8(_mm512_cvtps_epi32(v)));
  }
#endif
  for (; k < K; ++k) {
    q[k] = static_cast<int8_t>(std::nearbyint(std::min(127.0f, std::max(-127.0f, static_cast<float>(x[k]) * inv))));
  }
  return s;
}

// One output row: relu?(acc * row_scale * col_scale + bias) rounded to bfloat16 (nearest even).
void dequantize_row(const int32_t* acc, float rs, const float* cs, const float* bias, bool relu, int64_t N,
                    at::BFloat16* out) {
  int64_t j = 0;
#if defined(__AVX512F__)
  const __m512 vrs = _mm512_set1_ps(rs), zero = _mm512_setzero_ps();
  for (; j + 16 <= N; j += 16) {
    __m512 v = _mm512_mul_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_loadu_si512(acc + j)), vrs), _mm512_loadu_ps(cs + j));
    if (bias) v = _mm512_add_ps(v, _mm512_loadu_ps(bias + j));
    if (relu) v = _mm512_max_ps(v, zero);
    store_bf16_rne(out + j, v);
  }
#endif
  for (; j < N; ++j) {
    float v = static_cast<float>(acc[j]) * rs * cs[j] + (bias ? bias[j] : 0.0f);
    out[j] = static_cast<at::BFloat16>(relu ? std::max(v, 0.0f) : v);
  }
}

}  // namespace

// The prefill's product on int8 weights with int8 activations (the fast mode, compute-bound rows):
// each row of x (bfloat16 or float32) quantised to int8 with its own scale (max|x| -> 127), one
// int8 GEMM with int32 sums (at::_int_mm: oneDNN's VNNI kernels, ~2x a bfloat16 GEMM's rate on
// CPUs without AMX), then relu?(sums * row_scale * scale + bias) as bfloat16.
// wt: the weight as W^T, a contiguous (K, N) int8 tensor (unpack_cols(..., int8)); scale (N,) and
// bias (N,) float32.
torch::Tensor linear_w8a8(const torch::Tensor& x, const torch::Tensor& wt, const torch::Tensor& scale,
                          const c10::optional<torch::Tensor>& bias, bool relu) {
  TORCH_CHECK(x.device().is_cpu() && wt.device().is_cpu(), "linear_w8a8: CPU tensors only");
  TORCH_CHECK(x.dim() == 2 && x.is_contiguous() && (x.scalar_type() == at::kBFloat16 || x.scalar_type() == at::kFloat),
              "linear_w8a8: x must be a contiguous (M, K) bfloat16 or float32 tensor");
  TORCH_CHECK(wt.dim() == 2 && wt.is_contiguous() && wt.scalar_type() == at::kChar,
              "linear_w8a8: the weight must be a contiguous (K, N) int8 tensor (W^T)");
  const int64_t M = x.size(0), K = x.size(1), N = wt.size(1);
  TORCH_CHECK(wt.size(0) == K, "linear_w8a8: x has ", K, " features, the weight expects ", wt.size(0));
  TORCH_CHECK(scale.dim() == 1 && scale.size(0) == N && scale.is_contiguous() && scale.scalar_type() == at::kFloat,
              "linear_w8a8: the scales must be a contiguous (N,) float32 tensor");
  const float* b = nullptr;
  if (bias.has_value()) {
    TORCH_CHECK(bias->dim() == 1 && bias->size(0) == N && bias->is_contiguous() && bias->scalar_type() == at::kFloat,
                "linear_w8a8: the bias must be a contiguous (N,) float32 tensor");
    b = bias->data_ptr<float>();
  }
  auto q = torch::empty({M, K}, x.options().dtype(at::kChar));
  std::vector<float> row_scale(static_cast<size_t>(M));
  at::parallel_for(0, M, 16, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      int8_t* qr = q.data_ptr<int8_t>() + r * K;
      row_scale[r] = x.scalar_type() == at::kFloat ? quantize_row(x.data_ptr<float>() + r * K, K, qr)
                                                   : quantize_row(x.data_ptr<at::BFloat16>() + r * K, K, qr);
    }
  });
  const auto acc = at::_int_mm(q, wt);  // (M, N) int32
  auto out = torch::empty({M, N}, x.options().dtype(at::kBFloat16));
  const float* cs = scale.data_ptr<float>();
  at::parallel_for(0, M, 16, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      dequantize_row(acc.data_ptr<int32_t>() + r * N, row_scale[r], cs, b, relu, N, out.data_ptr<at::BFloat16>() + r * N);
    }
  });
  return out;
}
