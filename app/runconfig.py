"""What a long-running child process is told: the run configs written to ``run.yaml``.

Each job (:mod:`app.services.jobs`) is ``python -m <module> --config <run dir>/run.yaml``; the
child reads one of these dataclasses with :func:`app.config_io.load` (unknown keys are errors) and
reports progress through :mod:`app.runstatus` beside it. Foundation layer: the services write
these files, the workflows (``app.data.preprocess``, ``app.train``) read them, and neither imports
the other.

Defaults are upstream GPT-SoVITS's (``webui.py``, ``configs/s2.json``, ``configs/s1longer-v2.yaml``)
unless a comment says otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app import config_io
from app.messages import Message
from app.paths import SvcExperiment

RUN_FILE = "run.yaml"
# Python modules started as jobs.
FORMAT_MODULE = "app.data.preprocess.tts_features"
SOVITS_MODULE = "app.train.sovits"
GPT_MODULE = "app.train.gpt"

# Speaker embeddings of v2Pro/v2ProPlus (7-sv_cn/), named after upstream's script 2-get-sv.py,
# which its web UI runs inside step 1Ab right after the HuBERT features.
SV_STEP = "2-get-sv"
# Dataset formatting steps in the order they run, upstream's names: 1a text + BERT, 1b HuBERT +
# 32 kHz audio, 2-get-sv speaker embeddings (v2Pro/v2ProPlus only), 1c semantic tokens.
FORMAT_STEPS: tuple[str, ...] = ("1a", "1b", SV_STEP, "1c")
# Versions we train (upstream's training radio): v1-v2ProPlus fine-tune the whole SoVITS (GAN),
# v3/v4 train LoRA adapters on the flow-matching decoder of their base (upstream s2_train_v3_lora.py).
TRAIN_VERSIONS: tuple[str, ...] = ("v1", "v2", "v2Pro", "v2ProPlus", "v3", "v4")
# Versions whose SoVITS takes a speaker-verification embedding besides the reference spectrogram.
PRO_VERSIONS = frozenset({"v2Pro", "v2ProPlus"})
# Versions whose SoVITS is trained as LoRA (flow-matching decoder + vocoder, no discriminator).
LORA_VERSIONS = frozenset({"v3", "v4"})
# LoRA ranks upstream's training UI offers (webui.py lora_rank radio) and its default.
LORA_RANKS: tuple[int, ...] = (16, 32, 64, 128)
DEFAULT_LORA_RANK = 32
# Upstream's factor for the text modules' learning rate (v1-v2ProPlus; v3/v4 train one rate).
TEXT_LOW_LR_RATE = 0.4
# The version upstream's web UI starts with (webui.py: version = "v2Pro").
DEFAULT_TRAIN_VERSION = "v2Pro"
# Mixed precision on CUDA; CPU always trains in fp32.
PRECISIONS: tuple[str, ...] = ("fp16", "bf16", "fp32")
# The kinds of run an experiment has, each in its own folder (run.yaml, status.json, logs, checkpoints).
RUN_KINDS: tuple[str, ...] = ("format", "sovits", "gpt")
MODULES = {"format": FORMAT_MODULE, "sovits": SOVITS_MODULE, "gpt": GPT_MODULE}


def is_pro(version: str) -> bool:
    """v2Pro / v2ProPlus: formatting adds 2-get-sv, SoVITS training reads 7-sv_cn/."""
    return version in PRO_VERSIONS


def is_lora(version: str) -> bool:
    """v3 / v4: SoVITS training adds LoRA adapters to the base's flow-matching decoder."""
    return version in LORA_VERSIONS


def text_version(version: str) -> str:
    """The phone symbol table of a model version: v1's 322 symbols, or v2's 732 (v2Pro*, v3, v4 included)."""
    return "v1" if version == "v1" else "v2"


def format_steps(version: str, steps: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """The steps a formatting run of ``version`` carries out when ``steps`` are asked, in run order.

    v2Pro/v2ProPlus: 1b brings 2-get-sv along, as upstream's 1Ab runs 2-get-sv.py after the HuBERT
    features. v1/v2: 2-get-sv is left out (their SoVITS takes no speaker embedding).
    """
    wanted = set(steps)
    if is_pro(version):
        if "1b" in wanted:
            wanted.add(SV_STEP)
    else:
        wanted.discard(SV_STEP)
    return tuple(s for s in FORMAT_STEPS if s in wanted)


def run_folder(kind: str, version: str) -> str:
    """Folder of a run inside its experiment: upstream's ``logs_s2_<version>`` / ``logs_s1_<version>``
    for training, ``format`` for dataset formatting."""
    folders = {"format": "format", "sovits": f"logs_s2_{version}", "gpt": f"logs_s1_{version}"}
    if kind not in folders:
        template = "unknown run kind {kind!r}; expected one of {kinds}"
        raise ValueError(Message("runconfig.err.kind", template, kind=kind, kinds=RUN_KINDS))
    return folders[kind]


@dataclass(frozen=True)
class FormatRunConfig:
    """Dataset formatting (``python -m app.data.preprocess.tts_features --config run.yaml``)."""

    list_path: Path  # the .list annotation file (wav_path|speaker|language|text)
    audio_dir: Path | None  # folder with the clips (file names taken from the list); None: paths as listed
    exp_dir: Path  # experiment folder: 2-name2text.txt, 3-bert/, 4-cnhubert/, 5-wav32k/, 6-name2semantic.tsv, 7-sv_cn/
    bert_dir: Path  # chinese-roberta-wwm-ext-large (1a, Chinese lines only)
    hubert_dir: Path  # chinese-hubert-base (1b)
    pretrained_s2g: Path  # SoVITS generator whose quantizer turns HuBERT features into semantic tokens (1c)
    version: str = "v2"  # v1 (322 phone symbols), v2 (732); v2Pro/v2ProPlus: v2's table plus 2-get-sv
    steps: tuple[str, ...] = FORMAT_STEPS  # steps asked; run in FORMAT_STEPS order (see format_steps)
    device: str = "auto"  # "auto", "cpu", "cuda", "cuda:1"
    half: bool = True  # fp16 models on CUDA (upstream is_half); ignored on CPU
    workers: int = 2  # processes for phonemisation (1a) and threads for audio decoding (1b)
    # ERes2NetV2 speaker-verification model (pretrained_models/sv/pretrained_eres2netv2w24s4ep4.ckpt)
    # for 2-get-sv; None for v1/v2, which do not run that step.
    sv_path: Path | None = None
    # The data folder: listed audio must resolve inside it (inside audio_dir when that is set);
    # None (a run.yaml written before this field): inside the list's folder.
    data_root: Path | None = None


@dataclass(frozen=True)
class SoVITSRunConfig:
    """SoVITS fine-tuning (``python -m app.train.sovits --config run.yaml``)."""

    exp_name: str  # names the exported weights <exp_name>_e<epoch>_s<step>.pth
    exp_dir: (
        Path  # the formatted experiment folder (2-name2text.txt, 4-cnhubert/, 5-wav32k/, 7-sv_cn/ for Pro)
    )
    weights_dir: Path  # where exported inference weights go (SoVITS_weights/)
    pretrained_g: Path | None  # generator to start from (s2G*.pth, exported weights or upstream G_*.pth)
    pretrained_d: Path | None  # discriminator to start from (s2D*.pth or upstream D_*.pth)
    # v1, v2, v2Pro, v2ProPlus (Pro: reads 7-sv_cn/ speaker embeddings), or v3/v4 (LoRA on the
    # flow-matching decoder; pretrained_d must be None: no discriminator)
    version: str = "v2"
    batch_size: int = 4  # per GPU (the UI proposes upstream's memory-based default)
    epochs: int = 8  # upstream web UI default for v1/v2/v2Pro/v2ProPlus (v3/v4: the UI proposes 2)
    save_every_epoch: int = 4  # checkpoint + export every N epochs (and always after the last epoch)
    # learning-rate factor of enc_p.text_embedding / encoder_text / mrte (v1-v2ProPlus only:
    # v3/v4 keep enc_p frozen; another value is refused there)
    text_low_lr_rate: float = TEXT_LOW_LR_RATE
    learning_rate: float = 1e-4
    betas: tuple[float, float] = (0.8, 0.99)
    eps: float = 1e-9
    lr_decay: float = 0.999875  # ExponentialLR factor per epoch
    seed: int = 1234
    precision: str = "fp16"  # autocast on CUDA (upstream fp16_run); CPU uses fp32
    device: str = "auto"  # "auto" (the job's GPU, else CPU), "cpu", "cuda:N"
    log_interval: int = 10  # optimiser steps between logged losses (upstream logs every 100)
    export_weights: bool = True  # write SoVITS_weights/ files when saving (upstream if_save_every_weights)
    keep_checkpoints: int = 1  # resume checkpoints kept (upstream if_save_latest keeps 1); 0 keeps all
    min_items_per_epoch: int = 100  # upstream repeats a smaller dataset until an epoch has about this many
    num_workers: int = 2  # DataLoader worker processes (0: load in the training process)
    # SoVITSConfig fields replacing those of the starting point (tests use tiny shapes; empty for real runs).
    model: dict[str, Any] = field(default_factory=dict)
    # Divides every discriminator width (1 = upstream's discriminator, required with a pretrained D;
    # v3/v4 have no discriminator and take only 1).
    discriminator_width_divisor: int = 1
    # v3/v4 only: rank r (= alpha, scale 1) of the adapters on the DiT's to_q/to_k/to_v/to_out.0
    # (upstream offers 16/32/64/128); None: 32 for v3/v4, required None for the other versions.
    lora_rank: int | None = None
    # v3/v4 only: recompute the DiT blocks in the backward pass (less GPU memory, ~1/3 slower;
    # upstream grad_ckpt).
    grad_checkpoint: bool = False

    def __post_init__(self) -> None:
        if not is_lora(self.version):
            if self.lora_rank is not None or self.grad_checkpoint:
                template = (
                    "lora_rank and grad_checkpoint are v3/v4 (LoRA) settings; a {version} run "
                    "trains the whole model: leave them unset"
                )
                raise config_io.ConfigError(
                    Message("runconfig.err.lora_only", template, version=self.version)
                )
            return
        if self.lora_rank is not None and (isinstance(self.lora_rank, bool) or self.lora_rank < 1):
            template = "lora_rank must be a positive whole number, got {rank!r}"
            raise config_io.ConfigError(Message("runconfig.err.rank", template, rank=self.lora_rank))
        # What a v3/v4 LoRA run has no use for must not be set (it would be ignored).
        unused = [
            *(
                [
                    Message(
                        "runconfig.unused.pretrained_d", "pretrained_d (v3/v4 train without a discriminator)"
                    )
                ]
                if self.pretrained_d is not None
                else []
            ),
            *(["discriminator_width_divisor"] if self.discriminator_width_divisor != 1 else []),
            *(
                [Message("runconfig.unused.text_low_lr_rate", "text_low_lr_rate (enc_p is frozen)")]
                if self.text_low_lr_rate != TEXT_LOW_LR_RATE
                else []
            ),
            *(
                [Message("runconfig.unused.model", "model (the adapters keep the base's shape)")]
                if self.model
                else []
            ),
        ]
        if unused:
            template = "{version} LoRA training does not use {unused}; leave them at their defaults"
            listed = _listed(unused)
            raise config_io.ConfigError(
                Message("runconfig.err.lora_unused", template, version=self.version, unused=listed)
            )

    @property
    def adapter_rank(self) -> int:
        """The LoRA rank of a v3/v4 run (``lora_rank``, else upstream's default 32)."""
        return DEFAULT_LORA_RANK if self.lora_rank is None else self.lora_rank


@dataclass(frozen=True)
class GPTRunConfig:
    """GPT (text-to-semantic) fine-tuning (``python -m app.train.gpt --config run.yaml``)."""

    exp_name: str  # names the exported weights <exp_name>_e<epoch>_s<step>.ckpt
    exp_dir: Path  # the formatted experiment folder (2-name2text.txt, 3-bert/, 6-name2semantic.tsv)
    weights_dir: Path  # where exported inference weights go (GPT_weights/)
    pretrained_s1: Path | None  # GPT to start from (s1bert25hz-*.ckpt, s1v3.ckpt or an exported .ckpt)
    version: str = (
        "v2"  # v1, v2, v2Pro, v2ProPlus, v3 or v4; all but v1 use a v2-table GPT (s1v3 for v2Pro*/v3/v4)
    )
    batch_size: int = 8  # per GPU (upstream caps it at a quarter of the dataset)
    epochs: int = 15  # upstream web UI default
    save_every_epoch: int = 5  # checkpoint + export every N epochs (and always after the last epoch)
    # AdamW (not upstream's ScaledAdam; see README "Fine-tuning"): lr held constant after warm-up.
    learning_rate: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.95)  # upstream's ScaledAdam betas
    warmup_steps: int = 0  # optimiser steps of linear warm-up from 0
    accumulate_batches: int = 4  # batches per optimiser step (upstream steps every 4th batch)
    grad_clip: float = 1.0  # max gradient norm (upstream config gradient_clip)
    seed: int = 1234
    precision: str = "fp16"  # autocast on CUDA (upstream 16-mixed); CPU uses fp32
    device: str = "auto"
    log_interval: int = 10  # optimiser steps between logged losses
    export_weights: bool = True  # write GPT_weights/ files when saving
    keep_checkpoints: int = 1  # resume checkpoints kept; 0 keeps all
    min_items_per_epoch: int = 100  # upstream repeats a smaller dataset until an epoch has about this many
    max_sec: float = 54.0  # clips with more semantic tokens than max_sec * 25 are left out (upstream)
    num_workers: int = 2  # DataLoader worker processes
    # GPTConfig fields for a model trained from scratch (ignored keys are errors; empty for real runs).
    model: dict[str, Any] = field(default_factory=dict)


# -- singing voice conversion ----------------------------------------------------------------------
SVC_MODULE = "app.train.svc"


@dataclass(frozen=True)
class SvcRunConfig:
    """so-vits-svc 4.1 training (``python -m app.train.svc --config run.yaml``).

    ``run.yaml`` lives in the experiment's ``logs/44k/`` beside the checkpoints. Network and
    optimiser settings come from the experiment's ``configs/config.json`` as in 4.1; a field left
    at None takes that file's ``train`` value.
    """

    experiment: Path  # the 4.1 tree (dataset/44k, filelists, configs/config.json, logs/44k)
    base_g: Path | None = None  # start here when the run has no checkpoint (None: logs/44k/G_0.pth)
    base_d: Path | None = None  # its discriminator (None: logs/44k/D_0.pth)
    epochs: int | None = None  # last epoch (train.epochs)
    max_steps: int | None = None  # stop after this many optimiser steps in all (None: no limit)
    save_every: int | None = None  # steps between G_/D_ checkpoints (train.eval_interval)
    keep_checkpoints: int | None = None  # newest G_/D_ pairs kept, 0 = all (train.keep_ckpts)
    batch_size: int | None = None  # per process (train.batch_size)
    log_every: int | None = None  # steps between status/metrics lines (train.log_interval)
    learning_rate: float | None = None  # train.learning_rate
    precision: str | None = None  # fp16/bf16/fp32 CUDA autocast (None: train.fp16_run/half_type)
    device: str = "auto"  # "auto", "cpu", "cuda:N" (torchrun workers take their local GPU)
    num_workers: int = 0  # DataLoader processes
    cpu_threads: int | None = None  # torch intra-op threads (None: torch's choice; 1 on a busy CPU)
    seed: int | None = None  # train.seed
    export: bool = True  # write the compressed inference file at the end
    export_half: bool = False  # store it in float16
    tensorboard: bool = True
    # Divides every discriminator width (1 = 4.1's discriminator, the one D_*.pth files hold;
    # tests and experiments train narrower ones, which cannot start from such a file).
    discriminator_width_divisor: int = 1

    def __post_init__(self) -> None:
        divisor = self.discriminator_width_divisor
        if isinstance(divisor, bool) or not isinstance(divisor, int) or divisor < 1:
            template = (
                "discriminator_width_divisor must be a whole number >= 1 (1: 4.1's width), got {value!r}"
            )
            raise ValueError(Message("runconfig.err.svc_divisor", template, value=divisor))
        if self.precision is not None and self.precision not in PRECISIONS:
            template = "precision {precision!r}: choose one of {choices}"
            raise ValueError(
                Message("runconfig.err.precision", template, precision=self.precision, choices=PRECISIONS)
            )

    @property
    def tree(self) -> SvcExperiment:
        return SvcExperiment(Path(self.experiment))


def save_svc_run(run: SvcRunConfig) -> Path:
    """Write ``run`` to ``<experiment>/logs/44k/run.yaml`` (what the job is started with)."""
    return config_io.save(run, run.tree.models / RUN_FILE)


def _listed(items: list[str]) -> str:
    """``", ".join(items)`` as nested Messages, so that each item that is one is translated."""
    out = items[-1]
    for item in reversed(items[:-1]):
        out = Message("runconfig.list", "{first}, {rest}", first=item, rest=out)
    return out
