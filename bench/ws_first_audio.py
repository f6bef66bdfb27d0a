"""First-audio latency of ``/ws/tts`` (LLM voice chat) on the standard workload's models.

    python -m bench.ws_first_audio [--threads 2] [--precision fp32] [--modes 3 2 1] [--runs 3]

Builds a data root (``--home``, default a temporary folder; files already there are kept) with
the models of workload ``gsv-v2-cpu-anchor/1`` (shared/bench/WORKLOAD.md): full-size v2 GPT,
SoVITS and HuBERT-base with random weights (seed 1234), the GPT file's ``max_sec`` 10 so a segment
stops at 251 tokens (10 s, as the workload's 250), and the workload's analytic 5 s reference at
32 kHz. Starts ``python -m app.api --no-ui`` on loopback with ``--threads`` OMP/MKL threads and
talks to it as an LLM client would: a ``start`` frame, then an English reply (no BERT: its
features are zeros, as in the workload) sent a word at a time.

Measured per ``streaming_mode`` (3: small first chunk, 2: growing chunks, 1: whole sentences):
``first_audio_s``, from the fragment that completes the first sentence (the end of a sentence is
known when the next word arrives) to the first binary audio frame, median of ``--runs`` sessions
after a warm-up session (the reference's features are cached by then, as for every sentence of a
chat after its first); ``cold_first_audio_s`` is the server's first session's (model load and
reference encoding included). Each session cancels after its first audio. Prints one JSON line.
The first run on a machine also builds the GPT's native kernels (minutes), before any figure.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench.api_load import start_api_server

WORKLOAD = "gsv-v2-cpu-anchor/1"
SEED = 1234
MAX_SEC = 10  # 25 tokens/s * 10 s + 1: the GPT stops where the workload's 250 tokens end
GPT_FILE = "GPT_weights/workload-e1.ckpt"
SOVITS_FILE = "SoVITS_weights/workload_e1_s1.pth"
PROMPT_TEXT = "The weather is lovely today."
REPLY = (
    "Welcome back to the show, today we talk about the weather. "
    "It was a sunny morning and the afternoon will be warm. Enjoy the rest of your day."
)


def build_home(home: Path) -> Path:
    """The workload's models and reference as a data root (files already there are kept)."""
    import soundfile as sf
    import torch
    from transformers import HubertConfig, HubertModel

    from app.models.gpt.config import GPTConfig
    from app.models.gpt.model import GPT
    from app.models.sovits.config import preset
    from app.models.sovits.model import SoVITS
    from app.models.upstream.gpt import default_config, save_gpt
    from app.models.upstream.sovits import write_sovits
    from bench.sovits_cpu import workload_inputs

    hubert = home / "pretrained_models" / "chinese-hubert-base"
    if not hubert.is_dir():
        torch.manual_seed(SEED)
        HubertModel(HubertConfig()).eval().save_pretrained(hubert)
    if not (home / GPT_FILE).is_file():
        torch.manual_seed(SEED)
        gpt = GPT(GPTConfig()).eval()
        config = default_config(gpt.config)
        config["data"]["max_sec"] = MAX_SEC
        (home / GPT_FILE).parent.mkdir(parents=True, exist_ok=True)
        save_gpt(gpt, home / GPT_FILE, epoch=1, config=config)
    if not (home / SOVITS_FILE).is_file():
        torch.manual_seed(SEED)
        sovits = SoVITS(preset("v2"))
        with torch.no_grad():  # the codebook is zero until trained (as bench.tts_cpu)
            sovits.quantizer.vq.layers[0]._codebook.embed.normal_()
        (home / SOVITS_FILE).parent.mkdir(parents=True, exist_ok=True)
        write_sovits(home / SOVITS_FILE, sovits.state_dict(), sovits.config, epoch=1, step=1)
    if not (home / "ref.wav").is_file():
        sf.write(home / "ref.wav", workload_inputs()["wav32"], 32000)
    return home


def session(url: str, mode: int) -> dict:
    """One chat turn: the reply a word at a time; seconds to the first audio; then cancel and end."""
    from websockets.sync.client import connect

    start = {
        "type": "start", "ref_audio_path": "ref.wav", "prompt_text": PROMPT_TEXT, "prompt_lang": "en",
        "text_lang": "en", "gpt_weights": GPT_FILE, "sovits_weights": SOVITS_FILE, "seed": SEED,
        "streaming_mode": mode,
    }  # fmt: skip
    words = REPLY.split(" ")
    first_end = next(i for i, w in enumerate(words) if w.endswith("."))
    with connect(url, max_size=None, open_timeout=60) as ws:
        opened = time.perf_counter()
        ws.send(json.dumps(start))
        ready = json.loads(ws.recv(timeout=600))
        assert ready == {"type": "ready"}, ready
        for i, word in enumerate(words):
            ws.send(json.dumps({"type": "text", "text": word if i == 0 else " " + word}))
            if i == first_end + 1:
                complete = time.perf_counter()  # this word decides the first sentence's end
        sentence = None
        while True:
            message = ws.recv(timeout=600)
            if isinstance(message, bytes):
                first = time.perf_counter()
                break
            frame = json.loads(message)
            assert frame["type"] not in ("error", "done"), frame
            sentence = frame.get("text", sentence) if frame["type"] == "sentence" else sentence
        ws.send(json.dumps({"type": "cancel"}))
        ws.send(json.dumps({"type": "end"}))
        while not (isinstance(m := ws.recv(timeout=600), str) and json.loads(m)["type"] == "done"):
            pass
    return {"first_audio_s": first - complete, "from_start_s": first - opened, "sentence": sentence}


def run(home: Path, threads: int, precision: str, modes: list[int], runs: int) -> dict:
    env = {"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    args = ("--no-ui", "--precision", precision, "--log-level", "warning")
    out: dict = {"workload": WORKLOAD, "endpoint": "/ws/tts", "threads": threads, "precision": precision}
    with start_api_server(home, env=env, args=args) as server:
        url = server.url.replace("http://", "ws://") + "/ws/tts"
        cold = session(url, modes[0])  # the server's first: model load and reference encoding included
        out["cold_first_audio_s"] = round(cold["first_audio_s"], 3)
        out["first_sentence"] = cold["sentence"]
        for mode in modes:
            session(url, mode)  # warm-up
            firsts = [session(url, mode)["first_audio_s"] for _ in range(runs)]
            out[f"streaming_mode_{mode}"] = {
                "first_audio_s": round(statistics.median(firsts), 3),
                "first_audio_runs_s": [round(f, 3) for f in firsts],
            }
            print(f"streaming_mode {mode}: {statistics.median(firsts):.3f} s", file=sys.stderr)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--home", type=Path, help="data root to build or reuse (default: a temporary folder)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--precision", choices=["fp32", "fast"], default="fp32")
    p.add_argument("--modes", type=int, nargs="+", default=[3, 2, 1], choices=[1, 2, 3])
    p.add_argument("--runs", type=int, default=3)
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="ws_bench_") as tmp:
        home = build_home(args.home or Path(tmp))
        result = run(home, args.threads, args.precision, args.modes, args.runs)
    print(json.dumps(result, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
