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
