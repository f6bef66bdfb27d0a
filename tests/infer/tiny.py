"""Tiny random model files for the TTS pipeline: GPT and SoVITS written with the upstream writers,
HuBERT and a RoBERTa-style BERT (+ tokenizer) saved with transformers, laid out like the data root."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from app.infer.request import PipelineSpec
from app.models.sovits.model import SoVITS
from app.models.upstream.gpt import default_config, save_gpt
from app.models.upstream.sovits import write_sovits
from tests.models.conftest import randomize, tiny_sovits_config
from tests.models.gpt.tiny import tiny_gpt

HUBERT_DIR = "chinese-hubert-base"
BERT_DIR = "chinese-roberta-wwm-ext-large"
GPT_NAME = "tiny-e2.ckpt"
SOVITS_NAME = "tiny_e2_s10.pth"
# Upstream stops the GPT after 25 * max_sec tokens (+1): 2 s keeps random models short.
MAX_SEC = 2
MAX_TOKENS = 25 * MAX_SEC + 1
CHARS = "你好欢迎来到我们的节目今天天气很不错是一个测试。，！？,.!?"


def write_hubert(folder: Path) -> Path:
    from transformers import HubertConfig, HubertModel

    torch.manual_seed(0)
    config = HubertConfig(
        hidden_size=768,  # the SoVITS ssl_proj input width is fixed at 768
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        conv_dim=(16,) * 7,
        num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=4,
    )
    HubertModel(config).eval().save_pretrained(folder)
    return folder


def write_bert(folder: Path) -> Path:
    from transformers import BertConfig, BertForMaskedLM, BertTokenizer

    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *dict.fromkeys(CHARS)]
    BertTokenizer(vocab={t: i for i, t in enumerate(tokens)}).save_pretrained(folder)
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(tokens),
        hidden_size=1024,  # the GPT's bert_proj input width
        num_hidden_layers=2,  # hidden_states[-3] needs two layers
        num_attention_heads=4,
        intermediate_size=64,
    )
    BertForMaskedLM(config).eval().save_pretrained(folder)
    return folder


def write_gpt_file(path: Path, seed: int = 0) -> Path:
    model = tiny_gpt("v2", seed=seed)
    config = default_config(model.config, exp_name="tiny")
    config["data"]["max_sec"] = MAX_SEC
    return save_gpt(model, path, epoch=2, config=config)


def write_sovits_file(path: Path, seed: int = 1) -> Path:
    config = tiny_sovits_config("v2")
    torch.manual_seed(seed)
    model = randomize(SoVITS(config), seed=seed)
    return write_sovits(path, model.state_dict(), config, epoch=2, step=10)


# A small ERes2NetV2 (embedding 8 * 4 * 2 * 10 = 640 wide); Pro SoVITS test models read that width.
TINY_SV = {"m_channels": 4, "base_width": 32, "scale": 2, "expansion": 2, "num_blocks": (1, 1, 1, 1)}
PRO_SOVITS_NAME = "tiny_pro_e2_s10.pth"


def write_sv(path: Path, seed: int = 0) -> Path:
    """A tiny speaker-verification checkpoint in upstream's format (a bare state dict)."""
    from app.models.encoders.sv import ERes2NetV2, SVConfig

    torch.manual_seed(seed)
    model = randomize(ERes2NetV2(SVConfig(**TINY_SV)), seed=seed).eval()
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), path)
    return path


def write_pro_sovits_file(path: Path, version: str = "v2ProPlus", seed: int = 2) -> Path:
    """A tiny v2Pro/v2ProPlus SoVITS export (header 05/06) fed by :func:`write_sv`'s embedding."""
    from app.models.encoders.sv import SVConfig

    config = dataclasses.replace(tiny_sovits_config(version), sv_dim=SVConfig(**TINY_SV).emb_dim)
    torch.manual_seed(seed)
    model = randomize(SoVITS(config), seed=seed)
    return write_sovits(path, model.state_dict(), config, epoch=2, step=10)


def build_pro_home(home: Path, version: str = "v2ProPlus") -> Path:
    """:func:`build_home` plus a tiny Pro SoVITS and the speaker model where upstream keeps it."""
    from app.models.encoders.sv import SV_FILE

    build_home(home)
    write_sv(home / "pretrained_models" / SV_FILE)
    write_pro_sovits_file(home / "SoVITS_weights" / PRO_SOVITS_NAME, version)
    return home


CFM_SOVITS_NAMES = {"v3": "tiny_v3_e2_s10.pth", "v4": "tiny_v4_e2_s10.pth"}
# A BigVGAN small enough for tests with the real interface: 100 mels in, 256 samples per frame at 24 kHz.
TINY_BIGVGAN = {
    "resblock": "1", "upsample_rates": [8, 8, 4], "upsample_kernel_sizes": [16, 16, 8],
    "upsample_initial_channel": 16, "resblock_kernel_sizes": [3], "resblock_dilation_sizes": [[1, 3]],
    "use_tanh_at_final": False, "use_bias_at_final": False, "activation": "snakebeta", "snake_logscale": True,
    "num_mels": 100, "n_fft": 1024, "hop_size": 256, "win_size": 1024, "sampling_rate": 24000, "fmin": 0,
    "fmax": None,
}  # fmt: skip


def write_cfm_sovits_file(path: Path, version: str = "v4", seed: int = 3) -> Path:
    """A tiny whole v3/v4 SoVITS (flow matching) in upstream's ``s2Gv3``/``s2Gv4`` layout."""
    from app.models.sovits.cfm_model import CfmSoVITS
    from tests.models.sovits.cfm_tiny import tiny_cfm_config

    config = tiny_cfm_config(version)
    torch.manual_seed(seed)
    model = randomize(CfmSoVITS(config), seed=seed)
    return write_sovits(path, model.state_dict(), config, epoch=2, step=10)


def write_vocoder(pretrained: Path, version: str, seed: int = 4) -> Path:
    """A tiny v4 vocoder file or v3 BigVGAN folder where upstream keeps it under ``pretrained``."""
    import json

    from app.models.vocoders import VOCODER_PATHS
    from app.models.vocoders.bigvgan import BigVGAN, BigVGANConfig
    from app.models.vocoders.hifigan import HiFiGANVocoder, HiFiGANVocoderConfig

    target = pretrained / VOCODER_PATHS[version]
    target.parent.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    if version == "v4":
        model = randomize(HiFiGANVocoder(HiFiGANVocoderConfig(upsample_initial_channel=32)), seed=seed)
        torch.save(model.state_dict(), target)
        return target
    fields = {k: v for k, v in TINY_BIGVGAN.items() if k in BigVGANConfig.__dataclass_fields__}
    model = randomize(BigVGAN(BigVGANConfig(**fields), weight_norm=True), seed=seed)
    target.mkdir(exist_ok=True)
    (target / "config.json").write_text(json.dumps(TINY_BIGVGAN), encoding="utf-8")
    torch.save({"generator": model.state_dict()}, target / "bigvgan_generator.pt")
    return target


def build_cfm_home(home: Path, versions: tuple[str, ...] = ("v3", "v4")) -> Path:
    """:func:`build_home` plus a tiny whole v3/v4 SoVITS per version and its vocoder."""
    build_home(home)
    for version in versions:
        write_cfm_sovits_file(home / "SoVITS_weights" / CFM_SOVITS_NAMES[version], version)
        write_vocoder(home / "pretrained_models", version)
    return home


def build_home(home: Path) -> Path:
    """A data root with tiny encoders in pretrained_models/ and one GPT + SoVITS pair of weights."""
    pretrained = home / "pretrained_models"
    write_hubert(pretrained / HUBERT_DIR)
    write_bert(pretrained / BERT_DIR)
    write_gpt_file(home / "GPT_weights" / GPT_NAME)
    write_sovits_file(home / "SoVITS_weights" / SOVITS_NAME)
    return home


def spec_for(home: Path, precision: str = "fp32", sovits: str = SOVITS_NAME) -> PipelineSpec:
    pretrained = home / "pretrained_models"
    return PipelineSpec(
        gpt_path=home / "GPT_weights" / GPT_NAME,
        sovits_path=home / "SoVITS_weights" / sovits,
        hubert_dir=pretrained / HUBERT_DIR,
        bert_dir=pretrained / BERT_DIR,
        precision=precision,
    )


def voice(path: Path, seconds: float, sr: int = 32000, pauses: tuple[float, ...] = ()) -> Path:
    """A harmonic 'voice' with syllable-rate amplitude and silent gaps at ``pauses`` (seconds, 0.4 s each)."""
    t = np.arange(round(seconds * sr)) / sr
    f0 = 140 + 20 * np.sin(2 * np.pi * 0.5 * t)
    phase = 2 * np.pi * np.cumsum(f0) / sr
    wav = sum(np.sin(k * phase) / k for k in range(1, 6)) * (0.6 + 0.4 * np.sin(2 * np.pi * 4 * t))
    for p in pauses:
        wav[(t >= p) & (t < p + 0.4)] = 0.0
    rng = np.random.default_rng(0)
    wav = 0.25 * wav / np.abs(wav).max() + 0.002 * rng.standard_normal(len(t))
    for p in pauses:
        wav[(t >= p) & (t < p + 0.4)] = 0.0
    sf.write(path, wav.astype(np.float32), sr)
    return path
