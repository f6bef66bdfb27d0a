"""so-vits-svc configuration: the ``config.json`` beside ``G_*.pth`` and the synthesizer's own config.

``SvcConfig`` mirrors upstream's ``config.json`` section by section (``train``, ``data``,
``model``, ``spk``) with upstream's exact field names, so a file reads and writes back unchanged:
keys we do not know are kept in ``extra`` and written back, keys a file lacks (older versions)
are remembered in ``absent`` and not invented on write. Defaults are those of 4.1's
``configs_template/config_template.json``.

``SynthesizerConfig`` is what the network is built from (``SvcSynthesizer(cfg)``); it is derived
from an ``SvcConfig`` plus the layout variant found in the weights:

- ``"sovits41"``: so-vits-svc 4.0/4.1 (content pre-net Conv1d k5 + uv embedding [+ volume],
  prior encoder of ``n_layers`` with FFN kernel ``kernel_size``, optional F0 decoder).
- ``"legacy32k"``: innnky/so-vits-svc branch 32k (hubert-soft 256, pre-net k1 inside ``enc_p_``,
  16 prior layers with FFN kernel 5, no uv, coarse pitch clipped to 255). That code ignores the
  config's ``n_layers``/``kernel_size``/``n_layers_q`` and hard-codes its decoder; we do the same.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

from app.messages import Message

Variant = Literal["sovits41", "legacy32k"]

# ssl_dim (and 4.1 default gin/filter width) per content encoder name (4.1 preprocess_flist_config).
SSL_DIM_BY_ENCODER = {
    "vec768l12": 768,
    "vec256l9": 256,
    "hubertsoft": 256,
    "dphubert": 768,
    "wavlmbase+": 768,
    "whisper-ppg": 1024,
    "cnhubertlarge": 1024,
    "whisper-ppg-large": 1280,
}
# Options of 4.1 whose layers we do not build yet; a config using them is refused by name.
UNSUPPORTED_TRUE = ("use_depthwise_conv", "use_transformer_flow")


class SvcConfigError(ValueError):
    """A so-vits-svc config that cannot be read or built; the message names the file and key."""


@dataclass
class _Section:
    """Base for one json section: known fields + ``extra`` unknown keys + ``absent`` known keys."""

    extra: dict[str, Any] = field(default_factory=dict, repr=False)
    absent: tuple[str, ...] = field(default=(), repr=False)

    @classmethod
    def known(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls) if f.name not in ("extra", "absent")]

    @classmethod
    def from_json(cls, data: Any, where: str):  # type: ignore[no-untyped-def]
        if not isinstance(data, dict):
            template = "{where}: expected an object, got {kind}"
            raise SvcConfigError(
                Message("svccfg.err.object", template, where=where, kind=type(data).__name__)
            )
        names = cls.known()
        values = {k: data[k] for k in names if k in data}
        extra = {k: v for k, v in data.items() if k not in names}
        absent = tuple(k for k in names if k not in data)
        return cls(**values, extra=extra, absent=absent)

    def to_json(self) -> dict[str, Any]:
        out = {k: getattr(self, k) for k in self.known() if k not in self.absent}
        out.update(self.extra)
        return out


@dataclass
class TrainSection(_Section):
    """``train``: optimiser and schedule (read by the trainer, not by the network)."""

    log_interval: int = 200
    eval_interval: int = 800  # steps between G_/D_ checkpoints
    seed: int = 1234
    epochs: int = 10000
    learning_rate: float = 1e-4
    betas: list[float] = field(default_factory=lambda: [0.8, 0.99])
    eps: float = 1e-9
    batch_size: int = 6
    fp16_run: bool = False
    half_type: str = "fp16"
    lr_decay: float = 0.999875  # ExponentialLR gamma per epoch
    segment_size: int = 10240  # decoder training window in samples
    init_lr_ratio: float = 1
    warmup_epochs: int = 0
    c_mel: float = 45  # weight of the mel L1 loss
    c_kl: float = 1.0  # weight of the KL loss
    use_sr: bool = True
    max_speclen: int = 512
    port: str = "8001"
    keep_ckpts: int = 3
    all_in_mem: bool = False
    vol_aug: bool = False


@dataclass
class DataSection(_Section):
    """``data``: audio framing shared by preprocessing, training and the network."""

    training_files: str = "filelists/train.txt"
    validation_files: str = "filelists/val.txt"
    max_wav_value: float = 32768.0
    sampling_rate: int = 44100
    filter_length: int = 2048  # n_fft of the linear spectrogram (posterior input)
    hop_length: int = 512  # samples per synth frame = prod(upsample_rates)
    win_length: int = 2048
    n_mel_channels: int = 80
    mel_fmin: float = 0.0
    mel_fmax: float | None = 22050
    unit_interpolate_mode: str = "nearest"  # content frames -> synth frames ("left" = 4.0)


@dataclass
class ModelSection(_Section):
    """``model``: network shape (4.1 names; the 32k files use a subset)."""

    inter_channels: int = 192
    hidden_channels: int = 192
    filter_channels: int = 768
    n_heads: int = 2
    n_layers: int = 6
    kernel_size: int = 3
    p_dropout: float = 0.1
    resblock: str = "1"
    resblock_kernel_sizes: list[int] = field(default_factory=lambda: [3, 7, 11])
    resblock_dilation_sizes: list[list[int]] = field(default_factory=lambda: [[1, 3, 5]] * 3)
    upsample_rates: list[int] = field(default_factory=lambda: [8, 8, 2, 2, 2])
    upsample_initial_channel: int = 512
    upsample_kernel_sizes: list[int] = field(default_factory=lambda: [16, 16, 4, 4, 4])
    n_layers_q: int = 3
    n_layers_trans_flow: int = 3
    n_flow_layer: int = 4
    use_spectral_norm: bool = False
    gin_channels: int = 768
    ssl_dim: int = 768
    n_speakers: int = 1
    vocoder_name: str = "nsf-hifigan"
    speech_encoder: str = "vec768l12"
    speaker_embedding: bool = False
    vol_embedding: bool = False
    use_depthwise_conv: bool = False
    flow_share_parameter: bool = False
    use_automatic_f0_prediction: bool = True
    use_transformer_flow: bool = False


@dataclass
class SvcConfig:
    """The whole ``config.json`` (see module docstring)."""

    train: TrainSection = field(default_factory=TrainSection)
    data: DataSection = field(default_factory=DataSection)
    model: ModelSection = field(default_factory=ModelSection)
    spk: dict[str, int] = field(default_factory=lambda: {"speaker0": 0})
    extra: dict[str, Any] = field(default_factory=dict, repr=False)  # other top-level keys

    @classmethod
    def from_json(cls, data: Any, where: str = "config.json") -> SvcConfig:
        if not isinstance(data, dict):
            raise SvcConfigError(
                Message("svccfg.err.top", "{where}: expected a JSON object at the top level", where=where)
            )
        for key in ("data", "model"):
            if key not in data:
                template = "{where}: no '{key}' section; is this a so-vits-svc config.json?"
                raise SvcConfigError(Message("svccfg.err.section", template, where=where, key=key))
        spk = data.get("spk", {})
        if not isinstance(spk, dict) or not all(isinstance(v, int) for v in spk.values()):
            template = "{where}: 'spk' must map speaker names to integer ids"
            raise SvcConfigError(Message("svccfg.err.spk", template, where=where))
        return cls(
            train=TrainSection.from_json(data.get("train", {}), f"{where}: train"),
            data=DataSection.from_json(data["data"], f"{where}: data"),
            model=ModelSection.from_json(data["model"], f"{where}: model"),
            spk=dict(spk),
            extra={k: v for k, v in data.items() if k not in ("train", "data", "model", "spk")},
        )

    def to_json(self) -> dict[str, Any]:
        out = {
            "train": self.train.to_json(),
            "data": self.data.to_json(),
            "model": self.model.to_json(),
            "spk": dict(self.spk),
        }
        out.update(self.extra)
        return out

    @property
    def speech_encoder(self) -> str:
        """Content encoder name; 4.0 files lack it and used 256-d ContentVec (vec256l9)."""
        if "speech_encoder" not in self.model.absent:
            return self.model.speech_encoder
        return "hubertsoft" if "n_layers_trans_flow" in self.model.absent else "vec256l9"

    def synthesizer(self, variant: Variant = "sovits41") -> SynthesizerConfig:
        """The network config for this file and layout variant."""
        m, d = self.model, self.data
        if variant == "legacy32k":
            # innnky 32k hard-codes these (models.py: TextEncoder(..., 5, 1, 16, ...), Generator(hps)).
            return SynthesizerConfig(
                variant="legacy32k",
                spec_channels=d.filter_length // 2 + 1,
                segment_frames=self.train.segment_size // d.hop_length,
                sampling_rate=32000,
                ssl_dim=m.ssl_dim,
                inter_channels=m.inter_channels,
                hidden_channels=m.hidden_channels,
                filter_channels=m.filter_channels,
                n_heads=m.n_heads,
                n_layers=16,
                kernel_size=5,
                p_dropout=m.p_dropout,
                resblock="1",
                resblock_kernel_sizes=(3, 7, 11),
                resblock_dilation_sizes=((1, 3, 5),) * 3,
                upsample_rates=(10, 8, 2, 2),
                upsample_initial_channel=512,
                upsample_kernel_sizes=(16, 16, 4, 4),
                gin_channels=m.gin_channels,
                n_speakers=m.n_speakers,
                n_flow_layer=4,
            )
        for option in UNSUPPORTED_TRUE:
            if getattr(m, option) and option not in m.absent:
                template = "config.json: model.{option} = true is not supported yet"
                raise SvcConfigError(Message("svccfg.err.option", template, option=option))
        if m.vocoder_name not in ("nsf-hifigan",):
            template = "config.json: model.vocoder_name {name!r} is not supported yet (only nsf-hifigan)"
            raise SvcConfigError(Message("svccfg.err.vocoder", template, name=m.vocoder_name))
        return SynthesizerConfig(
            variant="sovits41",
            spec_channels=d.filter_length // 2 + 1,
            segment_frames=self.train.segment_size // d.hop_length,
            sampling_rate=d.sampling_rate,
            ssl_dim=m.ssl_dim,
            inter_channels=m.inter_channels,
            hidden_channels=m.hidden_channels,
            filter_channels=m.filter_channels,
            n_heads=m.n_heads,
            n_layers=m.n_layers,
            kernel_size=m.kernel_size,
            p_dropout=m.p_dropout,
            resblock=m.resblock,
            resblock_kernel_sizes=tuple(m.resblock_kernel_sizes),
            resblock_dilation_sizes=tuple(tuple(x) for x in m.resblock_dilation_sizes),
            upsample_rates=tuple(m.upsample_rates),
            upsample_initial_channel=m.upsample_initial_channel,
            upsample_kernel_sizes=tuple(m.upsample_kernel_sizes),
            gin_channels=m.gin_channels,
            n_speakers=m.n_speakers,
            n_flow_layer=m.n_flow_layer,
            flow_share_parameter=m.flow_share_parameter and "flow_share_parameter" not in m.absent,
            vol_embedding=m.vol_embedding and "vol_embedding" not in m.absent,
            use_automatic_f0_prediction=(
                m.use_automatic_f0_prediction and "use_automatic_f0_prediction" not in m.absent
            ),
        )


@dataclass(frozen=True)
class SynthesizerConfig:
    """Everything :class:`~app.models.svc.synthesizer.SvcSynthesizer` is built from."""

    variant: Variant = "sovits41"  # weight layout, see module docstring
    spec_channels: int = 1025  # linear spectrogram bins = n_fft // 2 + 1 (posterior input)
    segment_frames: int = 20  # decoder training window in frames
    sampling_rate: int = 44100  # Hz; hop = prod(upsample_rates)
    ssl_dim: int = 768  # content feature width
    inter_channels: int = 192  # latent z width
    hidden_channels: int = 192  # encoder width
    filter_channels: int = 768  # transformer FFN width
    n_heads: int = 2
    n_layers: int = 6  # prior transformer layers (also the F0 decoder's)
    kernel_size: int = 3  # prior FFN kernel (also the F0 decoder's)
    p_dropout: float = 0.1
    resblock: str = "1"  # HiFi-GAN residual block type
    resblock_kernel_sizes: tuple[int, ...] = (3, 7, 11)
    resblock_dilation_sizes: tuple[tuple[int, ...], ...] = ((1, 3, 5),) * 3
    upsample_rates: tuple[int, ...] = (8, 8, 2, 2, 2)
    upsample_initial_channel: int = 512
    upsample_kernel_sizes: tuple[int, ...] = (16, 16, 4, 4, 4)
    gin_channels: int = 768  # speaker vector width
    n_speakers: int = 1
    n_flow_layer: int = 4  # WaveNet depth inside each coupling
    flow_share_parameter: bool = False  # one WaveNet shared by all couplings
    vol_embedding: bool = False  # add Linear(1 -> hidden)(frame volume) to the content
    use_automatic_f0_prediction: bool = True  # build the F0 decoder (predict_f0 at inference)

    @property
    def hop_length(self) -> int:
        """Samples per frame = product of the upsampling rates."""
        hop = 1
        for rate in self.upsample_rates:
            hop *= rate
        return hop
