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

#include <algorithm>
#include <cmath>
#include <vector>

namespace {

// Finite "minus infinity": the module is built with -ffast-math, which assumes no infinities.
constexpr float kMasked = -1e30f;

inline float widen(float x) { return x; }
inline float widen(c10::BFloat16 x) { return static_cast<float>(x); }

template <typename KV, int HD>
void attend(const float* qkv, KV* k, KV* v, const bool* valid, float* out, int64_t heads, int64_t rows,
            int64_t n, const int64_t* ks, const int64_t* vs, int64_t valid_stride, float scale) {
  const int64_t dim = heads * HD;
  at::parallel_for(0, rows * heads, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> scores(n + 1);
    for (int64_t bh = begin; bh < end; ++bh) {
      const int64_t b = bh / heads, h = bh % heads;
      const float* qp = qkv + b * 3 * dim + h * HD;
      KV* kp = k + b * ks[0] + h * ks[1];
      KV* vp = v + b * vs[0] + h * vs[1];
      for (int d = 0; d < HD; ++d) {
        kp[n * ks[2] + d] = KV(qp[dim + d]);
        vp[n * vs[2] + d] = KV(qp[2 * dim + d]);
      }
      const bool* ok = valid == nullptr ? nullptr : valid + b * valid_stride;
      float qv[HD];
      for (int d = 0; d < HD; ++d) qv[d] = qp[d] * scale;
      float top = kMasked;
      for (int64_t j = 0; j <= n; ++j) {
        const KV* row = kp + j * ks[2];
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
        const KV* row = vp + j * vs[2];
        const float p = scores[j];
        for (int d = 0; d < HD; ++d) acc[d] += p * widen(row[d]);
      }
      float* o = out + b * dim + h * HD;
      const float inv = 1.f / total;
      for (int d = 0; d < HD; ++d) o[d] = acc[d] * inv;
    }
  });
}

template <typename KV>
void dispatch_head_dim(int64_t hd, const float* qkv, KV* k, KV* v, const bool* valid, float* out,
                       int64_t heads, int64_t rows, int64_t n, const int64_t* ks, const int64_t* vs,
                       int64_t valid_stride, float scale) {
  switch (hd) {
    case 8: return attend<KV, 8>(qkv, k, v, valid, out, heads, rows, n, ks, vs, valid_stride, scale);
    case 16: return attend<KV, 16>(qkv, k, v, valid, out, heads, rows, n, ks, vs, valid_stride, scale);
    case 32: return attend<KV, 32>(qkv, k, v, valid, out, heads, rows, n, ks, vs, valid_stride, scale);
    case 64: return attend<KV, 64>(qkv, k, v, valid, out, heads, rows, n, ks, vs, valid_stride, scale);
    case 128: return attend<KV, 128>(qkv, k, v, valid, out, heads, rows, n, ks, vs, valid_stride, scale);
    default: TORCH_CHECK(false, "decode_attention: head size ", hd, " is not built (8, 16, 32, 64 or 128)");
  }
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
    dispatch_head_dim<float>(hd, qkv.data_ptr<float>(), k_cache.data_ptr<float>(), v_cache.data_ptr<float>(),
                             valid_ptr, out.data_ptr<float>(), H, B, n, ks, vs, valid_stride, scale);
  } else if (k_cache.scalar_type() == at::kBFloat16) {
    dispatch_head_dim<c10::BFloat16>(hd, qkv.data_ptr<float>(), k_cache.data_ptr<c10::BFloat16>(),
                                     v_cache.data_ptr<c10::BFloat16>(), valid_ptr, out.data_ptr<float>(), H, B,
                                     n, ks, vs, valid_stride, scale);
  } else {
    TORCH_CHECK(false, "decode_attention: the caches must be float32 or bfloat16");
  }
  return out;
}
