"""This project as a backend of the side-by-side harness ``shared/bench/upstream_gsv_bench.py``.

The harness times upstream GPT-SoVITS on workload ``gsv-v2-cpu-anchor/1`` and, through
``--backend bench.gsv_backend:StudioBackend``, this project on the same inputs, stage by stage, in
fresh child processes with the same thread settings and clean-run rules. This class only maps its
protocol (``set_num_threads``, ``prepare``, ``setup``, ``reset``, ``hubert_vq``, ``ar_decode``,
``sovits_decode``, ``info``) onto :class:`app.infer.TTSPipeline`, loaded from model files written
by ``bench.tts_cpu.build_models`` (full-size v2, random weights, seed 1234) like any user model.

    cd <this repo> && PYTHONPATH=. UPSTREAM_GSV=<upstream clone> .venv/bin/python \\
        ../shared/bench/upstream_gsv_bench.py --backend bench.gsv_backend:StudioBackend \\
        --backend-args '{"precision": "fast"}' --threads 2,1 --runs 3

``--backend-args``: ``precision`` ("fp32", upstream's numbers, or "fast") and ``models`` (a folder
of models built before; default ``<tmp>/studio-gsv-models``, built by the harness's prepare step).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from bench.tts_cpu import build_models, sovits_file

NEW_TOKENS = 250
DEFAULT_MODELS = Path(tempfile.gettempdir()) / "studio-gsv-models"


class StudioBackend:
    """One :class:`TTSPipeline` of full-size v2 models timed stage by stage by the harness."""

    def __init__(self, precision: str = "fp32", models: str | None = None) -> None:
        if precision not in ("fp32", "fast"):
            raise ValueError(f"precision must be fp32 or fast, not {precision!r}")
        self.precision = precision
        self.models = Path(models) if models else DEFAULT_MODELS
        self.pipeline: Any = None
        self.seed = 1234

    def set_num_threads(self, n: int) -> None:
        import torch

        torch.set_num_threads(n)

    def prepare(self, workload: object) -> None:
        """Write the model files once (not timed; files already there are kept)."""
        self.models.mkdir(parents=True, exist_ok=True)
        build_models(self.models, "v2")

    def setup(self, workload: object, inputs: dict) -> None:
        import torch

        from app.infer import PipelineSpec, TTSPipeline

        spec = PipelineSpec(
            self.models / "gpt.ckpt",
            sovits_file(self.models, "v2"),
            self.models / "chinese-hubert-base",
            self.models / "none",  # BERT: the workload's features are zeros (non-Chinese text)
            "cpu",
            self.precision,
        )
        self.pipeline = TTSPipeline.load(spec)
        self.phones = tuple(int(x) for x in inputs["ref_phones"]) + tuple(
            int(x) for x in inputs["target_phones"]
        )
        self.target = tuple(int(x) for x in inputs["target_phones"])
        self.bert = torch.from_numpy(np.concatenate([inputs["bert_ref"], inputs["bert_target"]], axis=1))

    def reset(self, seed: int) -> None:
        self.seed = int(seed)

    def hubert_vq(self, inputs: dict) -> Any:
        """Stage 1: the 16 kHz reference (the pipeline adds upstream's pause) -> 139 prompt tokens."""
        return self.pipeline.prompt_tokens(inputs["ref_wav_16k"])

    def ar_decode(self, inputs: dict, prompt: Any) -> Any:
        """Stage 2: prefill + exactly 250 tokens (EOS off), upstream's sampling settings."""
        from app.models.gpt.sampling import SamplingOptions

        options = SamplingOptions(
            top_k=15, top_p=1.0, temperature=1.0, repetition_penalty=1.35, max_new_tokens=NEW_TOKENS,
            suppress_eos=True, seed=self.seed,
        )  # fmt: skip
        (chunk,) = list(self.pipeline.generate_tokens([self.phones], [self.bert], prompt, options))
        return chunk.tokens[0]

    def sovits_decode(self, inputs: dict, tokens: Any) -> np.ndarray:
        """Stage 3: the 32 kHz reference's timbre, then the 250 tokens with the target phones."""
        import torch

        p = self.pipeline
        timbre = p.timbre([p.spectrogram(inputs["ref_wav_32k"])])
        generator = torch.Generator().manual_seed(self.seed)
        return p.decode_tokens(tokens, self.target, timbre, noise_scale=0.5, generator=generator)

    def info(self) -> dict:
        import torch

        p = self.pipeline
        return {
            "implementation": "SoVITS Studio (this repository)",
            "precision": self.precision,
            "plan": {
                "gpt": p.precision.gpt,
                "sovits_decoder": p.precision.decoder_label,
            },
            "torch": torch.__version__,
        }
