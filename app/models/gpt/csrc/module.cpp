// The native kernels of the GPT's decoding step, as one Python extension module.
#include <torch/extension.h>

torch::Tensor decode_attention(const torch::Tensor& qkv, torch::Tensor& k_cache, torch::Tensor& v_cache,
                               int64_t n, const c10::optional<torch::Tensor>& valid);
torch::Tensor linear_f16(const torch::Tensor& x, const torch::Tensor& packed, int64_t N,
                         const c10::optional<torch::Tensor>& bias, bool relu);
torch::Tensor linear_int8(const torch::Tensor& x, const torch::Tensor& packed, const torch::Tensor& scale,
                          const c10::optional<torch::Tensor>& bias, bool relu);
torch::Tensor unpack_cols(const torch::Tensor& packed, int64_t N, at::ScalarType dtype,
                          const c10::optional<torch::Tensor>& scale);
torch::Tensor linear_w8a8(const torch::Tensor& x, const torch::Tensor& wt, const torch::Tensor& scale,
                          const c10::optional<torch::Tensor>& bias, bool relu);
torch::Tensor prefill_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                const torch::Tensor& lo, const torch::Tensor& hi);
std::tuple<torch::Tensor, torch::Tensor, torch::Tensor> quantize_blocks(const torch::Tensor& x, double slope,
                                                                         int64_t block, int64_t reach,
                                                                         int64_t blocks);
void finish_blocks(const torch::Tensor& acc, const torch::Tensor& scales, const torch::Tensor& zeros,
                   const torch::Tensor& colsum, const c10::optional<torch::Tensor>& bias,
                   const c10::optional<torch::Tensor>& residual, torch::Tensor& out, int64_t block, int64_t start);
void bind_decode_plan(pybind11::module& m);

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  // The GIL is released while they run, as torch's own ops do: other Python threads (the web
  // server, a second request) are not held up by the decoding loop.
  m.def("decode_attention", &decode_attention,
        "write a step's keys/values into the cache and attend the one query of every row and head",
        pybind11::call_guard<pybind11::gil_scoped_release>());
  m.def("linear_f16", &linear_f16, "relu?(x @ W^T + bias) for float32 x and a float16 weight packed in blocks of 64 outputs",
        pybind11::call_guard<pybind11::gil_scoped_release>());
  m.def("linear_int8", &linear_int8,
        "relu?((x @ Q^T) * scale + bias) for float32 x and an int8 weight packed in blocks of 64 outputs",
        pybind11::call_guard<pybind11::gil_scoped_release>());
  m.def("unpack_cols", &unpack_cols,
        "a weight packed in blocks of 64 outputs as W^T, (K, N) of float32 or bfloat16 (int8 ones optionally scaled), or int8 as int8",
        pybind11::arg("packed"), pybind11::arg("N"), pybind11::arg("dtype"), pybind11::arg("scale") = pybind11::none(),
        pybind11::call_guard<pybind11::gil_scoped_release>());
  m.def("linear_w8a8", &linear_w8a8,
        "relu?(x @ W^T * scale + bias) as bfloat16: x quantised to int8 per row, one int8 GEMM (the prefill)",
        pybind11::call_guard<pybind11::gil_scoped_release>());
  m.def("prefill_attention", &prefill_attention,
        "bfloat16 attention of many queries, each over its own key range (the prefill, HuBERT)",
        pybind11::call_guard<pybind11::gil_scoped_release>());
  m.def("quantize_blocks", &quantize_blocks,
        "(codes, scales, zero points): leaky_relu(x, slope) as uint8 codes per block of output samples, "
        "each over its input window (quantize.cpp)",
        pybind11::call_guard<pybind11::gil_scoped_release>());
  m.def("finish_blocks", &finish_blocks,
        "the block-scaled int8 convolution's output: per-block scale and zero point, bias, residual, into out",
        pybind11::call_guard<pybind11::gil_scoped_release>());
  // The whole decoding step of a layer stack in one call (step.cpp).
  bind_decode_plan(m);
}
