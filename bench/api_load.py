"""Load test of the HTTP API on loopback: many concurrent clients against the bounded device queue.

    python -m bench.api_load [--queue-limit 2] [--concurrency 8] [--rounds 1]
    python -m bench.api_load --url http://127.0.0.1:9880 --ref ref.wav --prompt-text "..." [--api-key KEY]

Without ``--url`` it builds a data root of tiny random models in a temporary folder (the test
fixtures of ``tests/infer/tiny.py``) and starts ``python -m app.api --no-ui`` on a free port with
``STUDIO_QUEUE_LIMIT=--queue-limit``; ``--concurrency`` defaults to 4x the queue limit. Every
client sends ``--rounds`` upstream-style ``GET /tts`` requests back to back, all clients released
at once (a client refused with 503 sends its next request at once, without waiting).

A response counts as ``ok`` only when it is a WAV that parses (32 kHz mono 16-bit, finite, not
silent, length within bounds), as ``busy`` only when it is a 503 with a ``Retry-After`` header;
anything else (a 500, a corrupt body, a timeout) is a ``failure``. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf

REPO_ROOT = Path(__file__).resolve().parent.parent
READY_TIMEOUT_S = 180.0
# Bounds of a plausible answer: speech longer than this per text segment means a broken stop.
MIN_AUDIO_S = 0.1
MAX_AUDIO_S_PER_SEGMENT = 40.0
TEXT = "你好，欢迎来到我们的节目。"
PROMPT_TEXT = "你好欢迎"


@dataclass(frozen=True)
class ApiServer:
    """A running ``python -m app.api``."""

    # Base URL without a trailing slash, e.g. "http://127.0.0.1:43123".
    url: str
    # Its STUDIO_HOME.
    home: Path
    # File receiving the server's stdout and stderr.
    log_path: Path
    process: subprocess.Popen

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def start_api_server(
    home: Path, env: Mapping[str, str] | None = None, args: Sequence[str] = ("--no-ui",)
) -> Iterator[ApiServer]:
    """``python -m app.api`` on a free loopback port with ``STUDIO_HOME=home``; stopped on exit."""
    port = free_port()
    log_path = home / f"api-server-{port}.log"
    child_env = {**os.environ, "STUDIO_HOME": str(home), "HF_HUB_OFFLINE": "1", **(env or {})}
    cmd = [sys.executable, "-m", "app.api", "--host", "127.0.0.1", "--port", str(port), *args]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, cwd=REPO_ROOT, env=child_env, stdout=log, stderr=subprocess.STDOUT)
    server = ApiServer(f"http://127.0.0.1:{port}", home, log_path, proc)
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"app.api exited with {proc.returncode} before serving:\n{server.log()}")
            try:
                with urllib.request.urlopen(server.url + "/health", timeout=5) as response:
                    if response.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"app.api did not answer within {READY_TIMEOUT_S:.0f} s:\n{server.log()}")
            time.sleep(0.25)
        yield server
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def tiny_home(folder: Path) -> Path:
    """A data root with tiny random models and a 4 s reference clip ``ref.wav``."""
    from tests.infer.tiny import build_home, voice

    build_home(folder)
    voice(folder / "ref.wav", 4.0, pauses=(2.0,))
    return folder


@dataclass(frozen=True)
class Outcome:
    """One response as the client saw it."""

    # HTTP status (0 when no response arrived).
    status: int
    # Seconds from sending to the whole body received.
    latency: float
    # "ok", "busy" or "failure".
    verdict: str
    # Retry-After of a 503 (None otherwise).
    retry_after: str | None = None
    # Length of the audio of an "ok" response, seconds.
    audio_seconds: float = 0.0
    # Why a response is a failure.
    problem: str = ""


def check_wav(body: bytes, segments: int = 1) -> tuple[float, str]:
    """(seconds, problem) of a WAV body; problem is "" when it is plausible speech."""
    try:
        audio, rate = sf.read(io.BytesIO(body), dtype="int16", always_2d=True)
        info = sf.info(io.BytesIO(body))
    except (sf.LibsndfileError, RuntimeError) as exc:
        return 0.0, f"not a readable WAV ({exc})"
    seconds = len(audio) / rate
    if info.format != "WAV" or info.subtype != "PCM_16" or audio.shape[1] != 1 or rate != 32000:
        return seconds, f"unexpected format {info.format}/{info.subtype}, {audio.shape[1]} ch, {rate} Hz"
    if not MIN_AUDIO_S <= seconds <= MAX_AUDIO_S_PER_SEGMENT * segments:
        return seconds, f"implausible length {seconds:.2f} s"
    if int(np.abs(audio).max()) == 0:
        return seconds, "silent audio"
    return seconds, ""


def one_request(url: str, headers: Mapping[str, str], timeout: float) -> Outcome:
    start = time.perf_counter()
    request = urllib.request.Request(url, headers=dict(headers))
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body = response.read()
            status = response.status
    except urllib.error.HTTPError as exc:
        body = exc.read()
        latency = time.perf_counter() - start
        retry = exc.headers.get("Retry-After")
        if exc.code == 503 and retry and retry.isdigit():
            return Outcome(503, latency, "busy", retry)
        return Outcome(exc.code, latency, "failure", retry, problem=body[:200].decode("utf-8", "replace"))
    except (urllib.error.URLError, ConnectionError, TimeoutError, OSError) as exc:
        return Outcome(0, time.perf_counter() - start, "failure", problem=repr(exc))
    latency = time.perf_counter() - start
    seconds, problem = check_wav(body)
    if status != 200 or problem:
        return Outcome(
            status, latency, "failure", audio_seconds=seconds, problem=problem or f"status {status}"
        )
    return Outcome(status, latency, "ok", audio_seconds=seconds)


def tts_url(base: str, ref: str, prompt_text: str, text: str = TEXT, lang: str = "zh") -> str:
    """An upstream api_v2 README-style query (non-streaming, so the whole WAV can be checked)."""
    query = {
        "text": text,
        "text_lang": lang,
        "ref_audio_path": ref,
        "prompt_lang": lang,
        "prompt_text": prompt_text,
        "text_split_method": "cut5",
        "batch_size": "1",
        "media_type": "wav",
        "streaming_mode": "false",
    }
    return f"{base}/tts?{urllib.parse.urlencode(query)}"


def _stats(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return {
        "min": round(ordered[0], 3),
        "p50": round(statistics.median(ordered), 3),
        "p95": round(p95, 3),
        "max": round(ordered[-1], 3),
    }


@dataclass
class LoadResult:
    outcomes: list[Outcome] = field(default_factory=list)
    wall_s: float = 0.0

    def summary(self) -> dict[str, object]:
        by = {v: [o for o in self.outcomes if o.verdict == v] for v in ("ok", "busy", "failure")}
        return {
            "requests": len(self.outcomes),
            "ok_200": len(by["ok"]),
            "busy_503": len(by["busy"]),
            "failures": len(by["failure"]),
            "latency_ok_s": _stats([o.latency for o in by["ok"]]),
            "latency_503_s": _stats([o.latency for o in by["busy"]]),
            "retry_after_s": sorted({int(o.retry_after) for o in by["busy"] if o.retry_after}),
            "audio_seconds_ok": _stats([o.audio_seconds for o in by["ok"]]),
            "wall_s": round(self.wall_s, 3),
            "problems": [f"{o.status}: {o.problem}" for o in by["failure"][:5]],
        }


def run_load(
    url: str,
    concurrency: int,
    rounds: int = 1,
    headers: Mapping[str, str] | None = None,
    timeout: float = 300.0,
) -> LoadResult:
    """``concurrency`` threads each send ``rounds`` GETs of ``url``, all threads released together."""
    result = LoadResult()
    lock = threading.Lock()
    barrier = threading.Barrier(concurrency)

    def client() -> None:
        barrier.wait()
        for _ in range(rounds):
            outcome = one_request(url, headers or {}, timeout)
            with lock:
                result.outcomes.append(outcome)

    threads = [threading.Thread(target=client, name=f"client-{i}") for i in range(concurrency)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    result.wall_s = time.perf_counter() - start
    return result


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.api_load", description=__doc__.splitlines()[0])
    p.add_argument("--url", help="a running server (default: start one on tiny random models)")
    p.add_argument("--api-key", help="sent as a bearer token")
    p.add_argument("--ref", default="ref.wav", help="ref_audio_path (under the server's data folder)")
    p.add_argument("--prompt-text", default=PROMPT_TEXT)
    p.add_argument("--text", default=TEXT)
    p.add_argument("--lang", default="zh")
    p.add_argument("--queue-limit", type=int, default=2, help="STUDIO_QUEUE_LIMIT of the started server")
    p.add_argument("--concurrency", type=int, help="concurrent clients (default 4x the queue limit)")
    p.add_argument(
        "--rounds", type=int, default=2, help="requests per client (a refused client retries at once)"
    )
    p.add_argument(
        "--threads", type=int, default=1, help="torch threads of the started server (OMP_NUM_THREADS)"
    )
    args = p.parse_args(argv)
    concurrency = args.concurrency or 4 * args.queue_limit
    headers = {"Authorization": f"Bearer {args.api_key}"} if args.api_key else {}
    figures: dict[str, object] = {"bench": "api_load", "concurrency": concurrency, "rounds": args.rounds}
    if args.url:
        load = run_load(tts_url(args.url.rstrip("/"), args.ref, args.prompt_text, args.text, args.lang),
                        concurrency, args.rounds, headers)  # fmt: skip
        figures.update(url=args.url, **load.summary())
    else:
        with tempfile.TemporaryDirectory(prefix="api-load-") as tmp:
            home = tiny_home(Path(tmp))
            env = {"STUDIO_QUEUE_LIMIT": str(args.queue_limit), "OMP_NUM_THREADS": str(args.threads)}
            with start_api_server(home, env) as server:
                # One request first so model loading is not part of the figures.
                warm = one_request(
                    tts_url(server.url, "ref.wav", args.prompt_text, args.text, args.lang), {}, 300
                )
                load = run_load(tts_url(server.url, "ref.wav", args.prompt_text, args.text, args.lang),
                                concurrency, args.rounds)  # fmt: skip
                alive = server.process.poll() is None
            figures.update(
                queue_limit=args.queue_limit,
                threads=args.threads,
                models="tiny random (tests/infer/tiny.py)",
                warmup_s=round(warm.latency, 3),
                server_alive_after=alive,
                **load.summary(),
            )
    print(json.dumps(figures))
    return 0 if figures["failures"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
