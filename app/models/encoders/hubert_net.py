"""HuBERT-base as plain torch modules: the same maths and key names as ``transformers.HubertModel``.

Why not ``transformers``: importing ``HubertModel`` pulls in transformers' modeling stack, which
imports ``torch._dynamo`` and sympy — ~127 MB of Python objects kept for the life of the process,
a third as much again as the model's own weights. Inference needs 150 lines of it.

The network (config defaults of HuBERT-base, ``chinese-hubert-base``):

- feature encoder: 7 convolutions without bias (kernels 10,3,3,3,3,2,2, strides 5,2,2,2,2,2,2,
  512 channels), GroupNorm(512 groups) after the first, GELU after each: 320 samples per frame;
- projection: LayerNorm(512) -> Linear(512, 768);
- positional convolution: Conv1d(768, 768, 128, padding 64, 16 groups) with weight norm over
  dim 2, the last frame dropped (even kernel), GELU, added; then LayerNorm;
- 12 post-norm layers: ``h = LN(h + MHA(h))``, ``h = LN'(h + W2 gelu(W1 h))`` (12 heads, FFN 3072).

:func:`load_hubert_net` reads a transformers folder (``config.json`` + ``model.safetensors`` or
``pytorch_model.bin``) and returns None for configurations this module does not implement
(stable layer norm, layer-normed feature encoder, other activations...), so the caller can fall
back to transformers. Weights are memory-mapped, not copied.
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from app.messages import Message, said
from app.models.gpt.native import PREFILL_HEAD_DIMS, PrefillAttentionFn, prefill_attention_kernel
from app.models.nn.int8 import Int8Product, W8A8Fn, w8a8_kernel
from app.models.nn.layout import convs_as_2d, pointwise_fusion, to_2d
from app.models.nn.skip_init import without_init


@dataclass(frozen=True)
class HubertNetConfig:
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    conv_dim: tuple[int, ...] = (512,) * 7
    conv_kernel: tuple[int, ...] = (10, 3, 3, 3, 3, 2, 2)
    conv_stride: tuple[int, ...] = (5, 2, 2, 2, 2, 2, 2)
    num_conv_pos_embeddings: int = 128
    num_conv_pos_embedding_groups: int = 16
    layer_norm_eps: float = 1e-5

    @classmethod
    def from_transformers(cls, raw: dict) -> HubertNetConfig | None:
        """The config of a transformers ``config.json``, or None when it asks for other maths."""
        same = {
            "feat_extract_norm": "group",
            "do_stable_layer_norm": False,
            "hidden_act": "gelu",
            "feat_extract_activation": "gelu",
            "feat_proj_layer_norm": True,
            "conv_bias": False,
            "conv_pos_batch_norm": False,
        }
        if any(raw.get(key, value) != value for key, value in same.items()):
            return None
        try:
            return cls(
                hidden_size=int(raw.get("hidden_size", 768)),
                num_hidden_layers=int(raw.get("num_hidden_layers", 12)),
                num_attention_heads=int(raw.get("num_attention_heads", 12)),
                intermediate_size=int(raw.get("intermediate_size", 3072)),
                conv_dim=tuple(int(v) for v in raw.get("conv_dim", cls.conv_dim)),
                conv_kernel=tuple(int(v) for v in raw.get("conv_kernel", cls.conv_kernel)),
                conv_stride=tuple(int(v) for v in raw.get("conv_stride", cls.conv_stride)),
                num_conv_pos_embeddings=int(raw.get("num_conv_pos_embeddings", 128)),
                num_conv_pos_embedding_groups=int(raw.get("num_conv_pos_embedding_groups", 16)),
                layer_norm_eps=float(raw.get("layer_norm_eps", 1e-5)),
            )
        except (TypeError, ValueError):
            return None


class _ConvLayer(nn.Module):
    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, group_norm: bool) -> None:
        super().__init__()
        self.conv = nn.Conv1d(c_in, c_out, kernel, stride=stride, bias=False)
        if group_norm:
            self.layer_norm = nn.GroupNorm(c_out, c_out, affine=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if hasattr(self, "layer_norm"):
            return F.gelu(self.layer_norm(self.conv(x)))
        fused = getattr(self.conv, "gelu", None)  # channels-last (Conv1dAs2d): GELU in the convolution
        return fused(x) if fused is not None else F.gelu(self.conv(x))


class _FeatureEncoder(nn.Module):
    """The waveform's conv stack. Its first layer's output (512 channels at 3.2 kHz: ~37 MB for
    5 s) is normalised over the whole clip; the later layers then run on windows of
    ``chunk_frames`` output frames, each with the input its receptive field needs, so only one
    window's activations exist at a time (~100 MB less at the peak, same values: unpadded convs)."""

    def __init__(self, c: HubertNetConfig, chunk_frames: int = 64) -> None:
        super().__init__()
        dims = (1, *c.conv_dim)
        self.conv_layers = nn.ModuleList(
            _ConvLayer(dims[i], dims[i + 1], c.conv_kernel[i], c.conv_stride[i], group_norm=i == 0)
            for i in range(len(c.conv_dim))
        )
        self.chunk_frames = chunk_frames
        # Frames of the first layer's output per output frame (stride) and per output (reach).
        self.stride = math.prod(c.conv_stride[1:])
        reach = 1
        for kernel, stride in zip(reversed(c.conv_kernel[1:]), reversed(c.conv_stride[1:]), strict=True):
            reach = (reach - 1) * stride + kernel
        self.reach = reach

    channels_last = False

    def to_channels_last(self) -> None:
        """Run on channels-last ``(B, C, 1, T)`` activations (:mod:`app.models.nn.layout`), in place:
        oneDNN's own layout on CPU, ~a third less time in bf16 (same values up to summation order)."""
        convs_as_2d(self)
        self.channels_last = True
        # Windows of 128 frames: the layers' GEMMs (Conv1dAs2d._gemm) run ~20 % faster on the
        # longer rows than with 64 (5 s clip: 28 vs 35 ms at 2 threads), for ~8 MB more at the peak.
        self.chunk_frames = max(self.chunk_frames, 128)

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        """(B, N) -> (B, C, N // 320 - ish); channels-last: its memory is (B, T, C)."""
        rest = self.conv_layers[1:]
        length, layer_one = self._first_layer(wav)  # the first layer's output frames [a, b)
        frames = (length - self.reach) // self.stride + 1
        if frames <= self.chunk_frames:
            return self._squeeze(self._rest(rest, layer_one(0, length)))
        parts = []
        for a in range(0, frames, self.chunk_frames):
            b = min(frames, a + self.chunk_frames)
            parts.append(self._rest(rest, layer_one(a * self.stride, (b - 1) * self.stride + self.reach)))
        return self._squeeze(torch.cat(parts, dim=-1))

    def _first_layer(self, wav: torch.Tensor) -> tuple[int, Callable[[int, int], torch.Tensor]]:
        """The first layer's output length and a function of its frames ``[a, b)`` (after its
        GELU). Its GroupNorm normalises every channel over the whole clip, so the conv runs over
        the whole clip first; in the channels-last bf16 layout of one clip the norm is folded into
        the convolution instead (:meth:`_folded_first`) and each window is computed when needed."""
        first = self.conv_layers[0]
        norm = getattr(first, "layer_norm", None)
        if (
            self.channels_last
            and wav.shape[0] == 1
            and norm is not None
            and norm.num_groups == norm.num_channels
        ):
            return self._folded_first(wav, first.conv, norm)
        x = first.conv(to_2d(wav[:, None]) if self.channels_last else wav[:, None])
        if norm is not None:
            x = norm(x)
        return x.shape[-1], lambda a, b: F.gelu(x[..., a:b])

    @staticmethod
    def _folded_first(
        wav: torch.Tensor, conv: nn.Module, norm: nn.GroupNorm
    ) -> tuple[int, Callable[[int, int], torch.Tensor]]:
        """GroupNorm(C, C) after a one-channel convolution, folded into it: output channel ``c`` is
        ``w_c . f(t)`` for the clip's windows ``f(t)`` (``k`` samples each), so its mean over the
        clip is ``w_c . mean(f)`` and its variance ``w_c^T cov(f) w_c``: a ``k x k`` covariance
        (float64) gives every channel's statistics, and ``gamma (w_c . f - mean_c) / sigma_c + beta``
        is again one affine map of ``f``. No normalised whole-clip activation is kept (~18 MB for
        5 s), and each window is one GEMM with its GELU (the same values up to bf16 rounding: the
        folded kernel is rounded once instead of the conv's output)."""
        channels, _, _, k = conv.weight.shape
        stride = conv.stride[1]
        windows = wav[0].unfold(0, k, stride).contiguous()  # (T1, k): the only copy of the signal
        f = windows.double()
        mean = f.mean(0)
        cov = f.t() @ f / f.shape[0] - torch.outer(mean, mean)
        w = conv.weight.reshape(channels, k).double()
        var = ((w @ cov) * w).sum(1).clamp_min(0.0)
        scale = norm.weight.double() / torch.sqrt(var + norm.eps)
        weight = (w * scale[:, None]).to(wav.dtype)
        bias = (norm.bias.double() - (w @ mean) * scale).to(wav.dtype)  # a conv bias cancels out
        fused = pointwise_fusion(wav.dtype)

        def window(a: int, b: int) -> torch.Tensor:
            rows = windows[a:b]
            if fused:
                out = torch.ops.mkldnn._linear_pointwise(rows, weight, bias, "gelu", [], "none")
            else:
                out = F.gelu(F.linear(rows, weight, bias))
            return out.view(1, 1, b - a, channels).permute(0, 3, 1, 2)  # (1, C, 1, b - a) channels-last

        return windows.shape[0], window

    def _squeeze(self, x: torch.Tensor) -> torch.Tensor:
        return x.squeeze(2) if self.channels_last else x  # (B, C, 1, T) -> (B, C, T) strided as (B, T, C)

    @staticmethod
    def _rest(layers: nn.ModuleList, x: torch.Tensor) -> torch.Tensor:
        for layer in layers:
            x = layer(x)
        return x


class _FeatureProjection(nn.Module):
    def __init__(self, c: HubertNetConfig) -> None:
        super().__init__()
        self.layer_norm = nn.LayerNorm(c.conv_dim[-1], eps=c.layer_norm_eps)
        self.projection = nn.Linear(c.conv_dim[-1], c.hidden_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.projection(self.layer_norm(x))


class _WeightNormConv(nn.Conv1d):
    """Conv1d whose kernel is ``g * v / ||v||`` over dim 2 (parameters named as transformers' parametrization).

    The kernel is computed per call, as transformers does (torch's own weight-norm op, so the
    values are the same), rather than kept: beside float32 weights mapped from the file a folded
    copy would hold 19 MB for good. :meth:`fold` keeps it where the weights are a copy anyway (bf16).
    """

    def __init__(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(*args, **kwargs)
        shape = self.weight.shape
        del self.weight
        self.weight_g = nn.Parameter(torch.empty(1, 1, shape[2]))
        self.weight_v = nn.Parameter(torch.empty(shape))

    folded: torch.Tensor | None = None

    def fold(self) -> None:
        """Compute the kernel once and drop ``g`` and ``v`` (inference only): for weights already
        copied out of the file (bf16) this holds no more memory than ``v`` did."""
        kernel = torch._weight_norm(self.weight_v, self.weight_g, 2).detach()
        del self.weight_g, self.weight_v
        self.folded = kernel

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        kernel = (
            self.folded if self.folded is not None else torch._weight_norm(self.weight_v, self.weight_g, 2)
        )
        return self._conv_forward(x, kernel, self.bias)


class _PositionalConv(nn.Module):
    def __init__(self, c: HubertNetConfig) -> None:
        super().__init__()
        k = c.num_conv_pos_embeddings
        self.conv = _WeightNormConv(
            c.hidden_size, c.hidden_size, k, padding=k // 2, groups=c.num_conv_pos_embedding_groups
        )
        self.trim = 1 if k % 2 == 0 else 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x.transpose(1, 2))
        if self.trim:
            x = x[:, :, : -self.trim]
        return F.gelu(x).transpose(1, 2)


class _Attention(nn.Module):
    def __init__(self, c: HubertNetConfig) -> None:
        super().__init__()
        d = c.hidden_size
        self.heads = c.num_attention_heads
        self.head_dim = d // self.heads
        self.k_proj = nn.Linear(d, d)
        self.v_proj = nn.Linear(d, d)
        self.q_proj = nn.Linear(d, d)
        self.out_proj = nn.Linear(d, d)

    # The native bf16 attention (set by HubertNet.for_inference where it exists), else SDPA.
    native: PrefillAttentionFn | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, _ = x.shape
        shape = (B, T, -1, self.head_dim)
        q = self.q_proj(x).view(shape).transpose(1, 2)
        k = self.k_proj(x).view(shape).transpose(1, 2)
        v = self.v_proj(x).view(shape).transpose(1, 2)
        if self.native is not None and q.dtype == torch.bfloat16 and q.device.type == "cpu":
            every = torch.zeros(B, T, dtype=torch.int32), torch.full((B, T), T, dtype=torch.int32)
            return self.out_proj(self.native(q, k, v, *every))  # (B, T, H * hd): the rows as they lie
        out = F.scaled_dot_product_attention(q, k, v, scale=self.head_dim**-0.5)
        return self.out_proj(out.transpose(1, 2).contiguous().reshape(B, T, -1).contiguous())


class _FeedForward(nn.Module):
    def __init__(self, c: HubertNetConfig) -> None:
        super().__init__()
        self.intermediate_dense = nn.Linear(c.hidden_size, c.intermediate_size)
        self.output_dense = nn.Linear(c.intermediate_size, c.hidden_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        fused = getattr(self.intermediate_dense, "gelu", None)  # _OneDnnLinear (fused) / _Int8Linear
        return self.output_dense(fused(x) if fused is not None else F.gelu(self.intermediate_dense(x)))


class _OneDnnLinear(nn.Module):
    """A bf16 ``nn.Linear`` through oneDNN's ``_linear_pointwise``: ~15 % less time than
    ``F.linear`` on HuBERT's shapes (5 s clip, 2 threads: ~10 ms per clip), and the FFN's GELU
    runs inside the GEMM. The weight stays as it is: a copy reordered once into oneDNN's blocked
    layout was another ~10 ms faster but raised the pipeline's peak RSS by ~35 MB."""

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        self.out_features = linear.out_features
        self.weight = linear.weight
        self.bias = linear.bias

    def _run(self, x: torch.Tensor, attr: str) -> torch.Tensor:
        flat = x.reshape(-1, x.shape[-1]).contiguous()
        out = torch.ops.mkldnn._linear_pointwise(flat, self.weight, self.bias, attr, [], "none")
        return out.view(*x.shape[:-1], self.out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._run(x, "none")

    def gelu(self, x: torch.Tensor) -> torch.Tensor:
        """``gelu(self(x))`` (the erf form)."""
        return self._run(x, "gelu")


class _Int8Linear(nn.Module):
    """An ``nn.Linear`` as an :class:`~app.models.nn.int8.Int8Product` (the weight quantised once
    per output row from the bf16 weight it replaces, each input row per call; bf16 out). HuBERT's
    linears, ~half of a 5 s reference's encoding, took ~125 -> ~65 ms at 2 threads (AMD Zen 4,
    no AMX), and the weights take half of bf16's memory (~85 MB less); the prompt codes of six
    clips agreed with float32's at 96.8 % (bf16 linears 97.2 %)."""

    def __init__(self, linear: nn.Linear, kernel: W8A8Fn) -> None:
        super().__init__()
        # A plain attribute, not buffers: a later ``.to(dtype)`` must not cast the scales.
        self.product = Int8Product.of(linear.weight, linear.bias, kernel)
        self.out_features = linear.out_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.product(x.reshape(-1, x.shape[-1])).view(*x.shape[:-1], self.out_features)

    def gelu(self, x: torch.Tensor) -> torch.Tensor:
        """``gelu(self(x))`` (the erf form, torch's own on the bf16 product)."""
        return F.gelu(self(x))


class _Layer(nn.Module):
    def __init__(self, c: HubertNetConfig) -> None:
        super().__init__()
        self.attention = _Attention(c)
        self.layer_norm = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)
        self.feed_forward = _FeedForward(c)
        self.final_layer_norm = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layer_norm(x + self.attention(x))
        return self.final_layer_norm(x + self.feed_forward(x))


class _Encoder(nn.Module):
    def __init__(self, c: HubertNetConfig) -> None:
        super().__init__()
        self.pos_conv_embed = _PositionalConv(c)
        self.layer_norm = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)
        self.layers = nn.ModuleList(_Layer(c) for _ in range(c.num_hidden_layers))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layer_norm(x + self.pos_conv_embed(x))
        for layer in self.layers:
            x = layer(x)
        return x


class HubertNet(nn.Module):
    """``wav (B, N)`` at 16 kHz, unnormalised -> last hidden state ``(B, T, hidden)``."""

    def __init__(self, config: HubertNetConfig) -> None:
        super().__init__()
        self.config = config
        self.feature_extractor = _FeatureEncoder(config)
        self.feature_projection = _FeatureProjection(config)
        self.encoder = _Encoder(config)

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        features = self.feature_extractor(wav).transpose(1, 2)
        return self.encoder(self.feature_projection(features))

    def for_inference(self) -> int:
        """Fast (bf16) inference on CPU, in place: the transformer's linears through
        :class:`_Int8Linear` (int8 weights and rows: the native kernels' int8 GEMM,
        :mod:`app.models.nn.int8`) or, without those kernels, :class:`_OneDnnLinear` (bf16, the
        FFN's GELU fused); the positional convolution's weight norm folded. The conv stack stays
        bf16: its strided layers as int8 GEMMs were ~20 ms faster per 5 s clip but moved the
        prompt codes' agreement with float32 from 96.8 to 93.9 % over six clips (the linears
        alone: 97.2 -> 96.8 %; asymmetric rows, measured again on Zen 4: 93.7 %). The attention
        runs in the native kernel of the GPT's prefill (float32 products and softmax on the bf16
        projections: 2.4 -> 1.7 ms per layer at 2 threads on Zen 4). Returns how many linears
        were replaced."""
        self.encoder.pos_conv_embed.conv.fold()
        kernel = w8a8_kernel()
        attend = prefill_attention_kernel()
        count = 0
        for layer in self.encoder.layers:
            if attend is not None and layer.attention.head_dim in PREFILL_HEAD_DIMS:
                layer.attention.native = attend
            for block in (layer.attention, layer.feed_forward):
                for name, child in list(block.named_children()):
                    if isinstance(child, nn.Linear):
                        setattr(
                            block,
                            name,
                            _OneDnnLinear(child) if kernel is None else _Int8Linear(child, kernel),
                        )
                        count += 1
        return count


_SAFETENSORS_DTYPES = {
    "F64": torch.float64,
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
}


def read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    """Floating-point tensors of a safetensors file as views of one private memory map (no copy)."""
    size_on_disk = path.stat().st_size
    try:
        with path.open("rb") as f:
            (header_len,) = struct.unpack("<Q", f.read(8))
            if header_len > size_on_disk - 8:
                template = "header of {header} bytes in a {size}-byte file"
                raise ValueError(Message("hubert.err.header", template, header=header_len, size=size_on_disk))
            header = json.loads(f.read(header_len))
    except (struct.error, ValueError, UnicodeDecodeError) as exc:
        template = "{path}: not a safetensors file or truncated ({problem})"
        raise OSError(
            Message("hubert.err.safetensors", template, path=str(path), problem=said(exc))
        ) from None
    base = 8 + header_len
    storage = torch.UntypedStorage.from_file(str(path), shared=False, nbytes=size_on_disk)
    out = {}
    for name, info in header.items():
        if name == "__metadata__" or info.get("dtype") not in _SAFETENSORS_DTYPES:
            continue
        dtype = _SAFETENSORS_DTYPES[info["dtype"]]
        start, end = info["data_offsets"]
        if base + end > size_on_disk:
            template = "{path}: truncated ({name} ends at byte {end} of {size})"
            fields = {"path": str(path), "name": name, "end": base + end, "size": size_on_disk}
            raise OSError(Message("hubert.err.truncated", template, **fields))
        size = torch.empty(0, dtype=dtype).element_size()
        if (base + start) % size:  # not aligned for its dtype: copy these bytes out
            raw = torch.empty(0, dtype=torch.uint8).set_(storage, base + start, (end - start,))
            out[name] = raw.clone().view(dtype).reshape(info["shape"])
        else:
            out[name] = torch.empty(0, dtype=dtype).set_(storage, (base + start) // size, info["shape"])
    return out


def _transformers_key(key: str) -> str:
    """A key of a transformers HuBERT file (any era) -> this module's name for it."""
    key = key.removeprefix("hubert.")
    key = key.replace("parametrizations.weight.original0", "weight_g")
    key = key.replace("parametrizations.weight.original1", "weight_v")
    if key.endswith(".gamma"):
        key = key[: -len("gamma")] + "weight"
    elif key.endswith(".beta"):
        key = key[: -len("beta")] + "bias"
    return key


def load_hubert_net(folder: Path) -> HubertNet | None:
    """The model in a transformers HuBERT folder, or None when this module cannot run it as is.

    Raises OSError when the folder's files cannot be read.
    """
    try:
        raw = json.loads((folder / "config.json").read_text())
    except OSError as exc:
        template = "{path}: the file cannot be read; check that it is there and readable (detail: {detail})"
        raise OSError(
            Message("hubert.err.config_read", template, path=str(folder / "config.json"), detail=str(exc))
        ) from None
    except ValueError as exc:
        template = (
            "{path}: not valid JSON (cut short or edited?); download the model again (detail: {detail})"
        )
        raise OSError(
            Message("hubert.err.config_json", template, path=str(folder / "config.json"), detail=str(exc))
        ) from None
    if raw.get("model_type", "hubert") != "hubert":
        return None
    config = HubertNetConfig.from_transformers(raw)
    if config is None:
        return None
    if (folder / "model.safetensors").is_file():
        state = read_safetensors(folder / "model.safetensors")
    elif (folder / "pytorch_model.bin").is_file():
        try:
            state = torch.load(folder / "pytorch_model.bin", map_location="cpu", weights_only=True, mmap=True)
        except Exception as exc:  # truncated / not a zip: transformers gives its own message
            fields = {"path": str(folder / "pytorch_model.bin"), "detail": str(exc)}
            template = "{path}: not a readable PyTorch weights file (cut short or another format); download it again (detail: {detail})"
            raise OSError(Message("hubert.err.weights", template, **fields)) from None
    else:
        return None  # sharded or other formats: transformers knows them
    model = without_init(lambda: HubertNet(config))
    own = model.state_dict()
    state = {name: value for key, value in state.items() if (name := _transformers_key(key)) in own}
    if set(state) != set(own) or any(tuple(state[k].shape) != tuple(own[k].shape) for k in own):
        return None
    model.load_state_dict(state, strict=True, assign=True)
    return model.eval()
