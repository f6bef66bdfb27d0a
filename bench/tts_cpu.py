"""CPU benchmark of the whole TTS pipeline on workload ``gsv-v2-cpu-anchor/1`` (shared/bench/WORKLOAD.md).

Full-size v2 GPT, SoVITS and HuBERT-base with random weights (seed 1234), written once to model
files with the upstream writers and loaded through ``TTSPipeline.load`` like any user model.
Stages, each timed as the median of ``--runs`` runs after one warm-up:

1. ``hubert_vq``: the workload's 5 s 16 kHz reference + 0.3 s pad -> HuBERT -> 139 prompt tokens;
2. ``ar_decode``: phones = 60 reference + 80 target, BERT zeros, the 139-token prompt: one prefill
   and exactly 250 tokens (EOS forced off), top_k 15, top_p 1, temperature 1, penalty 1.35;
3. ``sovits_decode``: spectrogram of the 32 kHz clip, timbre, decode of the 250 tokens with the 80
   target phones, noise 0.5 -> 320,000 samples.

RTF = (1 + 2 + 3) / 10 s; tokens/s = 250 / stage 2.

``--workload v2ProPlus`` (``gsv-v2proplus-cpu/1``): the same inputs and stages with a full-size
v2ProPlus SoVITS (gin 1024, the 768-wide decoder) and a full-size ERes2NetV2 speaker model
(w24 s4 ep4, random weights, seed 1234) in place of the v2 SoVITS, plus stage ``sv_embedding``: the
32 kHz clip after the level rule, resampled to 16 kHz, 80-bin fbank, ERes2NetV2 -> (1, 20480). It
counts in the total and the RTF (upstream computes it for every reference it has not seen). Also: time to first audio when the same request
is streamed (token chunks, reference encoding included) and where it goes (``first_audio_breakdown_s``:
timers around the stages until the first chunk), the seam error of streaming against a
whole decode (noise 0), a long text (10 segments of 100 tokens, batched vs one by one), and, for
``fast``, its deviation from ``fp32``. Every (threads, precision) runs in a fresh process with
OMP/MKL threads set. Prints one JSON line.

``--workload v4`` (``gsv-v4-cpu/1``): the same inputs, GPT and HuBERT with a full-size v4 SoVITS
(flow matching with the DiT, ``preset("v4")``) and the full-size v4 HiFi-GAN vocoder (48 kHz, random
weights, seed 1234), through the same ``TTSPipeline``. Stage 3 is then the reference
(spectrogram, 32 kHz mel, prompt features), ``CfmSoVITS.decode_mel`` of the 250 tokens at the
default 8 sample steps (1000 mel frames) and the vocoder -> 480,000 samples (10.0 s at 48 kHz); the
CFM and vocoder calls are timed apart (``stage3_split_s``). Streaming gives whole segments for v4
(no token chunks), so its first audio is the whole request; seams and decoder windows are VITS-only.

    python -m bench.tts_cpu [--threads 2 1] [--precisions fp32 fast] [--runs 3] [--long-runs 1]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

WORKLOAD = "gsv-v2-cpu-anchor/1"
WORKLOADS = {"v2": WORKLOAD, "v2ProPlus": "gsv-v2proplus-cpu/1", "v4": "gsv-v4-cpu/1"}
CFM_VERSIONS = ("v4",)  # flow matching + vocoder
SEED = 1234
NEW_TOKENS = 250
AUDIO_SECONDS = 10.0
LONG_SEGMENTS, LONG_TOKENS = 10, 100
REPO_ROOT = Path(__file__).resolve().parent.parent


def sovits_file(folder: Path, version: str) -> Path:
    return folder / ("sovits.pth" if version == "v2" else f"sovits_{version}.pth")


def sv_file(folder: Path) -> Path:
    return folder / "sv" / "pretrained_eres2netv2w24s4ep4.ckpt"


def build_models(folder: Path, version: str = "v2") -> None:
    """Random full-size models (seed 1234) as files: GPT .ckpt, HuBERT folder, the ``version``
    SoVITS .pth and, for v2ProPlus, the ERes2NetV2 speaker model; files already there are kept."""
    import torch
    from transformers import HubertConfig, HubertModel

    from app.models.gpt.config import GPTConfig
    from app.models.gpt.model import GPT
    from app.models.sovits.config import preset
    from app.models.sovits.model import SoVITS
    from app.models.upstream.gpt import save_gpt
    from app.models.upstream.sovits import write_sovits

    if not (folder / "gpt.ckpt").is_file():
        torch.manual_seed(SEED)
        HubertModel(HubertConfig()).eval().save_pretrained(folder / "chinese-hubert-base")
        torch.manual_seed(SEED)
        save_gpt(GPT(GPTConfig()).eval(), folder / "gpt.ckpt", epoch=1)
    if not sovits_file(folder, version).is_file():
        torch.manual_seed(SEED)
        if version in CFM_VERSIONS:
            from app.models.sovits.cfm_model import CfmSoVITS

            sovits = CfmSoVITS(preset(version)).eval()
        else:
            sovits = SoVITS(preset(version))
        with torch.no_grad():  # the codebook is zero until trained; give it values so codes mean something
            sovits.quantizer.vq.layers[0]._codebook.embed.normal_()
        write_sovits(sovits_file(folder, version), sovits.state_dict(), sovits.config, epoch=1, step=1)
    if version in CFM_VERSIONS:
        from app.models.vocoders import VOCODER_PATHS
        from app.models.vocoders.hifigan import HiFiGANVocoder, HiFiGANVocoderConfig

        target = folder / VOCODER_PATHS[version]  # pretrained_models/ is the HuBERT folder's parent
        if not target.is_file():
            torch.manual_seed(SEED)
            target.parent.mkdir(parents=True, exist_ok=True)
            torch.save(HiFiGANVocoder(HiFiGANVocoderConfig()).eval().state_dict(), target)
    if version in ("v2Pro", "v2ProPlus") and not sv_file(folder).is_file():
        from app.models.encoders.sv import ERes2NetV2, SVConfig

        torch.manual_seed(SEED)
        sv_file(folder).parent.mkdir(parents=True, exist_ok=True)
        torch.save(ERes2NetV2(SVConfig()).eval().state_dict(), sv_file(folder))


def _median(fn, runs: int) -> tuple[float, list[float], object]:
    out = fn()  # warm-up
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), times, out


def _snr(ref: np.ndarray, other: np.ndarray) -> float:
    err = float(np.sum((ref.astype(np.float64) - other) ** 2))
    return (
        float("inf")
        if err == 0
        else round(10 * np.log10(float(np.sum(ref.astype(np.float64) ** 2)) / err), 2)
    )


def worker(
    folder: Path, threads: int, precision: str, runs: int, long_runs: int, extras: bool, version: str = "v2"
) -> dict:
    """One (threads, precision) in this fresh process; ``extras``: also seams and kernel parity."""
    import torch

    from app.infer import PipelineSpec, StreamOptions, TTSPipeline
    from app.infer.inputs import SynthesisPlan, TextInput
    from app.infer.pipeline import DEFAULT_CFM_STEPS
    from app.models.gpt.sampling import SamplingOptions
    from bench.sovits_cpu import workload_inputs

    cfm = version in CFM_VERSIONS
    torch.set_num_threads(threads)
    inputs = workload_inputs()
    spec = PipelineSpec(
        folder / "gpt.ckpt",
        sovits_file(folder, version),
        folder / "chinese-hubert-base",
        folder / "none",
        "cpu",
        precision,
        sv_path=sv_file(folder),
    )
    t0 = time.perf_counter()
    p = TTSPipeline.load(spec)
    load_s = time.perf_counter() - t0
    rss_loaded = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    ref_phones = tuple(int(x) for x in inputs["ref_phones"])
    target = tuple(int(x) for x in inputs["target_phones"])
    zeros = torch.zeros(1024, len(ref_phones) + len(target))
    options = SamplingOptions(
        top_k=15, top_p=1.0, temperature=1.0, repetition_penalty=1.35, max_new_tokens=NEW_TOKENS,
        suppress_eos=True, seed=SEED,
    )  # fmt: skip

    samples = round(AUDIO_SECONDS * p.sample_rate)  # 320,000 at 32 kHz (VITS), 480,000 at 48 kHz (v4)
    steps = DEFAULT_CFM_STEPS[version] if cfm else 32  # flow-matching steps (unused by VITS)
    prompt_in = TextInput("reference", ref_phones, torch.zeros(1024, len(ref_phones)))
    split = _CfmSplit(p) if cfm else None
    s1, s1_runs, prompt = _median(lambda: p.prompt_tokens(inputs["wav16"]), runs)
    assert prompt.numel() == 139, prompt.shape

    def ar():
        (chunk,) = list(p.generate_tokens([ref_phones + target], [zeros], prompt, options))
        return chunk.tokens[0]

    s2, s2_runs, tokens = _median(ar, runs)
    assert tokens.numel() == NEW_TOKENS

    pro = p.speaker is not None
    if pro:
        wav32 = torch.from_numpy(inputs["wav32"])[None]
        s_sv, s_sv_runs, embedding = _median(lambda: p.speaker.embed_32k(wav32), runs)

    def timbre_of():
        if cfm:  # the reference as flow matching continues it: timbre, prompt features, its mel
            return _cfm_prompt(p, inputs["wav32"], prompt, prompt_in)
        spec = p.spectrogram(inputs["wav32"])
        return p.timbre([spec], [embedding] if pro else None)

    def sovits():
        if split is not None:
            split.reset()
        audio = p.decode_tokens(
            tokens, target, timbre_of(), noise_scale=0.5, generator=torch.Generator().manual_seed(SEED),
            sample_steps=steps,
        )  # fmt: skip
        if split is not None:
            split_runs.append(dict(split.seconds))
        return audio

    split_runs: list[dict] = []
    s3, s3_runs, audio = _median(sovits, runs)
    assert audio.shape == (samples,), audio.shape
    total = s1 + s2 + s3 + (s_sv if pro else 0.0)
    out: dict = {
        "workload": WORKLOADS[version],
        "threads": threads,
        "precision": precision,
        "plan": {"gpt": p.precision.gpt, "sovits_decoder": p.precision.decoder_label},
        "load_s": round(load_s, 2),
        "stage1_hubert_vq_s": round(s1, 3),
        "stage2_ar_decode_s": round(s2, 3),
        "stage3_sovits_decode_s": round(s3, 3),
        "total_s": round(total, 3),
        "runs_s": {"hubert_vq": _r(s1_runs), "ar_decode": _r(s2_runs), "sovits_decode": _r(s3_runs)},
        "ar_tokens_per_s": round(NEW_TOKENS / s2, 1),
        "rtf": round(total / AUDIO_SECONDS, 3),
    }
    if pro:
        out["stage_sv_embedding_s"] = round(s_sv, 3)
        out["runs_s"]["sv_embedding"] = _r(s_sv_runs)
    if cfm:
        timed = split_runs[1:]  # without the warm-up
        cfm_s = statistics.median(r["cfm"] for r in timed)
        voc_s = statistics.median(r["vocoder"] for r in timed)
        out["sample_steps"] = steps
        out["sample_rate"] = p.sample_rate
        out["stage3_split_s"] = {
            "reference_prompt": round(s3 - cfm_s - voc_s, 3),  # spectrogram, mel, prompt features
            "cfm_decode_mel": round(cfm_s, 3),
            "vocoder": round(voc_s, 3),
        }
        out["runs_s"]["cfm_decode_mel"] = _r([r["cfm"] for r in timed])
        out["runs_s"]["vocoder"] = _r([r["vocoder"] for r in timed])
        out["share_of_total"] = {
            "gpt": round(s2 / total, 3),
            "cfm": round(cfm_s / total, 3),
            "vocoder": round(voc_s / total, 3),
            "rest": round((total - s2 - cfm_s - voc_s) / total, 3),
        }

    # The same request streamed: reference encoding, then token chunks (first audio measured).
    segment = TextInput("target", target, torch.zeros(1024, len(target)))

    def plan_of(prompt_tokens, timbre, noise=0.5, segments=(segment,), batch=1, sampling=options):
        return SynthesisPlan(
            segments=segments, prompt=prompt_in, prompt_tokens=prompt_tokens, timbre=timbre,
            sampling=sampling, seed=SEED, pause_seconds=0.0, batch_size=batch, noise_scale=noise,
            sample_steps=steps,
        )  # fmt: skip

    clock = _FirstChunkClock(p)

    def streamed():
        start = time.perf_counter()
        clock.start()
        first = None
        pt = p.prompt_tokens(inputs["wav16"])
        if cfm:
            timbre = _cfm_prompt(p, inputs["wav32"], pt, prompt_in)
        else:
            spec, sv = p.timbre_inputs(inputs["wav32"])  # the speaker embedding too, for v2Pro*
            timbre = p.timbre([spec], [sv])
        n = 0
        for chunk in p.run(plan_of(pt, timbre), token_chunks=True):
            if first is None and len(chunk.audio):
                first = time.perf_counter() - start
                clock.first()
            n += len(chunk.audio)
        return first, time.perf_counter() - start, n

    firsts, totals, parts = [], [], []
    with clock:
        streamed()  # warm-up
        for _ in range(runs):
            first, whole, n = streamed()
            firsts.append(first)
            totals.append(whole)
            parts.append(clock.breakdown(first))
    assert n == samples, n
    out["stream"] = {
        "first_audio_s": round(statistics.median(firsts), 3),
        "first_audio_runs_s": _r(firsts),
        # Where the time to first audio goes (median per stage over the runs; "other": text
        # planning, sampling, the runner's own work and the timers).
        "first_audio_breakdown_s": {k: round(statistics.median(b[k] for b in parts), 3) for k in parts[0]},
        "total_s": round(statistics.median(totals), 3),
        "chunk_tokens": "whole segments (v3/v4 decode no token chunks)"
        if cfm
        else [StreamOptions().first_chunk, StreamOptions().chunk, StreamOptions().max_chunk],
    }
    # Peak RSS of the workload (load, the three stages, streaming); the checks below allocate more.
    out["peak_rss_mb"] = _peak_rss_mb()
    out["rss_after_load_mb"] = round(rss_loaded, 1)
    timbre = timbre_of()
    if extras and precision == "fp32" and not cfm:
        whole = list(p.run(plan_of(prompt, timbre, noise=0.0)))[-1].result.audio
        chunked = list(p.run(plan_of(prompt, timbre, noise=0.0), token_chunks=True))[-1].result.audio
        out["stream"]["seam_snr_db_vs_whole_decode"] = _snr(whole, chunked)
        out["stream"]["seam_max_abs_err"] = int(np.abs(whole.astype(np.int32) - chunked).max())
        out["fp32_tokens_equal_reference_kernels"] = _reference_tokens_equal(
            folder, ref_phones + target, zeros, prompt, options, tokens
        )
        out["windowed_decode_max_abs_err_vs_whole"] = _window_error(p, tokens, target, timbre)
    elif extras and precision == "fp32":
        out["fp32_tokens_equal_reference_kernels"] = _reference_tokens_equal(
            folder, ref_phones + target, zeros, prompt, options, tokens
        )
    out["long_text"] = _long_text(p, plan_of, timbre, prompt, long_runs)
    out["peak_rss_mb_with_checks"] = _peak_rss_mb()
    if precision != "fp32":
        out["deviation_from_fp32"] = _deviation(
            spec, p, tokens, target, prompt, ref_phones, zeros, options, inputs, prompt_in, steps
        )
    return out


def _long_text(p, plan_of, timbre, prompt, runs: int) -> dict:
    """10 segments of 100 tokens: one by one vs batched (all 10 rows in one GPT loop); ``runs`` 0
    leaves the case out (it is the longest part of a v4 run: 20 flow-matching decodes)."""
    if runs < 1:
        return {"skipped": "--long-runs 0"}
    import torch

    from app.infer.inputs import TextInput
    from app.models.gpt.sampling import SamplingOptions

    rng = np.random.default_rng(SEED + 1)
    segments = tuple(
        TextInput(f"s{i}", tuple(int(x) for x in rng.integers(1, 732, n)), torch.zeros(1024, int(n)))
        for i, n in enumerate(rng.integers(40, 81, LONG_SEGMENTS))
    )
    sampling = SamplingOptions(max_new_tokens=LONG_TOKENS, suppress_eos=True, seed=SEED)
    report = {"segments": LONG_SEGMENTS, "tokens_per_segment": LONG_TOKENS, "runs": runs}
    for batch in (1, LONG_SEGMENTS):
        plan = plan_of(prompt, timbre, segments=segments, batch=batch, sampling=sampling)
        results = [list(p.run(plan))[-1].result for _ in range(runs)]
        t = sorted(results, key=lambda r: r.timings.total)[len(results) // 2].timings
        seconds = len(results[0].audio) / p.sample_rate
        report[f"batch_{batch}"] = {
            "gpt_s": round(t.gpt, 3),
            "sovits_s": round(t.sovits, 3),
            "total_s": round(t.total, 3),
            "ar_tokens_per_s": round(t.tokens / t.gpt, 1),
            "rtf": round(t.total / seconds, 3),
            "first_audio_s": round(t.first_audio, 3),
        }
    return report


def _timer(inner, seconds: dict[str, float], key: str):
    """``inner`` wrapped to add each call's wall time (raising calls too) to ``seconds[key]``."""

    def timed(*args, **kwargs):
        t0 = time.perf_counter()
        try:
            return inner(*args, **kwargs)
        finally:
            seconds[key] += time.perf_counter() - t0

    return timed


class _CfmSplit:
    """Wall time of a v3/v4 pipeline's ``CfmSoVITS.decode_mel`` and vocoder calls, wrapped here
    (instance attributes) so the library code is timed as it runs, unchanged."""

    def __init__(self, p) -> None:
        self.seconds = {"cfm": 0.0, "vocoder": 0.0}
        p.sovits.decode_mel = _timer(p.sovits.decode_mel, self.seconds, "cfm")
        p.vocoder = _timer(p.vocoder, self.seconds, "vocoder")

    def reset(self) -> None:
        self.seconds.update(cfm=0.0, vocoder=0.0)  # in place: the timers add to this dict


class _FirstChunkClock:
    """Where a streamed request's time to its first audio goes: while installed (``with``), the
    pipeline's stages are wrapped with timers (HuBERT + VQ, spectrogram + timbre with the v2Pro*
    speaker embedding, the GPT's prefill and decoding steps, the token-chunk decoder: its prior
    encoder, flow and decoder window); :meth:`first` freezes their sums when the first chunk
    arrives. The rest is "other" (for v3/v4, whose segments are not token-chunked, their prompt
    and whole decode too)."""

    STAGES = ("hubert_vq", "timbre", "gpt_prefill", "gpt_steps", "chunk_decode")

    def __init__(self, p) -> None:
        from app.infer.streaming import ChunkDecoder

        self.targets = [
            (p, "prompt_tokens", "hubert_vq"),
            (p, "timbre_inputs", "timbre"),
            (p, "timbre", "timbre"),
            (p.gpt.engine, "prefill", "gpt_prefill"),
            (p.gpt.engine, "step", "gpt_steps"),
            (ChunkDecoder, "push", "chunk_decode"),
        ]
        self.saved: list = []
        self.totals = dict.fromkeys(self.STAGES, 0.0)
        self.frozen: dict[str, float] | None = None

    def start(self) -> None:
        self.totals.update(dict.fromkeys(self.STAGES, 0.0))  # in place: the timers add to this dict
        self.frozen = None

    def first(self) -> None:
        if self.frozen is None:
            self.frozen = dict(self.totals)

    def breakdown(self, first_s: float) -> dict[str, float]:
        parts = dict(self.frozen or self.totals)
        parts["other"] = first_s - sum(parts.values())
        return parts

    def __enter__(self) -> _FirstChunkClock:
        for owner, name, stage in self.targets:
            self.saved.append((owner, name, owner.__dict__.get(name)))
            setattr(owner, name, _timer(getattr(owner, name), self.totals, stage))
        return self

    def __exit__(self, *exc) -> None:
        for owner, name, before in reversed(self.saved):
            if before is None:
                delattr(owner, name)  # an instance's method: the class's shows again
            else:
                setattr(owner, name, before)
        self.saved.clear()


def _cfm_prompt(p, wav32, prompt_tokens, prompt_in):
    """v3/v4: the CfmPrompt of the workload reference (spectrogram, mel, prompt tokens and phones)."""
    import dataclasses

    features = dataclasses.replace(p.encode_reference(None, wav32), prompt_tokens=prompt_tokens)
    return p.cfm_prompt(features, prompt_in)


def _timbre_for(p, inputs, prompt_tokens, prompt_in):
    if p.is_cfm:
        return _cfm_prompt(p, inputs["wav32"], prompt_tokens, prompt_in)
    return p.timbre(*([x] for x in p.timbre_inputs(inputs["wav32"])))


def _deviation(
    fast_spec, fast, fast_tokens, target, prompt, ref_phones, zeros, options, inputs, prompt_in, steps
) -> dict:
    """How far ``fast`` is from fp32: sampled tokens, logits along fp32's tokens, decoded audio."""
    import dataclasses

    import torch

    from app.infer import TTSPipeline

    ref = TTSPipeline.load(dataclasses.replace(fast_spec, precision="fp32"))
    (chunk,) = list(ref.generate_tokens([ref_phones + target], [zeros], prompt, options))
    ref_tokens = chunk.tokens[0]
    same = fast_tokens == ref_tokens
    phones = torch.tensor([ref_phones + target])
    bert = zeros[None]

    def teacher_forced(model):
        cache = model.new_cache(1, phones.shape[1] + prompt.numel() + NEW_TOKENS)
        with torch.inference_mode():
            rows = [model.prefill(cache, phones, bert, prompt[None])]
            rows += [model.step(cache, t.view(1)) for t in ref_tokens[:-1]]
        return torch.cat(rows)

    a, b = teacher_forced(ref.gpt), teacher_forced(fast.gpt)
    err = (a - b).abs()
    timbre_ref = _timbre_for(ref, inputs, prompt, prompt_in)
    timbre_fast = _timbre_for(fast, inputs, prompt, prompt_in)

    def decode(pipe, timbre):  # noise 0 (VITS); the same seeded noise for flow matching
        gen = torch.Generator().manual_seed(SEED)
        return pipe.decode_tokens(
            ref_tokens, target, timbre, noise_scale=0.0, generator=gen, sample_steps=steps
        )

    audio_ref, audio_fast = decode(ref, timbre_ref), decode(fast, timbre_fast)
    diverged = (~same).nonzero()
    return {
        "hubert_code_agreement": round(
            (ref.prompt_tokens(inputs["wav16"]) == prompt).float().mean().item(), 4
        ),
        "sampled_token_agreement": round(same.float().mean().item(), 4),
        "first_divergent_token": int(diverged[0]) if len(diverged) else None,
        "logits_max_abs_err": float(f"{err.max().item():.3g}"),
        "logits_max_err_over_std": float(f"{err.max().item() / a.std().item():.3g}"),
        "argmax_agreement": round((a.argmax(-1) == b.argmax(-1)).float().mean().item(), 4),
        "decoder_audio_snr_db": _snr(audio_ref, audio_fast),
        "decoder_audio_max_abs_err": float(f"{np.abs(audio_ref - audio_fast).max():.3g}"),
    }


def _peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def _reference_tokens_equal(folder, phones, bert, prompt, options, tokens) -> bool:
    """fp32 is the parity path: its packed kernels give the plain ``F.linear`` path's tokens."""
    import torch

    from app.models.gpt.engine import decode
    from app.models.upstream.gpt import load_gpt

    model = load_gpt(folder / "gpt.ckpt").model
    model.set_precision("reference")
    got = decode(model, torch.tensor([phones]), bert[None], prompt[None], options).tokens[0]
    return bool(torch.equal(got, tokens))


def _window_error(p, tokens, target, timbre) -> float:
    """Max |windowed - whole| decoder output for the workload's 10 s (noise 0)."""
    import torch

    whole = p.decode_tokens(tokens, target, timbre, noise_scale=0.0)
    windowed = p.sovits.dec
    p.sovits.dec = windowed.inner  # the decoder without windows
    try:
        plain = p.decode_tokens(tokens, target, timbre, noise_scale=0.0)
    finally:
        p.sovits.dec = windowed
    assert isinstance(windowed, torch.nn.Module)
    return float(f"{np.abs(whole - plain).max():.3g}")


def _r(values) -> list[float]:
    return [round(v, 3) for v in values]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[2, 1])
    parser.add_argument("--precisions", nargs="+", default=["fp32", "fast"], choices=["fp32", "fast"])
    parser.add_argument(
        "--workloads", nargs="+", default=["v2", "v2ProPlus"], choices=list(WORKLOADS), help="SoVITS version"
    )
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--long-runs", type=int, default=1, help="runs of the 10-segment case (median; 0 leaves it out)"
    )
    parser.add_argument(
        "--models", type=Path, help="folder of models built before (default: build in a temp dir)"
    )
    parser.add_argument("--worker", nargs=2, metavar=("THREADS", "PRECISION"), help=argparse.SUPPRESS)
    parser.add_argument("--extras", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        threads, precision = int(args.worker[0]), args.worker[1]
        version = args.workloads[0]
        result = worker(args.models, threads, precision, args.runs, args.long_runs, args.extras, version)
        print(json.dumps(result))
        return
    with tempfile.TemporaryDirectory(prefix="tts-bench-") as tmp:
        folder = args.models or Path(tmp)
        for version in args.workloads:
            build_models(folder, version)
        results = []
        for version, n, precision in (
            (v, n, p) for v in args.workloads for n in args.threads for p in args.precisions
        ):
            env = {**os.environ, "OMP_NUM_THREADS": str(n), "MKL_NUM_THREADS": str(n)}
            cmd = [
                sys.executable,
                "-m",
                "bench.tts_cpu",
                "--worker",
                str(n),
                precision,
                "--models",
                str(folder),
            ]
            cmd += ["--runs", str(args.runs), "--long-runs", str(args.long_runs), "--workloads", version]
            cmd += ["--extras"] if n == args.threads[0] else []
            proc = subprocess.run(cmd, env=env, cwd=REPO_ROOT, capture_output=True, text=True)
            if proc.returncode != 0:
                raise SystemExit(f"worker {n} threads {precision} failed:\n{proc.stderr[-3000:]}")
            results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    print(
        json.dumps(
            {
                "workloads": [WORKLOADS[v] for v in args.workloads],
                "bench": "tts_cpu",
                "models": "gpt + sovits (v2 / v2ProPlus + ERes2NetV2 / v4 CFM + HiFi-GAN vocoder) + hubert-base, full size, "
                "random weights (seed 1234), CPU",
                "load_average_1min_at_end": round(os.getloadavg()[0], 2),
                "results": results,
            }
        )
    )


if __name__ == "__main__":
    main()
