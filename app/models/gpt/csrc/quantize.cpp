// Per-tensor uint8 codes of an activation for oneDNN's int8 convolutions (app/models/nn/int8.py):
// the fast mode's HiFi-GAN residual blocks quantise each convolution's input once, whole.
#include <torch/extension.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <tuple>
#include <vector>

namespace {

// The extremes of x; true when x holds an inf or NaN (tested on the bits: the module is built
// with -ffast-math, under which the compiler may assume no float is one).
template <typename T>
bool min_max(const T* x, int64_t n, float& lo, float& hi) {
  float a = lo, b = hi;
  uint32_t special = 0;
  for (int64_t i = 0; i < n; ++i) {
    const float v = static_cast<float>(x[i]);
    a = std::min(a, v);
    b = std::max(b, v);
    uint32_t bits;
    std::memcpy(&bits, &v, sizeof bits);
    special |= static_cast<uint32_t>((bits & 0x7f800000u) == 0x7f800000u);
  }
  lo = a;
  hi = b;
  return special != 0;
}

// codes = clamp(round(leaky_relu(x) / scale) + zero_point, 0, 255); leaky_relu with slope 1 is x.
template <typename T>
void encode(const T* x, int64_t n, float slope, float inv_scale, float zero_point, uint8_t* q) {
  for (int64_t i = 0; i < n; ++i) {
    float v = static_cast<float>(x[i]);
    v = v < 0.f ? v * slope : v;
    const float r = std::min(std::max(std::nearbyint(v * inv_scale) + zero_point, 0.f), 255.f);
    q[i] = static_cast<uint8_t>(r);
  }
}

template <typename T>
std::tuple<torch::Tensor, double, int64_t> quantize(const torch::Tensor& x, double slope, int64_t tail) {
  const int64_t n = x.numel();
  const T* data = x.data_ptr<T>();
  constexpr int64_t grain = 1 << 16;
  const int64_t chunks = std::max<int64_t>(1, (n + grain - 1) / grain);
  // Zero is always in range (padding is zero and stays exact).
  std::vector<float> los(chunks, 0.f), his(chunks, 0.f);
  std::vector<char> special(chunks, 0);
  at::parallel_for(0, chunks, 1, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) {
      const int64_t a = c * grain, b = std::min(n, a + grain);
      if (b > a) special[c] = min_max(data + a, b - a, los[c], his[c]);
    }
  });
  TORCH_CHECK(std::none_of(special.begin(), special.end(), [](char f) { return f != 0; }),
              "quantize_u8: the activation holds inf or NaN (a broken model or input)");
  const float s = static_cast<float>(slope);
  // leaky_relu is monotonic for a positive slope: the extremes of its output are those of x mapped.
  float lo = *std::min_element(los.begin(), los.end()) * s, hi = *std::max_element(his.begin(), his.end());
  const float scale = hi > lo ? (hi - lo) / 255.f : 1.f;
  const float zero_point = std::min(std::max(std::nearbyint(-lo / scale), 0.f), 255.f);
  auto q = torch::empty({n + tail}, x.options().dtype(at::kByte));
  uint8_t* codes = q.data_ptr<uint8_t>();
  const float inv = 1.f / scale;
  at::parallel_for(0, chunks, 1, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) {
      const int64_t a = c * grain, b = std::min(n, a + grain);
      if (b > a) encode(data + a, b - a, s, inv, zero_point, codes + a);
    }
  });
  std::fill(codes + n, codes + n + tail, static_cast<uint8_t>(zero_point));
  return {q, static_cast<double>(scale), static_cast<int64_t>(zero_point)};
}

}  // namespace

std::tuple<torch::Tensor, double, int64_t> quantize_u8(const torch::Tensor& x, double slope, int64_t tail) {
  TORCH_CHECK(x.device().is_cpu(), "quantize_u8: a CPU tensor only");
  TORCH_CHECK(x.is_non_overlapping_and_dense(), "quantize_u8: x must be dense in memory (any dimension order)");
  TORCH_CHECK(slope > 0 && slope <= 1, "quantize_u8: the leaky ReLU slope must be in (0, 1], got ", slope);
  TORCH_CHECK(tail >= 0, "quantize_u8: the tail must be >= 0, got ", tail);
  if (x.scalar_type() == at::kFloat) return quantize<float>(x, slope, tail);
  TORCH_CHECK(x.scalar_type() == at::kBFloat16, "quantize_u8: x must be float32 or bfloat16");
  return quantize<at::BFloat16>(x, slope, tail);
}
