// The decoding step of a whole layer stack in one call (DecodePlan::run).
//
// Per layer (the GPT's post-norm transformer layer at one new column per row):
//   qkv = x W_qkv^T + b; att = attention of the new column over the cache (keys/values written at
//   column n); x = LayerNorm(x + att W_out^T + b); x = LayerNorm(x + relu(x W_1^T + b) W_2^T + b)
// with the inner loops of linear.cpp and attention.cpp (kernels.h), so the numbers are those of the
// per-op path up to summation order. What changes is the scheduling. Called op by op from Python
// the step made ~200 calls per token, each waking the thread pool and paying dispatch (measured at
// 2 threads: the same GEMVs ran at less than half the bandwidth they reach back to back).
//
// Here one OpenMP region runs the whole stack as a sequence of phases, four per layer, each a set
// of independent work items: (A) per group of heads, their q, k and v and their attention; (B) per
// block of 64 outputs, the out projection; (C) per chunk of hidden features, linear1 + ReLU; (D)
// per block of outputs, linear2. Every item reads whole packed blocks, in order, which is what the
// GEMV's prefetching needs. Threads take items from a shared counter; the thread that finishes a
// phase's last item opens the next one, after B and D adding the residual and normalising x first.
// Nothing waits for a particular thread: on a busy machine a thread that lost its CPU leaves its
// items to the others (with a fixed share per thread and barriers, such a thread stalled every
// layer: tokens of 20-30 ms instead of 3). Idle threads spin briefly, then sleep on a futex until
// the phase moves.
#include <torch/extension.h>

#include <ATen/Parallel.h>
#include <omp.h>

#include "kernels.h"

#if defined(__linux__)
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

#include <atomic>
#include <climits>
#include <cmath>
#include <memory>
#include <thread>
#include <tuple>
#include <vector>

namespace {

using gpt_kernels::kBlock;

struct Linear {
  torch::Tensor packed;  // (ceil(N / 64), K, 64) float16 or int8
  int64_t n = 0, k = 0;
  torch::Tensor scale, bias;  // (N,) float32, or undefined
  bool relu = false;

  // See gpt_kernels::linear_part: outputs [lo, hi).
  void part(const float* x, int64_t M, float* y, int64_t ys, int64_t lo, int64_t hi) const {
    const float* s = scale.defined() ? scale.data_ptr<float>() : nullptr;
    const float* b = bias.defined() ? bias.data_ptr<float>() : nullptr;
    if (packed.scalar_type() == at::kChar) {
      gpt_kernels::linear_part(packed.data_ptr<int8_t>(), k, s, b, relu, x, M, y, ys, lo, hi);
    } else {
      gpt_kernels::linear_part(packed.data_ptr<at::Half>(), k, s, b, relu, x, M, y, ys, lo, hi);
    }
  }
};

// x = LayerNorm(x + y) * w + b for all M rows of width D (statistics in double).
void add_norm(float* x, const float* y, const float* w, const float* b, int64_t M, int64_t D, double eps) {
  for (int64_t r = 0; r < M; ++r) {
    float* row = x + r * D;
    const float* add = y + r * D;
    double sum = 0.0;
    for (int64_t i = 0; i < D; ++i) {
      row[i] += add[i];
      sum += row[i];
    }
    const double mean = sum / D;
    double sq = 0.0;
    for (int64_t i = 0; i < D; ++i) sq += (row[i] - mean) * (row[i] - mean);
    const float m = static_cast<float>(mean), rstd = static_cast<float>(1.0 / std::sqrt(sq / D + eps));
    for (int64_t i = 0; i < D; ++i) row[i] = (row[i] - m) * rstd * w[i] + b[i];
  }
}

// The number of the open phase, which threads wait on: spin ~kSpin pauses (tens of microseconds,
// the usual wait is a few), then sleep on a futex until it moves.
class PhaseGate {
 public:
  int open() const { return phase_.load(std::memory_order_acquire); }

  // The store and the load of sleepers_ are sequentially consistent (and the sleeper's count and
  // check below): a waiter that registered after this load finds the new phase (or futex does).
  void advance(int to) {
    phase_.store(to, std::memory_order_seq_cst);
    if (sleepers_.load(std::memory_order_seq_cst) > 0) wake_all();
  }

  // Returns once the open phase is no longer `phase`.
  void wait_past(int phase) {
    for (int i = 0; i < kSpin; ++i) {
      if (open() != phase) return;
      _mm_pause();
    }
    sleepers_.fetch_add(1, std::memory_order_seq_cst);
    while (phase_.load(std::memory_order_seq_cst) == phase) sleep_while(phase);
    sleepers_.fetch_sub(1, std::memory_order_acq_rel);
  }

 private:
  static constexpr int kSpin = 4000;

#if defined(__linux__)
  // Returns at once when phase_ no longer holds `phase` (the kernel checks it atomically).
  void sleep_while(int phase) {
    syscall(SYS_futex, reinterpret_cast<int*>(&phase_), FUTEX_WAIT_PRIVATE, phase, nullptr, nullptr, 0);
  }
  void wake_all() {
    syscall(SYS_futex, reinterpret_cast<int*>(&phase_), FUTEX_WAKE_PRIVATE, INT_MAX, nullptr, nullptr, 0);
  }
#else
  void sleep_while(int) { std::this_thread::yield(); }
  void wake_all() {}
#endif

  std::atomic<int> phase_{0}, sleepers_{0};
  static_assert(sizeof(std::atomic<int>) == sizeof(int), "the futex word is the atomic's int");
};

struct Layer {
  Linear qkv, out, ffn_in, ffn_out;
  torch::Tensor norm1_w, norm1_b, norm2_w, norm2_b;  // (D,) float32
};

using LinearSpec = std::tuple<torch::Tensor, int64_t, c10::optional<torch::Tensor>, c10::optional<torch::Tensor>, bool>;
using LayerSpec = std::tuple<LinearSpec, LinearSpec, LinearSpec, LinearSpec, torch::Tensor, torch::Tensor,
                             torch::Tensor, torch::Tensor>;

torch::Tensor vector_of(const torch::Tensor& t, int64_t n, const char* what) {
  TORCH_CHECK(t.device().is_cpu() && t.dim() == 1 && t.size(0) == n && t.is_contiguous() &&
                  t.scalar_type() == at::kFloat,
              "DecodePlan: ", what, " must be a contiguous (", n, ",) float32 CPU tensor");
  return t;
}

Linear linear_of(const LinearSpec& spec, int64_t k, const char* what) {
  Linear lin;
  const auto& [packed, n, scale, bias, relu] = spec;
  TORCH_CHECK(packed.device().is_cpu() && packed.dim() == 3 && packed.is_contiguous() && packed.size(2) == kBlock &&
                  packed.size(1) == k,
              "DecodePlan: the ", what, " weight must be a contiguous CPU tensor packed as (N / 64, ", k, ", 64)");
  TORCH_CHECK(packed.scalar_type() == at::kHalf || packed.scalar_type() == at::kChar, "DecodePlan: the ", what,
              " weight must be float16 or int8");
  TORCH_CHECK(n > (packed.size(0) - 1) * kBlock && n <= packed.size(0) * kBlock, "DecodePlan: ", n,
              " outputs of the ", what, " weight do not match its ", packed.size(0), " blocks");
  TORCH_CHECK(scale.has_value() == (packed.scalar_type() == at::kChar), "DecodePlan: the ", what,
              " weight needs scales exactly when it is int8");
  lin.packed = packed;
  lin.n = n;
  lin.k = k;
  if (scale.has_value()) lin.scale = vector_of(*scale, n, "a scale");
  if (bias.has_value()) lin.bias = vector_of(*bias, n, "a bias");
  lin.relu = relu;
  return lin;
}

}  // namespace

class DecodePlan {
 public:
  // layers: per layer (qkv, out, ffn_in, ffn_out, norm1_w, norm1_b, norm2_w, norm2_b), each linear
  // (packed weight, N, scale (int8) or None, bias or None, relu). heads: attention heads.
  DecodePlan(const std::vector<LayerSpec>& layers, int64_t heads, double eps) : heads_(heads), eps_(eps) {
    TORCH_CHECK(!layers.empty() && heads > 0, "DecodePlan: at least one layer and one head");
    dim_ = std::get<0>(std::get<0>(layers[0])).size(1);
    TORCH_CHECK(dim_ % heads == 0, "DecodePlan: ", dim_, " features do not split into ", heads, " heads");
    for (const auto& spec : layers) {
      Layer l;
      l.qkv = linear_of(std::get<0>(spec), dim_, "qkv");
      TORCH_CHECK(l.qkv.n == 3 * dim_, "DecodePlan: the qkv projection must give 3 * ", dim_, " outputs");
      l.out = linear_of(std::get<1>(spec), dim_, "out");
      TORCH_CHECK(l.out.n == dim_, "DecodePlan: the out projection must give ", dim_, " outputs");
      const int64_t hidden = std::get<1>(std::get<2>(spec));
      l.ffn_in = linear_of(std::get<2>(spec), dim_, "ffn_in");
      l.ffn_out = linear_of(std::get<3>(spec), hidden, "ffn_out");
      TORCH_CHECK(l.ffn_out.n == dim_, "DecodePlan: the ffn_out projection must give ", dim_, " outputs");
      hidden_ = std::max(hidden_, hidden);
      l.norm1_w = vector_of(std::get<4>(spec), dim_, "a norm weight");
      l.norm1_b = vector_of(std::get<5>(spec), dim_, "a norm bias");
      l.norm2_w = vector_of(std::get<6>(spec), dim_, "a norm weight");
      l.norm2_b = vector_of(std::get<7>(spec), dim_, "a norm bias");
      layers_.push_back(std::move(l));
    }
  }

  // x: (B, D) float32 contiguous, the step's input rows. k_layers / v_layers: per layer a cache
  // (>= B, H, S, hd) float32 or bfloat16 with a contiguous last dimension, written at column n.
  // valid: (>= B, > n) bool or None. Returns the stack's output rows (B, D) float32.
  torch::Tensor run(const torch::Tensor& x, const std::vector<torch::Tensor>& k_layers,
                    const std::vector<torch::Tensor>& v_layers, int64_t n,
                    const c10::optional<torch::Tensor>& valid) const {
    TORCH_CHECK(x.device().is_cpu() && x.dim() == 2 && x.size(1) == dim_ && x.is_contiguous() &&
                    x.scalar_type() == at::kFloat,
                "DecodePlan.run: x must be a contiguous (B, ", dim_, ") float32 CPU tensor");
    TORCH_CHECK(k_layers.size() == layers_.size() && v_layers.size() == layers_.size(), "DecodePlan.run: ",
                layers_.size(), " key and value caches expected");
    const int64_t B = x.size(0), hd = dim_ / heads_;
    const auto dtype = k_layers[0].scalar_type();
    TORCH_CHECK(dtype == at::kFloat || dtype == at::kBFloat16, "DecodePlan.run: caches must be float32 or bfloat16");
    for (size_t l = 0; l < layers_.size(); ++l) {
      for (const auto* c : {&k_layers[l], &v_layers[l]}) {
        TORCH_CHECK(c->device().is_cpu() && c->dim() == 4 && c->size(0) >= B && c->size(1) == heads_ &&
                        c->size(3) == hd && c->stride(3) == 1 && c->scalar_type() == dtype &&
                        c->sizes() == k_layers[0].sizes(),
                    "DecodePlan.run: cache ", l, " must be (>= ", B, ", ", heads_, ", S, ", hd,
                    ") with a contiguous last dimension, as every other");
      }
    }
    TORCH_CHECK(n >= 0 && n < k_layers[0].size(2), "DecodePlan.run: column ", n, " is outside the cache");
    const bool* ok = nullptr;
    int64_t ok_stride = 0;
    if (valid.has_value()) {
      const auto& m = *valid;
      TORCH_CHECK(m.dim() == 2 && m.scalar_type() == at::kBool && m.size(0) >= B && m.size(1) > n && m.stride(1) == 1,
                  "DecodePlan.run: valid must be (B, > n) bool with a contiguous last dimension");
      ok = m.data_ptr<bool>();
      ok_stride = m.stride(0);
    }
    auto out = x.clone();
    if (dtype == at::kFloat) {
      stack<float>(out, k_layers, v_layers, n, ok, ok_stride);
    } else {
      stack<c10::BFloat16>(out, k_layers, v_layers, n, ok, ok_stride);
    }
    return out;
  }

 private:
  template <typename KV>
  void stack(torch::Tensor& x, const std::vector<torch::Tensor>& k_layers, const std::vector<torch::Tensor>& v_layers,
             int64_t n, const bool* ok, int64_t ok_stride) const {
    const int64_t B = x.size(0), D = dim_, H = heads_, hd = D / H, F = hidden_;
    const auto head = gpt_kernels::attend_for<KV>(hd, "DecodePlan.run");
    const float scale = 1.f / std::sqrt(static_cast<float>(hd));
    // Items: groups of heads whose features fill one block of 64 where they can (hd 32: pairs),
    // single blocks of the projections' outputs, chunks of 4 blocks of hidden features.
    const int64_t group = (hd < kBlock && kBlock % hd == 0 && H % (kBlock / hd) == 0) ? kBlock / hd : 1;
    const int64_t chunk = 4 * kBlock;
    const int64_t counts[4] = {H / group, (D + kBlock - 1) / kBlock, (F + chunk - 1) / chunk, (D + kBlock - 1) / kBlock};
    const int64_t phases = 4 * static_cast<int64_t>(layers_.size());
    auto opts = x.options();
    // Shared: q/k/v, att, hidden features and the projections' outputs (each item writes its own).
    auto qkv_t = torch::empty({B, 3 * D}, opts), att_t = torch::empty({B, D}, opts);
    auto hid_t = torch::empty({B, F}, opts), y_t = torch::empty({B, D}, opts);
    float *qkv = qkv_t.data_ptr<float>(), *att = att_t.data_ptr<float>(), *hid = hid_t.data_ptr<float>();
    float *y = y_t.data_ptr<float>(), *xp = x.data_ptr<float>();
    std::vector<KV*> kp, vp;
    for (size_t l = 0; l < layers_.size(); ++l) {
      kp.push_back(k_layers[l].data_ptr<KV>());
      vp.push_back(v_layers[l].data_ptr<KV>());
    }
    const auto ks = k_layers[0].strides(), vs = v_layers[0].strides();
    // Per phase: the next item to take and the items finished.
    std::unique_ptr<std::atomic<int64_t>[]> next(new std::atomic<int64_t>[phases]());
    std::unique_ptr<std::atomic<int64_t>[]> done(new std::atomic<int64_t>[phases]());
    PhaseGate gate;

    const auto item = [&](size_t l, int stage, int64_t i) {
      const Layer& L = layers_[l];
      if (stage == 0) {
        const int64_t h0 = i * group, h1 = h0 + group;
        for (int64_t s = 0; s < 3; ++s) {  // q, k, v of these heads
          L.qkv.part(xp, B, qkv, 3 * D, s * D + h0 * hd, s * D + h1 * hd);
        }
        std::vector<float> scores(n + 1);
        for (int64_t b = 0; b < B; ++b) {
          for (int64_t h = h0; h < h1; ++h) {
            head(qkv + b * 3 * D + h * hd, D, kp[l] + b * ks[0] + h * ks[1], vp[l] + b * vs[0] + h * vs[1], ks[2],
                 vs[2], ok == nullptr ? nullptr : ok + b * ok_stride, n, scale, scores.data(), att + b * D + h * hd);
          }
        }
      } else if (stage == 1) {
        L.out.part(att, B, y, D, i * kBlock, std::min((i + 1) * kBlock, D));
      } else if (stage == 2) {
        L.ffn_in.part(xp, B, hid, F, i * chunk, std::min((i + 1) * chunk, F));
      } else {
        L.ffn_out.part(hid, B, y, D, i * kBlock, std::min((i + 1) * kBlock, D));
      }
    };
    // The last item of a phase done: after a projection, x = LayerNorm(x + y); then the next phase.
    const auto finish = [&](size_t l, int stage) {
      const Layer& L = layers_[l];
      if (stage == 1) add_norm(xp, y, L.norm1_w.data_ptr<float>(), L.norm1_b.data_ptr<float>(), B, D, eps_);
      if (stage == 3) add_norm(xp, y, L.norm2_w.data_ptr<float>(), L.norm2_b.data_ptr<float>(), B, D, eps_);
    };

    const int threads = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(at::get_num_threads(), counts[1])));
#pragma omp parallel num_threads(threads)
    {
      for (int p = gate.open(); p < phases; p = gate.open()) {
        const size_t l = static_cast<size_t>(p / 4);
        const int stage = p % 4;
        bool closed = false;
        for (int64_t i = next[p].fetch_add(1, std::memory_order_relaxed); i < counts[stage];
             i = next[p].fetch_add(1, std::memory_order_relaxed)) {
          item(l, stage, i);
          if (done[p].fetch_add(1, std::memory_order_acq_rel) == counts[stage] - 1) {
            finish(l, stage);
            gate.advance(p + 1);
            closed = true;
            break;
          }
        }
        if (!closed) gate.wait_past(p);
      }
    }
  }

  std::vector<Layer> layers_;
  int64_t heads_, dim_ = 0, hidden_ = 0;
  double eps_;
};

void bind_decode_plan(pybind11::module& m) {
  pybind11::class_<DecodePlan>(m, "DecodePlan")
      .def(pybind11::init<const std::vector<LayerSpec>&, int64_t, double>())
      .def("run", &DecodePlan::run, pybind11::call_guard<pybind11::gil_scoped_release>());
}
