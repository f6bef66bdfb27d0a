// Block-scaled uint8 codes of an activation for oneDNN's int8 convolutions (app/models/nn/qconv.py):
// the fast mode's HiFi-GAN residual blocks. Each block of output samples gets its own scale and
// zero point, taken over the input window it reads (the block and the convolution's reach on both
// sides), so quiet passages keep their resolution next to loud ones.
#include <torch/extension.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <tuple>
#include <vector>

namespace {

// True when the float's bits are an inf or NaN (the module is built with -ffast-math, under which
// the compiler may assume no float is one).
inline uint32_t special_bits(float v) {
  uint32_t bits;
  std::memcpy(&bits, &v, sizeof bits);
  return static_cast<uint32_t>((bits & 0x7f800000u) == 0x7f800000u);
}

// One block: the extremes of leaky_relu over its window's rows [first, first + window) of x (rows
// outside [0, samples) are zeros), its scale and zero point, its codes. Values by value: the codes
// are bytes, which may alias anything, so nothing the loops read may sit behind a reference.
template <typename T>
bool quantize_block(const T* x, int64_t samples, int64_t C, int64_t first, int64_t window, float slope,
                    uint8_t* out, float* scale_out, int32_t* zero_out) {
  const int64_t lo_t = std::max<int64_t>(first, 0), hi_t = std::min<int64_t>(first + window, samples);
  float lo = 0.f, hi = 0.f;  // zero is always in range: padding and masked tails stay exact
  uint32_t flags = 0;
  const T* span = x + lo_t * C;
  const int64_t count = std::max<int64_t>(hi_t - lo_t, 0) * C;  // the window's rows lie contiguously
  for (int64_t i = 0; i < count; ++i) {
    const float v = static_cast<float>(span[i]);
    lo = std::min(lo, v);
    hi = std::max(hi, v);
    flags |= special_bits(v);
  }
  lo *= slope;  // leaky_relu is monotonic: the extremes of its output are those of x mapped
  const float scale = hi > lo ? (hi - lo) / 255.f : 1.f;
  const float zero = std::min(std::max(std::floor(-lo / scale + 0.5f), 0.f), 255.f);
  const float inv = 1.f / scale;
  *scale_out = scale;
  *zero_out = static_cast<int32_t>(zero);
  const int64_t before = (lo_t - first) * C, after = (first + window - std::max(hi_t, lo_t)) * C;
  std::memset(out, static_cast<int>(zero), static_cast<size_t>(before));
  uint8_t* dst = out + before;
  for (int64_t i = 0; i < count; ++i) {
    float v = static_cast<float>(span[i]);
    v = v < 0.f ? v * slope : v;
    // Round half up of a value clamped to [0, 255] (vectorises; nearbyint is a libm call).
    const float r = std::min(std::max(v * inv + zero, 0.f), 255.f);
    dst[i] = static_cast<uint8_t>(static_cast<int32_t>(r + 0.5f));
  }
  std::memset(dst + count, static_cast<int>(zero), static_cast<size_t>(after));
  return flags != 0;
}

template <typename T>
bool quantize(const T* x, int64_t samples, int64_t C, int64_t blocks, int64_t block, int64_t reach, float slope,
              uint8_t* codes, float* scales, int32_t* zeros) {
  const int64_t window = block + 2 * reach;
  std::vector<char> bad(static_cast<size_t>(blocks), 0);
  at::parallel_for(0, blocks, 1, [&](int64_t n0, int64_t n1) {
    for (int64_t n = n0; n < n1; ++n) {
      bad[n] = quantize_block(x, samples, C, n * block - reach, window, slope, codes + n * window * C, scales + n,
                              zeros + n);
    }
  });
  return std::any_of(bad.begin(), bad.end(), [](char f) { return f != 0; });
}

template <typename R>
void finish(const float* acc, int64_t rows, int64_t Co, int64_t block, int64_t start, const float* scales,
            const int32_t* zeros, const float* colsum, const float* bias, const R* residual, R* out) {
  at::parallel_for(0, rows, 256, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t n = r / block;
      const float s = scales[n], z = static_cast<float>(zeros[n]);
      const float* a = acc + r * Co;
      R* dst = out + (start + r) * Co;
      const R* res = residual == nullptr ? nullptr : residual + (start + r) * Co;
      for (int64_t c = 0; c < Co; ++c) {
        float v = s * (a[c] - z * colsum[c]);
        if (bias != nullptr) v += bias[c];
        if (res != nullptr) v += static_cast<float>(res[c]);
        dst[c] = static_cast<R>(v);
      }
    }
  });
}

void check_activation(const torch::Tensor& x, const char* what) {
  TORCH_CHECK(x.device().is_cpu() && x.dim() == 4 && x.size(0) == 1 && x.size(2) == 1 &&
                  x.is_contiguous(at::MemoryFormat::ChannelsLast),
              what, " must be a (1, C, 1, T) channels-last CPU tensor");
  TORCH_CHECK(x.scalar_type() == at::kFloat || x.scalar_type() == at::kBFloat16, what, " must be float32 or bfloat16");
}

}  // namespace

// x (1, C, 1, T) channels-last -> (codes (blocks, block + 2 reach, C) uint8, scales (blocks,) float32,
// zero points (blocks,) int32): block n covers output samples [n block, (n + 1) block) and its codes
// the input window [n block - reach, (n + 1) block + reach) of leaky_relu(x, slope) (slope 1: x),
// samples outside [0, T) as zero.
std::tuple<torch::Tensor, torch::Tensor, torch::Tensor> quantize_blocks(const torch::Tensor& x, double slope,
                                                                         int64_t block, int64_t reach,
                                                                         int64_t blocks) {
  check_activation(x, "quantize_blocks: x");
  TORCH_CHECK(slope > 0 && slope <= 1, "quantize_blocks: the leaky ReLU slope must be in (0, 1], got ", slope);
  TORCH_CHECK(block > 0 && reach >= 0 && blocks > 0, "quantize_blocks: block > 0, reach >= 0 and blocks > 0");
  const int64_t C = x.size(1), T = x.size(3);
  TORCH_CHECK(blocks * block >= T, "quantize_blocks: ", blocks, " blocks of ", block, " do not cover ", T, " samples");
  auto codes = torch::empty({blocks, block + 2 * reach, C}, x.options().dtype(at::kByte));
  auto scales = torch::empty({blocks}, x.options().dtype(at::kFloat));
  auto zeros = torch::empty({blocks}, x.options().dtype(at::kInt));
  const float s = static_cast<float>(slope);
  const bool bad =
      x.scalar_type() == at::kFloat
          ? quantize(x.data_ptr<float>(), T, C, blocks, block, reach, s, codes.data_ptr<uint8_t>(),
                     scales.data_ptr<float>(), zeros.data_ptr<int32_t>())
          : quantize(x.data_ptr<at::BFloat16>(), T, C, blocks, block, reach, s, codes.data_ptr<uint8_t>(),
                     scales.data_ptr<float>(), zeros.data_ptr<int32_t>());
  TORCH_CHECK(!bad, "quantize_blocks: the activation holds inf or NaN (a broken model or input)");
  return {codes, scales, zeros};
}

// out[start + r] = scale[n] * (acc[r] - zero[n] * colsum) + bias (+ residual[start + r]) for the rows r
// of acc (blocks x block rows of C_out, block n = r / block) that fall inside out's T samples. acc is
// the int8 convolution's float32 output (its weight scales applied, no bias); out and residual
// (1, C_out, 1, T) channels-last of one dtype.
void finish_blocks(const torch::Tensor& acc, const torch::Tensor& scales, const torch::Tensor& zeros,
                   const torch::Tensor& colsum, const c10::optional<torch::Tensor>& bias,
                   const c10::optional<torch::Tensor>& residual, torch::Tensor& out, int64_t block, int64_t start) {
  check_activation(out, "finish_blocks: out");
  const int64_t Co = out.size(1), T = out.size(3);
  TORCH_CHECK(acc.scalar_type() == at::kFloat && acc.is_contiguous(at::MemoryFormat::ChannelsLast) && acc.dim() == 4 &&
                  acc.size(1) == Co,
              "finish_blocks: acc must be a channels-last float32 (blocks, C_out, rows, phases) tensor");
  const int64_t blocks = acc.size(0);
  TORCH_CHECK(acc.size(2) * acc.size(3) == block, "finish_blocks: acc's blocks are not ", block, " samples");
  TORCH_CHECK(scales.numel() == blocks && zeros.numel() == blocks && scales.scalar_type() == at::kFloat &&
                  zeros.scalar_type() == at::kInt && scales.is_contiguous() && zeros.is_contiguous(),
              "finish_blocks: one float32 scale and int32 zero point per block");
  TORCH_CHECK(colsum.numel() == Co && colsum.scalar_type() == at::kFloat && colsum.is_contiguous(),
              "finish_blocks: colsum must be (C_out,) float32");
  const float* b = nullptr;
  if (bias.has_value()) {
    TORCH_CHECK(bias->numel() == Co && bias->scalar_type() == at::kFloat && bias->is_contiguous(),
                "finish_blocks: bias must be (C_out,) float32");
    b = bias->data_ptr<float>();
  }
  if (residual.has_value()) {
    check_activation(*residual, "finish_blocks: residual");
    TORCH_CHECK(residual->scalar_type() == out.scalar_type() && residual->size(1) == Co && residual->size(3) == T,
                "finish_blocks: the residual must be out's shape and dtype");
  }
  TORCH_CHECK(start >= 0 && start <= T, "finish_blocks: start ", start, " outside ", T, " samples");
  const int64_t rows = std::min(blocks * block, T - start);
  const float* a = acc.data_ptr<float>();
  if (out.scalar_type() == at::kFloat) {
    finish(a, rows, Co, block, start, scales.data_ptr<float>(), zeros.data_ptr<int32_t>(), colsum.data_ptr<float>(), b,
           residual.has_value() ? residual->data_ptr<float>() : nullptr, out.data_ptr<float>());
  } else {
    finish(a, rows, Co, block, start, scales.data_ptr<float>(), zeros.data_ptr<int32_t>(), colsum.data_ptr<float>(), b,
           residual.has_value() ? residual->data_ptr<at::BFloat16>() : nullptr, out.data_ptr<at::BFloat16>());
  }
}
