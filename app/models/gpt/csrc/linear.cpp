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

#include <algorithm>
#include <cstdint>

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
    gpt_kernels::linear_part(wp, K, scale, b, relu, xp, K, M, op, N, begin * kBlock, std::min(end * kBlock, N), 0, K);
  });
  return out;
}

// Block b of the packing back to rows n0..n0+63 of a row-major (N, K) weight of type O, tile by
// tile (16 columns of the block) so that reads and writes both stay in cache lines.
template <typename W, typename O>
void unpack_block(const W* w, int64_t K, int64_t n0, int64_t width, O* out) {
  constexpr int64_t kTile = 16;
  for (int64_t k0 = 0; k0 < K; k0 += kTile) {
    const int64_t kn = std::min(kTile, K - k0);
    for (int64_t j = 0; j < width; ++j) {
      O* row = out + (n0 + j) * K + k0;
      const W* col = w + k0 * kBlock + j;
      for (int64_t i = 0; i < kn; ++i) row[i] = static_cast<O>(static_cast<float>(col[i * kBlock]));
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

// The packed weight back to a row-major (N, K) tensor of `dtype` (float32 or bfloat16; both hold a
// float16 or int8 weight exactly), unscaled: the prefill's many rows are a GEMM for oneDNN.
torch::Tensor unpack_rows(const torch::Tensor& packed, int64_t N, at::ScalarType dtype) {
  TORCH_CHECK(packed.device().is_cpu() && packed.dim() == 3 && packed.is_contiguous() && packed.size(2) == kBlock,
              "unpack_rows: the weight must be a contiguous CPU tensor packed as (N / 64, K, 64)");
  const int64_t K = packed.size(1), blocks = packed.size(0);
  TORCH_CHECK(N > (blocks - 1) * kBlock && N <= blocks * kBlock, "unpack_rows: ", N, " rows do not match ",
              blocks, " packed blocks");
  TORCH_CHECK(dtype == at::kFloat || dtype == at::kBFloat16, "unpack_rows: float32 or bfloat16 only");
  TORCH_CHECK(packed.scalar_type() == at::kHalf || packed.scalar_type() == at::kChar,
              "unpack_rows: the packed weight must be float16 or int8");
  auto out = torch::empty({N, K}, packed.options().dtype(dtype));
  at::parallel_for(0, blocks, 1, [&](int64_t begin, int64_t end) {
    for (int64_t blk = begin; blk < end; ++blk) {
      const int64_t n0 = blk * kBlock, width = std::min(kBlock, N - n0);
      const int64_t at = blk * K * kBlock;
      if (packed.scalar_type() == at::kHalf) {
        const at::Half* w = packed.data_ptr<at::Half>() + at;
        if (dtype == at::kFloat) unpack_block(w, K, n0, width, out.data_ptr<float>());
        else unpack_block(w, K, n0, width, out.data_ptr<at::BFloat16>());
      } else {
        const int8_t* w = packed.data_ptr<int8_t>() + at;
        if (dtype == at::kFloat) unpack_block(w, K, n0, width, out.data_ptr<float>());
        else unpack_block(w, K, n0, width, out.data_ptr<at::BFloat16>());
      }
    }
  });
  return out;
}
