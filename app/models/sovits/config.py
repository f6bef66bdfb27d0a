"""SoVITS (GPT-SoVITS stage 2) configuration: one frozen dataclass, read from upstream's HParams tree.

Upstream keeps the model shape in three sections of its s2 json (``model``, ``data``, ``train``);
:meth:`SoVITSConfig.from_hparams` reads the keys that shape the network and ignores run options
(batch size, paths, save flags). :func:`preset` gives upstream's published configs
(``GPT_SoVITS/configs/s2.json``, ``s2v2Pro.json``, ``s2v2ProPlus.json``; v3/v4 use ``s2.json``
with upstream's hard-coded DiT and ``wns1`` sizes).

Two model families share the config: the VITS decoder (v1, v2, v2Pro, v2ProPlus:
:class:`app.models.sovits.model.SoVITS`) and the flow-matching mel decoder (v3, v4:
:class:`app.models.sovits.cfm_model.CfmSoVITS`, which reads the ``dit_*``/``wns1_*`` fields and
the fixed audio constants of :data:`CFM_AUDIO`; the HiFi-GAN fields are unused there).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

Version = Literal["v1", "v2", "v2Pro", "v2ProPlus", "v3", "v4"]
# VITS-decoder versions (SoVITS); the flow-matching ones (CfmSoVITS) have their own tuple.
VITS_VERSIONS: tuple[str, ...] = ("v1", "v2", "v2Pro", "v2ProPlus")
CFM_VERSIONS: tuple[str, ...] = ("v3", "v4")
VERSIONS: tuple[str, ...] = VITS_VERSIONS + CFM_VERSIONS
PRO_VERSIONS = frozenset({"v2Pro", "v2ProPlus"})

# Phoneme symbol tables (app.text): v1 has 322 symbols, v2 extends it to 732 (v3/v4 use v2's).
N_SYMBOLS = {"v1": 322, "v2": 732, "v2Pro": 732, "v2ProPlus": 732, "v3": 732, "v4": 732}
# Constants hard-coded upstream, independent of the config:
SSL_DIM = 768  # chinese-hubert-base feature width
CODEBOOK_SIZE = 1024  # semantic token vocabulary (GPT vocab 1025 = codes + EOS)
REF_ENC_BINS_V2 = 704  # v2+ reference encoder sees only the lowest 704 of 1025 bins
MRTE_HIDDEN = 512  # MRTE cross-attention width; the timbre vector added there is 512 wide
SV_EMB_DIM = 20480  # ERes2NetV2 speaker-verification embedding (v2Pro)
# v3/v4 (SynthesizerTrnV3): the bridge widens the 192-wide text-encoder output to 512, the width of
# wns1's input/output and of the DiT's condition (``text_dim``); the CFM generates 100-bin mels.
CFM_FEATURE_DIM = 512
CFM_MEL_BINS = 100
# Normalised mel = (log-mel - MEL_MIN) / (MEL_MAX - MEL_MIN) * 2 - 1 (upstream spec_min / spec_max).
MEL_MIN, MEL_MAX = -12.0, 2.0


@dataclass(frozen=True)
class CfmAudio:
    """Fixed audio constants of a flow-matching version (upstream ``inference_webui.py``,
    ``SynthesizerTrnV3.decode_encp``); the vocoder turns one mel frame into ``hop_length`` samples
    at ``sampling_rate`` x its own upsampling (v4 HiFi-GAN 48 kHz, v3 BigVGAN 24 kHz)."""

    sampling_rate: int  # rate of the reference mel (the reference is resampled to it)
    n_fft: int  # STFT size of the reference mel
    win_length: int  # Hann window length
    hop_length: int  # samples per mel frame at sampling_rate
    fea_upsample: float  # nearest upsampling of the 50 Hz encoder frames to mel frames
    wns1_frames_per_code: float  # wns1 mask length per 25 Hz code (v3: 3.875 > 3.75 = no masking)
    max_prompt_frames: int  # reference frames kept as the CFM prompt (the last ones when longer)
    window_frames: int  # prompt + generated frames per CFM chunk
    n_mels: int = CFM_MEL_BINS
    fmin: float = 0.0
    fmax: float | None = None  # None = sampling_rate / 2


CFM_AUDIO = {
    # 24 kHz, hop 256 (93.75 frames/s): 1.875 mel frames per 50 Hz frame.
    "v3": CfmAudio(24000, 1024, 1024, 256, 1.875, 3.875, 468, 934),
    # 32 kHz, hop 320 (100 frames/s): 2 mel frames per 50 Hz frame, 4 per code.
    "v4": CfmAudio(32000, 1280, 1280, 320, 2.0, 4.0, 500, 1000),
}


@dataclass(frozen=True)
class SoVITSConfig:
    """Shape of a SoVITS synthesizer. Defaults are upstream's v2 (``s2.json``)."""

    version: Version = "v2"  # symbol table, reference-encoder bins, speaker-embedding layers
    inter_channels: int = 192  # latent z width (flow and decoder input)
    hidden_channels: int = 192  # text/SSL encoder width (MRTE requires 192)
    filter_channels: int = 768  # FFN width of the attention encoders
    n_heads: int = 2  # attention heads of the encoders
    n_layers: int = 6  # text-encoder layers; the SSL encoder and encoder2 get n_layers // 2
    kernel_size: int = 3  # FFN kernel of the encoders
    p_dropout: float = 0.1  # dropout of the encoders (0 for v2Pro*)
    resblock: str = "1"  # HiFi-GAN residual block type
    resblock_kernel_sizes: tuple[int, ...] = (3, 7, 11)  # one block per kernel per stage
    resblock_dilation_sizes: tuple[tuple[int, ...], ...] = ((1, 3, 5), (1, 3, 5), (1, 3, 5))
    upsample_rates: tuple[int, ...] = (10, 8, 2, 2, 2)  # product must equal hop_length
    upsample_initial_channel: int = 512  # decoder width after conv_pre
    upsample_kernel_sizes: tuple[int, ...] = (16, 16, 8, 2, 2)
    gin_channels: int = 512  # global (timbre) conditioning width
    semantic_frame_rate: str = "25hz"  # "25hz": ssl_proj halves 50 Hz HuBERT frames
    freeze_quantizer: bool = True  # training leaves ssl_proj and the codebook untouched
    sampling_rate: int = 32000  # output audio rate
    filter_length: int = 2048  # STFT size; spec_channels = filter_length // 2 + 1
    hop_length: int = 640  # samples per latent frame (50 Hz at 32 kHz)
    win_length: int = 2048  # STFT window
    n_mel_channels: int = 128  # mel bins of the training reconstruction loss
    mel_fmin: float = 0.0
    mel_fmax: float | None = None  # None = sampling_rate / 2
    segment_size: int = 20480  # training decoder window in samples
    c_mel: float = 45  # weight of the mel L1 loss
    c_kl: float = 1.0  # weight of the KL loss
    # v2Pro*: width of the speaker-verification embedding ``sv_emb`` reads. Upstream hard-codes
    # 20480 (ERes2NetV2 w24s4ep4); files are read with the width their weights have, so a small
    # speaker encoder (tests) can feed a small model.
    sv_dim: int = SV_EMB_DIM
    # v3/v4 only: shape of the DiT (``cfm.estimator``) and of ``wns1``. Upstream hard-codes these
    # in SynthesizerTrnV3 (not in its config); files are read with the sizes their weights have.
    dit_dim: int = 1024  # transformer width
    dit_depth: int = 22  # transformer blocks
    dit_heads: int = 16  # attention heads
    dit_dim_head: int = 64  # width per head (rotary embedding size)
    dit_ff_mult: int = 2  # feed-forward width = dit_dim * dit_ff_mult
    dit_conv_layers: int = 4  # ConvNeXt-V2 blocks on the 512-wide condition
    wns1_hidden: int = 512  # hidden width of wns1 (its input and output stay 512)
    wns1_layers: int = 8  # WaveNet layers of wns1 (kernel 5, dilation 1)
    # Everything else found in the file's HParams (run options), kept only to write it back.
    extra: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.version not in VERSIONS:
            raise ValueError(f"SoVITS version must be one of {VERSIONS}, got {self.version!r}")
        if self.semantic_frame_rate not in ("25hz", "50hz"):
            raise ValueError(
                f"semantic_frame_rate must be '25hz' or '50hz', got {self.semantic_frame_rate!r}"
            )
        product = 1
        for rate in self.upsample_rates:
            product *= rate
        if product != self.hop_length:
            raise ValueError(f"upsample_rates multiply to {product}, but hop_length is {self.hop_length}")
        if self.hidden_channels != 192:
            raise ValueError("hidden_channels must be 192: upstream's MRTE block is fixed to 192 channels")
        if self.sv_dim < 1:
            raise ValueError(f"sv_dim must be positive, got {self.sv_dim}")
        if not self.is_pro and self.gin_channels != MRTE_HIDDEN:
            raise ValueError(
                f"{self.version} needs gin_channels {MRTE_HIDDEN} (MRTE adds the timbre vector there)"
            )
        if self.is_cfm:
            positive = (
                "dit_dim",
                "dit_depth",
                "dit_heads",
                "dit_dim_head",
                "dit_ff_mult",
                "wns1_hidden",
                "wns1_layers",
            )
            bad = [f"{name}={getattr(self, name)}" for name in positive if getattr(self, name) < 1]
            if self.dit_conv_layers < 0:
                bad.append(f"dit_conv_layers={self.dit_conv_layers}")
            if bad:
                raise ValueError(f"DiT/wns1 sizes must be positive: {', '.join(bad)}")
            if self.dit_dim_head % 2:
                raise ValueError(f"dit_dim_head must be even (rotary pairs), got {self.dit_dim_head}")
            if self.dit_dim % 16:
                # The DiT's convolutional position embedding uses 16 groups.
                raise ValueError(f"dit_dim must be a multiple of 16, got {self.dit_dim}")

    @property
    def is_pro(self) -> bool:
        """v2Pro / v2ProPlus: the timbre vector also carries a speaker-verification embedding."""
        return self.version in PRO_VERSIONS

    @property
    def is_cfm(self) -> bool:
        """v3 / v4: flow-matching mel decoder + separate vocoder instead of the VITS decoder."""
        return self.version in CFM_VERSIONS

    @property
    def cfm_audio(self) -> CfmAudio:
        """Mel and chunking constants of a v3/v4 model (:data:`CFM_AUDIO`)."""
        if not self.is_cfm:
            raise ValueError(f"{self.version} has no flow-matching decoder (v3/v4 only)")
        return CFM_AUDIO[self.version]

    @property
    def n_symbols(self) -> int:
        """Rows of the phoneme embedding."""
        return N_SYMBOLS[self.version]

    @property
    def spec_channels(self) -> int:
        """Linear-spectrogram bins (1025)."""
        return self.filter_length // 2 + 1

    @property
    def ref_enc_bins(self) -> int:
        """Spectrogram bins the reference encoder reads: all for v1, the lowest 704 after."""
        return self.spec_channels if self.version == "v1" else REF_ENC_BINS_V2

    @property
    def segment_frames(self) -> int:
        """Training decoder window in latent frames."""
        return self.segment_size // self.hop_length

    @property
    def mpd_periods(self) -> tuple[int, ...]:
        """Periods of the multi-period discriminator (v2Pro* adds 17 and 23)."""
        return (2, 3, 5, 7, 11, 17, 23) if self.is_pro else (2, 3, 5, 7, 11)

    @classmethod
    def from_hparams(cls, tree: Mapping[str, Any], version: str | None = None) -> SoVITSConfig:
        """Build from an upstream HParams tree (as a nested mapping).

        Args:
            tree: the file's config with sections ``model``, ``data`` and ``train``.
            version: the version decided from the weights (overrides ``model.version``, which
                upstream itself does not trust).

        Raises:
            ValueError: a section or a shape key is missing or has the wrong type.
        """
        sections = {}
        for name in ("model", "data", "train"):
            section = tree.get(name)
            if not isinstance(section, Mapping):
                raise ValueError(f"config has no '{name}' section")
            sections[name] = section
        model, data, train = sections["model"], sections["data"], sections["train"]
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            if f.name == "extra":
                continue
            for section in (model, data, train):
                if f.name in section:
                    values[f.name] = section[f.name]
                    break
        if version is not None:
            values["version"] = version
        elif "version" not in values:
            values["version"] = "v2"
        for key in ("resblock_kernel_sizes", "upsample_rates", "upsample_kernel_sizes"):
            if key in values:
                values[key] = tuple(int(v) for v in values[key])
        if "resblock_dilation_sizes" in values:
            values["resblock_dilation_sizes"] = tuple(
                tuple(int(v) for v in d) for d in values["resblock_dilation_sizes"]
            )
        values["extra"] = _plain(tree)
        try:
            return cls(**values)
        except TypeError as exc:
            raise ValueError(f"config values do not fit SoVITSConfig: {exc}") from exc


def _plain(value: Any) -> Any:
    """Nested mappings (HParams bags included) -> plain dicts, lists kept."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def preset(version: str) -> SoVITSConfig:
    """Upstream's published full-size config for ``version`` (v1, v2, v3 and v4 share ``s2.json``;
    the DiT/wns1 defaults are v3/v4's hard-coded sizes)."""
    if version in ("v1", "v2", "v3", "v4"):
        return SoVITSConfig(version=version)  # type: ignore[arg-type]
    if version == "v2Pro":
        return SoVITSConfig(version="v2Pro", p_dropout=0.0, gin_channels=1024)
    if version == "v2ProPlus":
        return SoVITSConfig(
            version="v2ProPlus",
            p_dropout=0.0,
            gin_channels=1024,
            upsample_initial_channel=768,
            upsample_kernel_sizes=(20, 16, 8, 2, 2),
        )
    raise ValueError(f"unknown SoVITS version {version!r}; expected one of {VERSIONS}")
