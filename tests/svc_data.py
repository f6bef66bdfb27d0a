"""Test material for singing voice conversion: sung-like tones, a raw dataset, tiny models.

Everything is generated here (no downloads): harmonic tones with vibrato and an amplitude envelope
stand in for singing, espeak-ng for speech; the content encoder is a random 12-layer HuBERT 16 wide
saved the way ``pretrained_models/content-vec-best/`` holds the real one.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from app.models.svc.config import SvcConfig
from app.paths import SvcExperiment
from app.runconfig import SvcRunConfig
from app.services.jobs import JobManager, JobView
from tests.synth import espeak, silence

SR = 16_000  # the tiny model's sampling rate
HOP = 128  # its hop (upsample 64 x 2)

TINY_TEMPLATE = {
    "train": {
        "segment_size": 2048,  # 16 frames
        "batch_size": 2,
        "eval_interval": 20,
        "log_interval": 1,
        "keep_ckpts": 2,
        "learning_rate": 1e-4,  # 4.1's
        "max_speclen": 512,
    },
    "data": {
        "sampling_rate": SR,
        "filter_length": 512,
        "hop_length": HOP,
        "win_length": 512,
        "n_mel_channels": 40,
        "mel_fmax": 8000,
    },
    "model": {
        "inter_channels": 16,
        "hidden_channels": 16,
        "filter_channels": 32,
        "n_heads": 2,
        "n_layers": 2,
        "kernel_size": 3,
        "p_dropout": 0.0,
        "resblock": "1",
        "resblock_kernel_sizes": [3, 5],
        "resblock_dilation_sizes": [[1, 3, 5], [1, 3, 5]],
        # Two stages, the first already at 8 kHz: the harmonic excitation of notes up to ~440 Hz
        # reaches every stage without aliasing, so the output's pitch is the f0 it is given.
        "upsample_rates": [64, 2],
        "upsample_initial_channel": 32,
        "upsample_kernel_sizes": [128, 4],
        "n_flow_layer": 2,
        "gin_channels": 16,
        "ssl_dim": 16,
        "n_speakers": 1,
        "speech_encoder": "vec768l12",
        "use_automatic_f0_prediction": True,
    },
    "spk": {},
}


def tiny_template(**model: object) -> SvcConfig:
    data = copy.deepcopy(TINY_TEMPLATE)
    data["model"].update(model)
    return SvcConfig.from_json(data)


def sung(seconds: float, f0: float, sr: int = SR, *, vibrato_hz: float = 5.5, vibrato_cents: float = 40.0,
         amp: float = 0.5, seed: int = 0) -> np.ndarray:  # fmt: skip
    """A sung-like note: 8 harmonics (1/k amplitudes) on ``f0`` with vibrato, soft attack/release, a little breath noise."""
    n = round(seconds * sr)
    t = np.arange(n) / sr
    freq = f0 * 2 ** (vibrato_cents / 1200 * np.sin(2 * np.pi * vibrato_hz * t))
    phase = 2 * np.pi * np.cumsum(freq) / sr
    wav = sum(np.sin(k * phase) / k for k in range(1, 9) if k * f0 < sr / 2 - 500)
    envelope = np.minimum(1.0, np.minimum(t, seconds - t) / 0.05)
    noise = np.random.default_rng(seed).standard_normal(n) * 0.01
    out = envelope * wav
    return (amp * out / np.abs(out).max() + noise * envelope).astype(np.float32)


def melody(
    notes: list[float], note_s: float = 0.6, sr: int = SR, gap_s: float = 0.0, seed: int = 0
) -> np.ndarray:
    """Notes one after another (``gap_s`` of silence between them)."""
    parts = []
    for i, f in enumerate(notes):
        parts.append(sung(note_s, f, sr, seed=seed + i))
        if gap_s:
            parts.append(silence(gap_s, sr))
    return np.concatenate(parts)


def make_raw_dataset(raw: Path, *, with_bad_files: bool = True) -> dict[str, list[Path]]:
    """``raw/<speaker>/*``: two voices of sung phrases (and espeak speech for the low one).

    ``alto`` sings around 200-400 Hz, ``tenor`` around 110-250 Hz plus two spoken sentences. With
    ``with_bad_files`` the alto folder also gets a 0.2 s clip (too short) and a silent file.
    """
    out: dict[str, list[Path]] = {"alto": [], "tenor": []}
    phrases = {
        "alto": [[220, 247, 262, 294], [330, 294, 262, 247], [392, 349, 330, 294], [262, 330, 392, 330], [247, 220, 262, 294]],
        "tenor": [[131, 147, 165, 175], [196, 175, 165, 147], [110, 131, 147, 165], [165, 196, 220, 196]],
    }  # fmt: skip
    for speaker, notes_list in phrases.items():
        folder = raw / speaker
        folder.mkdir(parents=True, exist_ok=True)
        for i, notes in enumerate(notes_list):
            path = folder / f"phrase{i}.flac"  # not only wav: any readable audio is accepted
            sf.write(path, np.concatenate([silence(0.2, SR), melody(notes, seed=i), silence(0.2, SR)]), SR)
            out[speaker].append(path)
    for i, text in enumerate(("Sing me a song about the sea", "Low voices carry far")):
        out["tenor"].append(espeak(text, raw / "tenor" / f"spoken{i}.wav", voice="en+m3"))
    if with_bad_files:
        short = raw / "alto" / "blip.wav"
        sf.write(short, sung(0.2, 300), SR)
        mute = raw / "alto" / "mute.wav"
        sf.write(mute, silence(1.0, SR), SR)
        out["alto"] += [short, mute]
    return out


def tiny_hubert(folder: Path, seed: int = 0) -> Path:
    """A random 12-layer HuBERT, 16 wide, with final_proj, saved like content-vec-best (pytorch_model.bin)."""
    from transformers import HubertConfig

    from app.models.encoders.content import _hubert_class

    torch.manual_seed(seed)
    config = HubertConfig(
        hidden_size=16,
        num_hidden_layers=12,
        num_attention_heads=2,
        intermediate_size=32,
        conv_dim=(8,) * 7,
        num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=4,
        classifier_proj_size=8,
    )
    _hubert_class()(config).save_pretrained(folder, safe_serialization=False)
    return folder


@dataclass(frozen=True)
class TrainedSvc:
    """A tiny SVC model trained from scratch by a real ``python -m app.train.svc`` job."""

    root: Path  # everything lives under here
    experiment: SvcExperiment
    pretrained: Path  # holds content-vec-best/ (the tiny HuBERT)
    run_yaml: Path
    job: JobView  # the finished job
    log: str  # its output
    steps: int

    @property
    def model(self) -> Path:
        return self.experiment.models / f"G_{self.steps}.pth"


# Tests train a discriminator this many times narrower than 4.1's (whose D_*.pth with AdamW moments
# is ~560 MB: each saved pair cost the suite half a gigabyte of disk).
TINY_D = 8


def prepare_experiment(root: Path, *, bad_files: bool = False) -> tuple[SvcExperiment, Path]:
    """Raw dataset + tiny encoder + preprocessing (pm f0) under ``root``."""
    from app.data.preprocess.svc.features import SvcPreprocessOptions, preprocess_svc

    experiment = SvcExperiment(root / "exp")
    make_raw_dataset(experiment.raw, with_bad_files=bad_files)
    pretrained = root / "pretrained"
    tiny_hubert(pretrained / "content-vec-best")
    options = SvcPreprocessOptions(pretrained_root=pretrained, f0_method="pm", template=tiny_template())
    preprocess_svc(experiment, options)
    return experiment, pretrained


def run_training_job(jobs: JobManager, run: SvcRunConfig, timeout: float = 900) -> JobView:
    """Write run.yaml, start the trainer as a job, wait for it to end."""
    from app.runconfig import SVC_MODULE, save_svc_run
    from app.services.jobs import JobSpec

    view = jobs.submit(JobSpec(module=SVC_MODULE, config=save_svc_run(run), name="svc test", kind="svc"))
    return jobs.wait(view.id, timeout=timeout)


def train_tiny_svc(root: Path, steps: int = 30) -> TrainedSvc:
    """Preprocess the generated dataset and train ``steps`` steps from scratch in a subprocess job."""
    experiment, pretrained = prepare_experiment(root)
    jobs = JobManager(root / "jobs")
    run = SvcRunConfig(
        experiment=experiment.root, max_steps=steps, save_every=steps // 2, keep_checkpoints=2,
        log_every=1, cpu_threads=1, discriminator_width_divisor=TINY_D,
    )  # fmt: skip
    view = run_training_job(jobs, run)
    return TrainedSvc(
        root=root, experiment=experiment, pretrained=pretrained, run_yaml=experiment.models / "run.yaml",
        job=view, log=jobs.tail(view.id, 400), steps=steps,
    )  # fmt: skip
