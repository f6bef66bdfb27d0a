// Single-query attention over a key/value cache: one decoding step of every (row, head).
//
// Input: the step's packed projection qkv (B, 3 * H * hd) = [q; k; v] per row, as the model's
// in_proj produces it. For each row b and head h: the new key and value are written (rounded to
// the cache dtype) into cache column n, then
//   s_j = scale * <q[b,h], k[b,h,j]>   (j <= n; columns with valid[b,j] == false are skipped)
//   out[b, h*hd:(h+1)*hd] = sum_j softmax(s)_j * v[b,h,j]
// The (row, head) pairs are shared out over ATen's intra-op threads. Keys and values are read
// once each, in order, which is what bounds this step on a CPU: at batch 1 the generic flash
// kernel reaches about half the memory bandwidth on these shapes. Keys/values may be float32 or
// bfloat16 (then widened on the fly); queries and output are float32.
#include <torch/extension.h>

#include <ATen/Parallel.h>

#include "kernels.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace {

template <typename KV>
void attend(int64_t hd, const float* qkv, KV* k, KV* v, const bool* valid, float* out, int64_t heads, int64_t rows,
            int64_t n, const int64_t* ks, const int64_t* vs, int64_t valid_stride, float scale) {
  const auto head = gpt_kernels::attend_for<KV>(hd, "decode_attention");
  const int64_t dim = heads * hd;
  at::parallel_for(0, rows * heads, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> scores(n + 1);
    for (int64_t bh = begin; bh < end; ++bh) {
      const int64_t b = bh / heads, h = bh % heads;
      const bool* ok = valid == nullptr ? nullptr : valid + b * valid_stride;
      head(qkv + b * 3 * dim + h * hd, dim, k + b * ks[0] + h * ks[1], v + b * vs[0] + h * vs[1], ks[2], vs[2], ok,
           n, scale, scores.data(), out + b * dim + h * hd);
    }
  });
}

}  // namespace

// qkv: (B, 3 * H * hd) float32, contiguous. k_cache, v_cache: (>= B, H, S, hd) float32 or bfloat16
// with a contiguous last dimension, written at column n. n: index of the new column (n < S); the
// attention reads columns [0, n]. valid: (>= B, >= n + 1) bool or None. Returns (B, H * hd) float32.
torch::Tensor decode_attention(const torch::Tensor& qkv, torch::Tensor& k_cache, torch::Tensor& v_cache,
                               int64_t n, const c10::optional<torch::Tensor>& valid) {
  TORCH_CHECK(qkv.device().is_cpu() && k_cache.device().is_cpu() && v_cache.device().is_cpu(),
              "decode_attention: CPU tensors only");
  TORCH_CHECK(qkv.dim() == 2 && qkv.is_contiguous() && qkv.scalar_type() == at::kFloat,
              "decode_attention: qkv must be a contiguous (B, 3 * H * hd) float32 tensor");
  TORCH_CHECK(k_cache.dim() == 4 && k_cache.sizes() == v_cache.sizes(),
              "decode_attention: the caches must be (B, H, S, hd) of one shape");
  TORCH_CHECK(k_cache.scalar_type() == v_cache.scalar_type(), "decode_attention: the caches must share a dtype");
  TORCH_CHECK(k_cache.stride(3) == 1 && v_cache.stride(3) == 1,
              "decode_attention: the caches need a contiguous last dimension");
  const int64_t B = qkv.size(0), H = k_cache.size(1), hd = k_cache.size(3);
  TORCH_CHECK(k_cache.size(0) >= B && qkv.size(1) == 3 * H * hd,
              "decode_attention: qkv holds ", qkv.size(1), " values per row, the caches expect 3 * ", H, " * ", hd);
  TORCH_CHECK(n >= 0 && n < k_cache.size(2), "decode_attention: column ", n, " is outside the cache");
  const bool* valid_ptr = nullptr;
  int64_t valid_stride = 0;
  if (valid.has_value()) {
    const auto& m = *valid;
    TORCH_CHECK(m.dim() == 2 && m.scalar_type() == at::kBool && m.size(0) >= B && m.size(1) > n &&
                    m.stride(1) == 1,
                "decode_attention: valid must be (B, > n) bool with a contiguous last dimension");
    valid_ptr = m.data_ptr<bool>();
    valid_stride = m.stride(0);
  }
  auto out = torch::empty({B, H * hd}, qkv.options());
  const int64_t ks[3] = {k_cache.stride(0), k_cache.stride(1), k_cache.stride(2)};
  const int64_t vs[3] = {v_cache.stride(0), v_cache.stride(1), v_cache.stride(2)};
  const float scale = 1.f / std::sqrt(static_cast<float>(hd));
  if (k_cache.scalar_type() == at::kFloat) {
    attend<float>(hd, qkv.data_ptr<float>(), k_cache.data_ptr<float>(), v_cache.data_ptr<float>(),
                             valid_ptr, out.data_ptr<float>(), H, B, n, ks, vs, valid_stride, scale);
  } else if (k_cache.scalar_type() == at::kBFloat16) {
    attend<c10::BFloat16>(hd, qkv.data_ptr<float>(), k_cache.data_ptr<c10::BFloat16>(),
                                     v_cache.data_ptr<c10::BFloat16>(), valid_ptr, out.data_ptr<float>(), H, B,
                                     n, ks, vs, valid_stride, scale);
  } else {
    TORCH_CHECK(false, "decode_attention: the caches must be float32 or bfloat16");
  }
  return out;
}

// Many-query attention in bfloat16 (the fast mode's prefill and HuBERT's layers): for every row b,
// head h and query i, out[b, i, h*hd:(h+1)*hd] = softmax_j(scale * <q_i, k_j>) v_j over the keys
// j in [lo[b, i], hi[b, i]) (each query's allowed keys are one range: the GPT's text queries see
// the text, its prompt queries the text and the prompt up to themselves, a padding query itself).
//
// Why not torch's flash attention: on these shapes (16 heads of 32 or 12 of 64, ~300 queries) its
// CPU kernel ran at ~90 GFLOP/s in bfloat16 with the mask computing every masked score. Here the
// products and the softmax are float32 (bfloat16 inputs widened exactly, one rounding of the
// output): a head's keys are widened once and transposed (K^T, hd x T), so kRows queries at a
// time take 64 scores per pass as independent FMA chains sharing each load of K^T, then the
// weighted sum of the values the same way. Only each group's key range is computed.
namespace {

constexpr int kRows = 4;

template <int HD>
void attend_rows(const at::BFloat16* q, int64_t qs, const at::BFloat16* k, int64_t ks, const at::BFloat16* v,
                 int64_t vs, const int32_t* lo, const int32_t* hi, int64_t T, float scale, at::BFloat16* out,
                 int64_t os, float* kt, float* vf, float* s) {
  const int64_t Tp = (T + 63) / 64 * 64;  // K^T's row stride: whole passes of 64 scores
  for (int64_t j = 0; j < T; ++j) {
    for (int d = 0; d < HD; ++d) {
      kt[d * Tp + j] = static_cast<float>(k[j * ks + d]);
      vf[j * HD + d] = static_cast<float>(v[j * vs + d]);
    }
  }
  for (int d = 0; d < HD; ++d) std::fill(kt + d * Tp + T, kt + (d + 1) * Tp, 0.f);
  for (int64_t i0 = 0; i0 < T; i0 += kRows) {
    // A group of kRows queries (the last one repeated past T: computed, not written).
    const int rows = static_cast<int>(std::min<int64_t>(kRows, T - i0));
    int64_t a[kRows], b[kRows];
    alignas(64) float qv[kRows][HD];
    for (int r = 0; r < kRows; ++r) {
      const int64_t i = i0 + std::min(r, rows - 1);
      a[r] = lo[i];
      b[r] = hi[i];
      for (int d = 0; d < HD; ++d) qv[r][d] = static_cast<float>(q[i * qs + d]) * scale;
    }
    const int64_t first = *std::min_element(a, a + kRows), last = *std::max_element(b, b + kRows);
#if defined(__AVX512F__)
    for (int64_t j = first / 64 * 64; j < last; j += 64) {  // j + 64 <= Tp
      __m512 acc[kRows][4];
      for (auto& row : acc) for (auto& x : row) x = _mm512_setzero_ps();
      for (int d = 0; d < HD; ++d) {
        const float* col = kt + d * Tp + j;
        const __m512 k0 = _mm512_loadu_ps(col), k1 = _mm512_loadu_ps(col + 16), k2 = _mm512_loadu_ps(col + 32),
                     k3 = _mm512_loadu_ps(col + 48);
        for (int r = 0; r < kRows; ++r) {
          const __m512 qd = _mm512_set1_ps(qv[r][d]);
          acc[r][0] = _mm512_fmadd_ps(qd, k0, acc[r][0]);
          acc[r][1] = _mm512_fmadd_ps(qd, k1, acc[r][1]);
          acc[r][2] = _mm512_fmadd_ps(qd, k2, acc[r][2]);
          acc[r][3] = _mm512_fmadd_ps(qd, k3, acc[r][3]);
        }
      }
      for (int r = 0; r < kRows; ++r) {
        for (int u = 0; u < 4; ++u) _mm512_storeu_ps(s + r * Tp + j + 16 * u, acc[r][u]);
      }
    }
#else
    for (int r = 0; r < kRows; ++r) {
      for (int64_t j = first; j < last; ++j) {
        float t = 0.f;
        for (int d = 0; d < HD; ++d) t += qv[r][d] * kt[d * Tp + j];
        s[r * Tp + j] = t;
      }
    }
#endif
    // Softmax of each query over its own range; the group's other columns weigh 0.
    float inv[kRows];
    for (int r = 0; r < kRows; ++r) {
      float* sr = s + r * Tp;
      float top = gpt_kernels::kMasked;
      for (int64_t j = a[r]; j < b[r]; ++j) top = std::max(top, sr[j]);
      float total = 0.f;
#pragma omp simd reduction(+ : total)
      for (int64_t j = a[r]; j < b[r]; ++j) {
        const float e = std::exp(sr[j] - top);
        sr[j] = e;
        total += e;
      }
      std::fill(sr + first, sr + std::max(first, a[r]), 0.f);
      std::fill(sr + std::min(last, b[r]), sr + last, 0.f);
      inv[r] = 1.f / total;
    }
#if defined(__AVX512F__)
    __m512 acc[kRows][HD / 16];
    for (auto& row : acc) for (auto& x : row) x = _mm512_setzero_ps();
    for (int64_t j = first; j < last; ++j) {
      __m512 vv[HD / 16];
      for (int u = 0; u < HD / 16; ++u) vv[u] = _mm512_loadu_ps(vf + j * HD + 16 * u);
      for (int r = 0; r < kRows; ++r) {
        const __m512 p = _mm512_set1_ps(s[r * Tp + j]);
        for (int u = 0; u < HD / 16; ++u) acc[r][u] = _mm512_fmadd_ps(p, vv[u], acc[r][u]);
      }
    }
    for (int r = 0; r < rows; ++r) {
      alignas(64) float o[HD];
      for (int u = 0; u < HD / 16; ++u) _mm512_store_ps(o + 16 * u, _mm512_mul_ps(acc[r][u], _mm512_set1_ps(inv[r])));
      for (int d = 0; d < HD; ++d) out[(i0 + r) * os + d] = static_cast<at::BFloat16>(o[d]);
    }
#else
    for (int r = 0; r < rows; ++r) {
      float acc[HD] = {};
      for (int64_t j = first; j < last; ++j) {
        const float p = s[r * Tp + j];
        for (int d = 0; d < HD; ++d) acc[d] += p * vf[j * HD + d];
      }
      for (int d = 0; d < HD; ++d) out[(i0 + r) * os + d] = static_cast<at::BFloat16>(acc[d] * inv[r]);
    }
#endif
  }
}

using AttendRowsFn = void (*)(const at::BFloat16*, int64_t, const at::BFloat16*, int64_t, const at::BFloat16*,
                              int64_t, const int32_t*, const int32_t*, int64_t, float, at::BFloat16*, int64_t,
                              float*, float*, float*);

}  // namespace

// q, k, v: (B, H, T, hd) bfloat16 with a contiguous last dimension (views of a projection's rows);
// lo, hi: (B, T) int32, each query's keys [lo, hi) (0 <= lo < hi <= T). hd: 16, 32, 64 or 128.
// Returns (B, T, H * hd) bfloat16: the heads side by side, the out projection's input rows.
torch::Tensor prefill_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                const torch::Tensor& lo, const torch::Tensor& hi) {
  TORCH_CHECK(q.device().is_cpu() && k.device().is_cpu() && v.device().is_cpu(), "prefill_attention: CPU tensors only");
  TORCH_CHECK(q.dim() == 4 && q.sizes() == k.sizes() && q.sizes() == v.sizes(),
              "prefill_attention: q, k and v must be (B, H, T, hd) of one shape");
  for (const auto* t : {&q, &k, &v}) {
    TORCH_CHECK(t->scalar_type() == at::kBFloat16 && t->stride(3) == 1,
                "prefill_attention: q, k and v must be bfloat16 with a contiguous last dimension");
  }
  const int64_t B = q.size(0), H = q.size(1), T = q.size(2), hd = q.size(3);
  TORCH_CHECK(T > 0, "prefill_attention: no queries");
  for (const auto* t : {&lo, &hi}) {
    TORCH_CHECK(t->device().is_cpu() && t->dim() == 2 && t->size(0) == B && t->size(1) == T && t->is_contiguous() &&
                    t->scalar_type() == at::kInt,
                "prefill_attention: lo and hi must be contiguous (B, T) int32 tensors");
  }
  const int32_t *lp = lo.data_ptr<int32_t>(), *hp = hi.data_ptr<int32_t>();
  for (int64_t i = 0; i < B * T; ++i) {
    TORCH_CHECK(0 <= lp[i] && lp[i] < hp[i] && hp[i] <= T, "prefill_attention: query ", i % T, " of row ", i / T,
                " has the key range [", lp[i], ", ", hp[i], "), not a non-empty part of [0, ", T, ")");
  }
  AttendRowsFn fn = nullptr;
  switch (hd) {
    case 16: fn = &attend_rows<16>; break;
    case 32: fn = &attend_rows<32>; break;
    case 64: fn = &attend_rows<64>; break;
    case 128: fn = &attend_rows<128>; break;
    default: TORCH_CHECK(false, "prefill_attention: head size ", hd, " is not built (16, 32, 64 or 128)");
  }
  auto out = torch::empty({B, T, H * hd}, q.options().memory_format(at::MemoryFormat::Contiguous));
  const float scale = 1.f / std::sqrt(static_cast<float>(hd));
  const int64_t Tp = (T + 63) / 64 * 64;
  at::parallel_for(0, B * H, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> kt(hd * Tp), vf(T * hd), scores(kRows * Tp);
    for (int64_t bh = begin; bh < end; ++bh) {
      const int64_t b = bh / H, h = bh % H;
      fn(q.data_ptr<at::BFloat16>() + b * q.stride(0) + h * q.stride(1), q.stride(2),
         k.data_ptr<at::BFloat16>() + b * k.stride(0) + h * k.stride(1), k.stride(2),
         v.data_ptr<at::BFloat16>() + b * v.stride(0) + h * v.stride(1), v.stride(2), lp + b * T, hp + b * T, T, scale,
         out.data_ptr<at::BFloat16>() + b * T * H * hd + h * hd, H * hd, kt.data(), vf.data(), scores.data());
    }
  });
  return out;
}
