"""Time to first audio of OpenAI's ``POST /v1/audio/speech`` with ``stream: true``, per format.

    python -m bench.api_first_audio [--formats wav mp3 opus] [--runs 3] [--threads 2] [--models DIR]

The standard workload's models (``/work/shared/bench/WORKLOAD.md``: full-size v2 GPT, SoVITS and
HuBERT-base, random weights, seed 1234, float32, CPU; built by :func:`bench.tts_cpu.build_models`)
in a data root of their own, and its 5 s reference clip (32 kHz) saved as a preset. The GPT file
says ``max_sec: 10``, so a segment stops after upstream's 25 x 10 + 1 tokens: about the workload's
250 tokens (10 s) even though random weights never choose EOS. The server is
``python -m app.api --no-ui`` in a fresh process with ``OMP_NUM_THREADS=--threads``.

Per format, after one warm-up request (loads the models), ``--runs`` requests of one English
sentence (one segment), each read to its end:

- ``first_byte_s``: request sent -> first body bytes;
- ``first_audio_s``: -> the first bytes that decode to samples (a container header alone is not audio);
- with ``--whole``, ``total_s`` and ``audio_s``: the whole answer and the seconds of audio in it;
  without it the client leaves after the first audio and waits for the queue to empty (``/ready``).

Prints one JSON line: medians and every run. The WebSocket path (``/ws/tts``) is timed by
``bench/ws_first_audio.py``.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import av
import httpx
import soundfile as sf

from bench.api_load import start_api_server
from bench.sovits_cpu import workload_inputs
from bench.tts_cpu import SEED, WORKLOAD, build_models, sovits_file

TEXT = "The quick brown fox jumps over the lazy dog beside the quiet river this morning."
PROMPT_TEXT = "This is the reference clip of the benchmark voice."
VOICE = "bench"
MAX_SEC = 10  # the GPT file's max_sec: 251 tokens per segment, the workload's 10 s
FORMATS = ("wav", "mp3", "opus")


def build_home(home: Path, models: Path) -> None:
    """A data root of the workload's models (hard links, no copies) and the reference clip."""
    import torch

    from app.models.gpt.config import GPTConfig
    from app.models.gpt.model import GPT
    from app.models.upstream.gpt import default_config, save_gpt

    build_models(models, "v2")
    pretrained = home / "pretrained_models" / "chinese-hubert-base"
    pretrained.mkdir(parents=True, exist_ok=True)
    for item in (models / "chinese-hubert-base").iterdir():
        _link(item, pretrained / item.name)
    gpt = models / f"gpt-max{MAX_SEC}s.ckpt"
    if not gpt.is_file():
        torch.manual_seed(SEED)  # the same weights as build_models' gpt.ckpt
        model = GPT(GPTConfig()).eval()
        config = default_config(model.config)
        config["data"]["max_sec"] = MAX_SEC
        save_gpt(model, gpt, epoch=1, config=config)
    (home / "GPT_weights").mkdir(exist_ok=True)
    (home / "SoVITS_weights").mkdir(exist_ok=True)
    _link(gpt, home / "GPT_weights" / "bench-e1.ckpt")
    _link(sovits_file(models, "v2"), home / "SoVITS_weights" / "bench_e1_s1.pth")
    sf.write(home / "ref.wav", workload_inputs()["wav32"], 32000)


def _link(source: Path, target: Path) -> None:
    if not target.exists():
        try:
            os.link(source, target)
        except OSError:  # another file system: copy
            target.write_bytes(source.read_bytes())


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def decoded_samples(data: bytes, fmt: str) -> int:
    """Samples the bytes received so far decode to (0 while they hold only a header)."""
    if fmt in ("pcm", "wav"):
        return max(0, len(data) - (44 if fmt == "wav" else 0)) // 2
    try:
        with av.open(io.BytesIO(data), "r") as container:
            return sum(f.samples for f in container.decode(container.streams.audio[0]))
    except (av.error.FFmpegError, IndexError, EOFError):
        return 0


def _wait_idle(http: httpx.Client, url: str, timeout: float = 300.0) -> None:
    """Until the device queue is empty (the abandoned synthesis has stopped)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if http.get(f"{url}/ready").json().get("queue", {}).get("pending", 0) == 0:
            return
        time.sleep(0.1)
    raise RuntimeError("the server stayed busy after the client left")


def first_audio_http(http: httpx.Client, url: str, fmt: str, whole: bool = False) -> dict[str, float]:
    """One streamed request: seconds to the first byte and the first audio; with ``whole`` it is
    read to its end (``total_s``, ``audio_s``), else left there (``total_s``: until it was left)."""
    body = {"model": "tts-1", "voice": VOICE, "input": TEXT, "response_format": fmt, "stream": True}
    received = b""
    first_byte = first_audio = None
    t0 = time.perf_counter()
    with http.stream("POST", f"{url}/v1/audio/speech", json=body) as response:
        if response.status_code != 200:
            raise RuntimeError(f"{fmt}: HTTP {response.status_code}: {response.read()[:300]!r}")
        rate = int(response.headers["x-sample-rate"])
        for part in response.iter_raw():
            now = time.perf_counter() - t0
            received += part
            if first_byte is None and part:
                first_byte = now
            if first_audio is None and decoded_samples(received, fmt) > 0:
                first_audio = now
                if not whole:
                    break  # closing the connection stops the synthesis at its next chunk
    total = time.perf_counter() - t0
    if not whole:
        _wait_idle(http, url)
    if first_byte is None or first_audio is None:
        raise RuntimeError(f"{fmt}: no audio in the answer")
    samples = decoded_samples(received, fmt)
    return {
        "first_byte_s": first_byte,
        "first_audio_s": first_audio,
        "total_s": total,
        "audio_s": samples / rate,
    }


def _summary(runs: list[dict[str, float]]) -> dict:
    keys = runs[0].keys()
    return {
        **{f"median_{k}": round(statistics.median(r[k] for r in runs), 3) for k in keys},
        "runs": [{k: round(v, 3) for k, v in r.items()} for r in runs],
    }


def _save_preset(http: httpx.Client, url: str, home: Path) -> None:
    fields = {
        "name": VOICE,
        "prompt_text": PROMPT_TEXT,
        "prompt_lang": "en",
        "text_lang": "en",
        "seed": str(SEED),
    }
    files = {"ref_audio": ("ref.wav", (home / "ref.wav").read_bytes(), "audio/wav")}
    response = http.post(f"{url}/presets", data={**fields, "overwrite": "true"}, files=files)
    if response.status_code != 201:
        raise RuntimeError(f"preset: HTTP {response.status_code}: {response.text[:300]}")


def run(home: Path, formats: list[str], runs: int, threads: int, whole: bool) -> dict:
    env = {"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads), "STUDIO_QUEUE_LIMIT": "2"}
    results: dict = {}
    with start_api_server(home, env) as server, httpx.Client(timeout=600) as http:
        _save_preset(http, server.url, home)
        first_audio_http(http, server.url, formats[0])  # warm-up: loads the models
        for fmt in formats:
            results[fmt] = _summary([first_audio_http(http, server.url, fmt, whole) for _ in range(runs)])
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--formats", nargs="+", default=list(FORMATS))
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--models", type=Path, help="folder of models built before (default: a temp dir)")
    parser.add_argument("--whole", action="store_true", help="read every answer to its end (slow)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="api_first_audio_") as tmp:
        models = args.models or Path(tmp) / "models"
        models.mkdir(parents=True, exist_ok=True)
        home = Path(tmp) / "home"
        build_home(home, models)
        results = run(home, args.formats, args.runs, args.threads, args.whole)
    print(
        json.dumps(
            {
                "bench": "api_first_audio",
                "workload": f"{WORKLOAD} models; /v1/audio/speech stream:true, one English sentence",
                "machine": cpu_name(),
                "cpus": os.cpu_count(),
                "threads": args.threads,
                "text_chars": len(TEXT),
                "results": results,
            }
        )
    )


if __name__ == "__main__":
    main()
