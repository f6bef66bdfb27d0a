"""Long-form benchmark: a text of ``--minutes`` of speech read as a long-form job on the standard workload's models.

The models are those of workload ``gsv-v2-cpu-anchor/1`` (shared/bench/WORKLOAD.md: full-size v2
GPT, SoVITS and HuBERT-base, random weights, seed 1234, float32, CPU), written once with
:func:`bench.tts_cpu.build_models` and loaded through ``TTSPipeline.load``; the reference is the
workload's 5 s analytic clip. The text is English, one paragraph per 10 s of speech (two sentences
of deterministic words, seed 1234), and the GPT stops each paragraph at the workload's 250 tokens
(10 s) at the latest, so the audio is about ``--minutes`` long whatever the random weights say.

Each length runs in a fresh process (``OMP_NUM_THREADS`` = ``--threads``): a whole
:class:`~app.infer.longform.LongformJob` (every line synthesised, takes written, the whole audio,
per-line files, SRT/VTT and timestamps assembled). Reported per length: wall time, seconds of audio,
real-time factor (wall / audio), peak RSS, RSS once the models are loaded and at the end; and ``scaling``: the RTF of each length over the RTF of
the shortest (1.0 = linear). Prints one JSON line.

    python -m bench.longform --minutes 1 2 [--threads 2] [--models /tmp/longform-bench-models]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.tts_cpu import NEW_TOKENS, SEED, WORKLOAD, build_models, sovits_file

REPO_ROOT = Path(__file__).resolve().parent.parent
# Seconds of speech per paragraph: the workload's 250 tokens at 25 tokens/s.
PARAGRAPH_S = NEW_TOKENS / 25
WORDS = (
    "morning",
    "river",
    "garden",
    "window",
    "quiet",
    "story",
    "letter",
    "music",
    "market",
    "winter",
    "summer",
    "bridge",
    "mountain",
    "forest",
    "village",
    "journey",
    "candle",
    "kitchen",
    "answer",
    "evening",
    "harbor",
    "lantern",
    "meadow",
    "orchard",
    "painter",
    "sailor",
    "station",
    "thunder",
    "valley",
    "whisper",
    "yellow",
)


def book_text(minutes: float) -> str:
    """Paragraphs of two sentences (~28 words, ~10 s of speech each) for ``minutes`` of speech."""
    rng = np.random.default_rng(SEED)
    paragraphs = []
    for _ in range(max(1, round(minutes * 60 / PARAGRAPH_S))):
        sentences = []
        for _ in range(2):
            words = [WORDS[i] for i in rng.integers(0, len(WORDS), 14)]
            sentences.append(" ".join(words).capitalize() + ".")
        paragraphs.append(" ".join(sentences))
    return "\n\n".join(paragraphs)


def worker(models: Path, minutes: float, threads: int) -> dict:
    """One long-form job of ``minutes`` in this fresh process."""
    import soundfile as sf
    import torch

    from app.infer import PipelineSpec, TTSPipeline, TTSRequest
    from app.infer.longform import JobOptions, JobState, LineState, LongformJob, Voice, parse_source
    from bench.sovits_cpu import workload_inputs

    torch.set_num_threads(threads)
    work = Path(tempfile.mkdtemp(prefix="longform-bench-"))
    reference = work / "reference.wav"
    sf.write(reference, workload_inputs()["wav32"], 32000)
    spec = PipelineSpec(
        models / "gpt.ckpt", sovits_file(models, "v2"), models / "chinese-hubert-base", models / "none"
    )
    pipeline = TTSPipeline.load(spec)
    pipeline.max_new_tokens = NEW_TOKENS  # at most 10 s per paragraph (random weights rarely stop)
    loaded_mb = _rss_mb()
    request = TTSRequest(
        text=".", reference=str(reference), text_language="en",
        prompt_text="This is the voice of the reference clip.", prompt_language="en",
    )  # fmt: skip
    script = parse_source(book_text(minutes), "text")
    state = JobState(
        "text",
        JobOptions(title="book"),
        (Voice("", spec, request),),
        tuple(LineState(x) for x in script.lines),
    )
    job = LongformJob.create(work / "job", state)
    start = time.perf_counter()
    result = job.run(lambda _, req: pipeline.stream(req, token_chunks=False))
    wall = time.perf_counter() - start
    return {
        "minutes_asked": minutes,
        "lines": len(script.lines),
        "audio_s": round(result.duration, 2),
        "wall_s": round(wall, 2),
        "rtf": round(wall / result.duration, 4),
        "cues": len(result.cues),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "loaded_rss_mb": loaded_mb,
        "end_rss_mb": _rss_mb(),
    }


def _rss_mb() -> float:
    """Resident memory now (Linux /proc; 0 elsewhere), MB."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except OSError:
        return 0.0
    return round(pages * os.sysconf("SC_PAGE_SIZE") / 2**20, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--minutes", type=float, nargs="+", default=[10.0], help="lengths of text, minutes of speech"
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--models", type=Path, default=Path(tempfile.gettempdir()) / "longform-bench-models")
    parser.add_argument("--worker", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker is not None:
        print(json.dumps(worker(args.models, args.worker, args.threads)))
        return
    args.models.mkdir(parents=True, exist_ok=True)
    build_models(args.models)
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads)}
    runs = []
    for minutes in args.minutes:
        cmd = [sys.executable, "-m", "bench.longform", "--worker", str(minutes), "--threads", str(args.threads),
               "--models", str(args.models)]  # fmt: skip
        out = subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True, check=True)
        runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
    base = runs[0]["rtf"]
    print(
        json.dumps(
            {
                "workload": WORKLOAD,
                "bench": "longform",
                "threads": args.threads,
                "runs": runs,
                "scaling": [round(r["rtf"] / base, 3) for r in runs],
            }
        )
    )


if __name__ == "__main__":
    main()
