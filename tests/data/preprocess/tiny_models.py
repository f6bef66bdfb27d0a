"""Tiny random models for the dataset-tool tests (built in seconds, no downloads)."""

from __future__ import annotations

from fractions import Fraction


def tiny_htdemucs():
    """A random HTDemucs small enough for ~0.3 s per 2 s chunk on CPU (same weights every call)."""
    import torch
    from demucs.htdemucs import HTDemucs

    torch.manual_seed(0)
    # The segment is a Fraction, as in the published htdemucs files.
    return HTDemucs(
        sources=["drums", "bass", "other", "vocals"],
        channels=8,
        depth=3,
        nfft=1024,
        t_layers=1,
        t_heads=2,
        segment=Fraction(2, 1),
    ).eval()


# ------------------------------------------------------------------ sherpa-onnx ASR exports
# SenseVoice / Paraformer take 80-bin fbank frames stacked 7 at a time (LFR 7/6): 560 features.
FBANK_BINS, LFR_WINDOW, LFR_SHIFT = 80, 7, 6
# Text tokens of the tiny models: tokens.txt lines "<piece> <id>". A tone whose fbank energy lies in
# band k of 8 equal mel bands is heard as piece k, so tests know what each clip must say.
TEXT_PIECES = ("▁hello", "▁world", "你", "好", "世", "界", "▁the", "s")
SENSEVOICE_SPECIALS = (
    "<blk>", "<s>", "</s>", "<|zh|>", "<|en|>", "<|yue|>", "<|ja|>", "<|ko|>", "<|nospeech|>",
    "<|NEUTRAL|>", "<|Speech|>", "<|withitn|>", "<|woitn|>", "<unk>",
)  # fmt: skip
PARAFORMER_SPECIALS = ("<blank>", "<s>", "</s>", "<unk>")


def _band_scores(first_piece: int, vocab: int):
    """``(560, V)`` weights: the logit of piece k = mean fbank over band k across the 7 stacked frames."""
    import numpy as np

    weights = np.zeros((FBANK_BINS * LFR_WINDOW, vocab), np.float32)
    width = FBANK_BINS // len(TEXT_PIECES)
    for k in range(len(TEXT_PIECES)):
        for frame in range(LFR_WINDOW):
            start = frame * FBANK_BINS + k * width
            weights[start : start + width, first_piece + k] = 1.0 / (width * LFR_WINDOW)
    return weights


def _save_onnx(graph, metadata: dict, folder, tokens: tuple[str, ...]) -> None:
    import onnx
    from onnx import helper

    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    for key, value in metadata.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, str(value)
    onnx.checker.check_model(model)
    folder.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(folder / "model.int8.onnx"))
    (folder / "tokens.txt").write_text("".join(f"{t} {i}\n" for i, t in enumerate(tokens)), encoding="utf-8")


def _lfr_cmvn(vocab: int) -> dict:
    dim = FBANK_BINS * LFR_WINDOW
    # Identity CMVN keeps log-mel values as they are: silence ~ -15, a tone's band well above 0.
    return {
        "vocab_size": vocab,
        "lfr_window_size": LFR_WINDOW,
        "lfr_window_shift": LFR_SHIFT,
        "neg_mean": ",".join(["0"] * dim),
        "inv_stddev": ",".join(["1"] * dim),
    }


def tiny_sensevoice(folder) -> None:
    """A SenseVoice export in sherpa-onnx's format (inputs x, x_length, language, text_norm; metadata).

    Like the real model, the logits start with 4 query frames (language, emotion, event, ITN) before
    the CTC frames; the language frame is the one asked for, "auto" hears Chinese.
    """
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    tokens = SENSEVOICE_SPECIALS + TEXT_PIECES
    vocab, dim, zh = len(tokens), FBANK_BINS * LFR_WINDOW, tokens.index("<|zh|>")
    bias = np.full(vocab, -50.0, np.float32)
    # Blank wins over silence and 16-bit quantisation noise (log-mel below ~10 on sherpa-onnx's
    # int16 scale), loses to a tone (~20 and more in its band).
    bias[0] = 0.0
    bias[len(SENSEVOICE_SPECIALS) :] = -10.0

    def one_hot(i: int):
        row = np.full((1, 1, vocab), -10.0, np.float32)
        row[0, 0, i] = 10.0
        return row

    const = {
        "W": _band_scores(len(SENSEVOICE_SPECIALS), vocab), "b": bias,
        "zero": np.array(0, np.int32), "zh": np.array(zh, np.int32), "depth": np.array(vocab, np.int64),
        "onoff": np.array([-10.0, 10.0], np.float32), "axis1": np.array([1], np.int64),
        "first": np.array([0], np.int64), "one": np.array([1], np.int64), "vocab": np.array([vocab], np.int64),
        "emotion": one_hot(tokens.index("<|NEUTRAL|>")), "event": one_hot(tokens.index("<|Speech|>")),
    }  # fmt: skip
    node = helper.make_node
    nodes = [
        node("MatMul", ["x", "W"], ["xw"]), node("Add", ["xw", "b"], ["body"]),
        node("Equal", ["language", "zero"], ["is_auto"]), node("Where", ["is_auto", "zh", "language"], ["lang"]),
        node("Cast", ["lang"], ["lang64"], to=TensorProto.INT64),
        node("OneHot", ["lang64", "depth", "onoff"], ["lang_hot"], axis=-1),
        node("Cast", ["text_norm"], ["norm64"], to=TensorProto.INT64),
        node("OneHot", ["norm64", "depth", "onoff"], ["norm_hot"], axis=-1),
        node("Unsqueeze", ["lang_hot", "axis1"], ["lang_frame"]),
        node("Unsqueeze", ["norm_hot", "axis1"], ["norm_frame"]),
        node("Shape", ["x"], ["x_shape"]), node("Gather", ["x_shape", "first"], ["batch"], axis=0),
        node("Concat", ["batch", "one", "vocab"], ["frame_shape"], axis=0),
        node("Expand", ["emotion", "frame_shape"], ["emotion_frame"]),
        node("Expand", ["event", "frame_shape"], ["event_frame"]),
        node("Concat", ["lang_frame", "emotion_frame", "event_frame", "norm_frame", "body"], ["logits"], axis=1),
    ]  # fmt: skip
    int32 = TensorProto.INT32
    graph = helper.make_graph(
        nodes,
        "tiny_sensevoice",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", "T", dim]),
            helper.make_tensor_value_info("x_length", int32, ["N"]),
            helper.make_tensor_value_info("language", int32, ["N"]),
            helper.make_tensor_value_info("text_norm", int32, ["N"]),
        ],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", "U", vocab])],
        [numpy_helper.from_array(v, k) for k, v in const.items()],
    )
    langs = {f"lang_{k}": tokens.index(f"<|{k}|>") for k in ("zh", "en", "ja", "ko", "yue")}
    metadata = {
        **_lfr_cmvn(vocab), **langs, "lang_auto": 0, "blank_id": 0, "normalize_samples": 0,
        "with_itn": tokens.index("<|withitn|>"), "without_itn": tokens.index("<|woitn|>"),
        "model_type": "sense_voice_ctc", "comment": "tiny random SenseVoice for tests",
    }  # fmt: skip
    _save_onnx(graph, metadata, folder, tokens)


def tiny_paraformer(folder) -> None:
    """A Paraformer export in sherpa-onnx's format (inputs speech, speech_lengths; logits, token_num).

    The real model predicts one token per CIF firing; this one fires once per clip: the piece of the
    band with the most energy over the whole clip, then ``</s>``.
    """
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    tokens = PARAFORMER_SPECIALS + TEXT_PIECES
    vocab, dim = len(tokens), FBANK_BINS * LFR_WINDOW
    bias = np.full(vocab, -1e4, np.float32)
    bias[len(PARAFORMER_SPECIALS) :] = 0.0
    eos = np.full((1, 1, vocab), -10.0, np.float32)
    eos[0, 0, tokens.index("</s>")] = 10.0
    const = {
        "W": _band_scores(len(PARAFORMER_SPECIALS), vocab), "b": bias, "eos": eos,
        "first": np.array([0], np.int64), "one": np.array([1], np.int64), "vocab": np.array([vocab], np.int64),
    }  # fmt: skip
    node = helper.make_node
    nodes = [
        node("MatMul", ["x_mean", "W"], ["xw"]), node("Add", ["xw", "b"], ["token"]),
        node("ReduceMean", ["speech"], ["x_mean"], axes=[1], keepdims=1),
        node("Shape", ["speech"], ["x_shape"]), node("Gather", ["x_shape", "first"], ["batch"], axis=0),
        node("Concat", ["batch", "one", "vocab"], ["frame_shape"], axis=0),
        node("Expand", ["eos", "frame_shape"], ["eos_frame"]),
        node("Concat", ["token", "eos_frame"], ["logits"], axis=1),
        node("Identity", ["speech_lengths"], ["token_num"]),
    ]  # fmt: skip
    graph = helper.make_graph(
        [nodes[2], nodes[0], nodes[1], *nodes[3:]],
        "tiny_paraformer",
        [
            helper.make_tensor_value_info("speech", TensorProto.FLOAT, ["N", "T", dim]),
            helper.make_tensor_value_info("speech_lengths", TensorProto.INT32, ["N"]),
        ],
        [
            helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", "U", vocab]),
            helper.make_tensor_value_info("token_num", TensorProto.INT32, ["N"]),
        ],
        [numpy_helper.from_array(v, k) for k, v in const.items()],
    )
    _save_onnx(graph, {**_lfr_cmvn(vocab), "model_type": "paraformer"}, folder, tokens)


# ------------------------------------------------------------------------ UVR MDX-Net (ONNX)
def tiny_mdx(path, dim_f: int, dim_t: int, keep_bins: int, first_bin: int = 0) -> None:
    """An MDX-Net file in UVR's format (input ``(B, 4, dim_f, dim_t)``, same-shape output) that keeps
    bins ``first_bin:keep_bins`` of its input: its "stem" is what lies in that frequency band."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    mask = np.zeros((1, 1, dim_f, 1), np.float32)
    mask[..., first_bin:keep_bins, :] = 1.0
    graph = helper.make_graph(
        [helper.make_node("Mul", ["input", "mask"], ["output"])],
        "tiny_mdx",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 4, dim_f, dim_t])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["batch", 4, dim_f, dim_t])],
        [numpy_helper.from_array(mask, "mask")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))


# FunASR's CT-Transformer punctuation classes, in its order ("_": no mark after the token).
PUNCTUATIONS = ("<unk>", "_", "，", "。", "？", "、")


def tiny_ct_punct(folder, marks: dict[str, str]) -> None:
    """A CT-Transformer punctuation export in sherpa-onnx's format (inputs text, text_len; logits
    ``(N, T, 6)``; tokens and punctuations in the metadata) that puts ``marks[token]`` after a token."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    tokens = ("<unk>", *TEXT_PIECES, *(t.lstrip("▁") for t in TEXT_PIECES if t.startswith("▁")))
    table = np.full((len(tokens), len(PUNCTUATIONS)), -10.0, np.float32)
    for i, token in enumerate(tokens):
        table[i, PUNCTUATIONS.index(marks.get(token, "_"))] = 10.0
    graph = helper.make_graph(
        [helper.make_node("Gather", ["table", "text"], ["logits"], axis=0)],
        "tiny_ct_punct",
        [
            helper.make_tensor_value_info("text", TensorProto.INT32, ["N", "T"]),
            helper.make_tensor_value_info("text_len", TensorProto.INT32, ["N"]),
        ],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", "T", len(PUNCTUATIONS)])],
        [numpy_helper.from_array(table, "table")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    metadata = {
        "tokens": "|".join(tokens), "vocab_size": len(tokens), "punctuations": "|".join(PUNCTUATIONS),
        "unk_symbol": "<unk>", "model_type": "ct_transformer",
    }  # fmt: skip
    for key, value in metadata.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, str(value)
    onnx.checker.check_model(model)
    folder.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(folder / "model.onnx"))


# ------------------------------------------------------------------ GTCRN denoiser (sherpa-onnx)
# The published export's STFT and recurrent caches (its metadata; sherpa-onnx's export script).
GTCRN_METADATA = {
    "model_type": "gtcrn",
    "version": 1,
    "sample_rate": 16000,
    "n_fft": 512,
    "hop_length": 256,
    "window_length": 512,
    "window_type": "hann_sqrt",
    "conv_cache_shape": "2,1,16,16,33",
    "tra_cache_shape": "2,3,1,1,16",
    "inter_cache_shape": "2,1,33,16",
}


def tiny_gtcrn(path, keep_below_hz: float, metadata: dict | None = None, bins: int = 257) -> None:
    """A GTCRN export in sherpa-onnx's format whose "mask" passes the bins below ``keep_below_hz``.

    Inputs ``mix (1, bins, 1, 2)`` and the three caches, outputs ``enh`` and the next caches
    (each cache plus one), as the published gtcrn_simple.onnx; ``metadata`` overrides keys of
    :data:`GTCRN_METADATA` (a value None drops the key).
    """
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    meta = {**GTCRN_METADATA, **(metadata or {})}
    caches = {
        name: [int(d) for d in GTCRN_METADATA[f"{name}_shape"].split(",")]
        for name in ("conv_cache", "tra_cache", "inter_cache")
    }
    hz_per_bin = GTCRN_METADATA["sample_rate"] / GTCRN_METADATA["n_fft"]
    gain = np.zeros((1, bins, 1, 2), np.float32)
    gain[:, : int(keep_below_hz / hz_per_bin)] = 1.0

    def value(name, shape):
        return helper.make_tensor_value_info(name, TensorProto.FLOAT, list(shape))

    nodes = [helper.make_node("Mul", ["mix", "gain"], ["enh"])]
    nodes += [helper.make_node("Add", [name, "one"], [f"{name}_out"]) for name in caches]
    graph = helper.make_graph(
        nodes,
        "gtcrn",
        [value("mix", gain.shape), *(value(n, s) for n, s in caches.items())],
        [value("enh", gain.shape), *(value(f"{n}_out", s) for n, s in caches.items())],
        [numpy_helper.from_array(gain, "gain"), numpy_helper.from_array(np.ones(1, np.float32), "one")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    for key, item in meta.items():
        if item is not None:
            entry = model.metadata_props.add()
            entry.key, entry.value = key, str(item)
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))


# -------------------------------------------------------------- BS-/Mel-Band-RoFormer (.ckpt + .yaml)
def tiny_roformer(
    checkpoint,
    kind: str = "bs_roformer",
    stereo: bool = True,
    keep_bands: int | None = None,
    chunk_size: int = 3200,
    **model,
) -> dict:
    """A random RoFormer saved as the published pair: ``<name>.ckpt`` (state dict) + ``<name>.yaml``.

    The config has the published sections and tags (``!!python/tuple``, training-only keys);
    ``model`` overrides settings of its ``model:`` section. With ``keep_bands`` the mask estimator
    is set to a mask of exactly 1 on the first ``keep_bands`` bands and 0 above them (a "vocals"
    stem that is the low end of the mix). Returns the section written.
    """
    import torch

    from app.models.roformer import Roformer, RoformerConfig

    section = {
        "dim": 16, "depth": 1, "stereo": stereo, "num_stems": 1, "time_transformer_depth": 1,
        "freq_transformer_depth": 1, "linear_transformer_depth": 0, "dim_head": 8, "heads": 2,
        "attn_dropout": 0.1, "ff_dropout": 0.1, "flash_attn": True, "dim_freqs_in": 129,
        "stft_n_fft": 256, "stft_hop_length": 64, "stft_win_length": 256, "stft_normalized": False,
        "mask_estimator_depth": 2, "multi_stft_resolution_loss_weight": 1.0,
        "multi_stft_resolutions_window_sizes": (512, 256), "multi_stft_hop_size": 147,
        "multi_stft_normalized": False,
    }  # fmt: skip
    if kind == "bs_roformer":
        section["freqs_per_bands"] = (8,) * 8 + (16,) * 2 + (33,)  # 129 bins
    else:
        section.update(num_bands=12, sample_rate=16000)
    section.update(model)
    torch.manual_seed(0)
    config = {k: v for k, v in section.items() if k in RoformerConfig.__dataclass_fields__}
    network = Roformer(RoformerConfig(kind=kind, **config))
    if keep_bands is not None:
        with torch.no_grad():
            for band, mlp in enumerate(network.mask_estimators[0].to_freqs):
                last = mlp[0][-1]  # the Linear before the GLU: outputs [value, gate]
                last.weight.zero_()
                half = last.bias.shape[0] // 2
                value = torch.zeros(half)
                value[0::2] = 1.0 if band < keep_bands else 0.0  # real parts 1, imaginary 0
                last.bias.copy_(torch.cat([value, torch.full((half,), 30.0)]))  # gate sigmoid(30) = 1
    checkpoint.parent.mkdir(parents=True, exist_ok=True)
    torch.save(network.state_dict(), checkpoint)

    def value(v) -> str:
        if isinstance(v, tuple):
            return "!!python/tuple\n" + "".join(f"    - {x}\n" for x in v).rstrip("\n")
        return str(v).lower() if isinstance(v, bool) else str(v)

    rate = section.get("sample_rate", 16000)
    lines = [
        "audio:",
        f"  chunk_size: {chunk_size}",
        "  n_fft: 256",
        "  num_channels: 2",
        f"  sample_rate: {rate}",
        "model:",
    ]
    lines += [f"  {k}: {value(v)}" for k, v in section.items()]
    lines += ["training:", "  instruments:", "  - vocals", "  - other", "  target_instrument: vocals"]
    lines += ["inference:", "  batch_size: 2", "  num_overlap: 2"]
    checkpoint.with_suffix(".yaml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return section
