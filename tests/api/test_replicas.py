"""Replicas on one data folder: real ``python -m app.api`` processes sharing ``STUDIO_HOME``.

What one replica writes (a preset, the current model) the other serves; writers racing through
both never leave half a preset or half a choice file; a replica killed with SIGKILL while it
writes loses nothing it had acknowledged.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import threading
import time
from pathlib import Path

import httpx
import pytest

from app import config_io
from app.services.presets import PRESET_FILE, VoicePreset
from bench.api_load import start_api_server, tiny_home
from tests.api.conftest import PROMPT, TEXT, read_wav
from tests.infer.tiny import write_gpt_file

pytestmark = pytest.mark.slow

ENV = {"OMP_NUM_THREADS": "1", "STUDIO_API_KEY": "", "STUDIO_QUEUE_LIMIT": "8"}
RACE_SECONDS = 4.0


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tiny_home(tmp_path_factory.mktemp("shared_home"))
    write_gpt_file(folder / "GPT_weights" / "second-e5.ckpt", seed=5)
    return folder


@pytest.fixture(scope="module")
def replicas(home: Path):
    with start_api_server(home, ENV) as one, start_api_server(home, ENV) as two:
        yield one.url, two.url
        assert one.process.poll() is None and two.process.poll() is None


def post_preset(url: str, home: Path, name: str, prompt: str, overwrite: bool = False) -> httpx.Response:
    fields = {"name": name, "prompt_text": prompt, "prompt_lang": "zh", "text_lang": "zh"}
    if overwrite:
        fields["overwrite"] = "true"
    files = {"ref_audio": ("ref.wav", (home / "ref.wav").read_bytes(), "audio/wav")}
    return httpx.post(f"{url}/presets", data=fields, files=files, timeout=60)


def assert_whole_preset(home: Path, name: str) -> VoicePreset:
    """The preset's folder holds a complete preset.json and the whole clip."""
    folder = home / "presets" / name
    preset = config_io.load(VoicePreset, folder / PRESET_FILE)
    assert (folder / preset.reference).read_bytes() == (home / "ref.wav").read_bytes()
    return preset


def test_what_one_replica_writes_the_other_serves(replicas, home) -> None:
    one, two = replicas
    assert post_preset(one, home, "shared", PROMPT).status_code == 201
    seen = httpx.get(f"{two}/presets/shared", timeout=30)
    assert seen.status_code == 200 and seen.json()["prompt_text"] == PROMPT
    speech = httpx.post(
        f"{two}/v1/audio/speech",
        json={"model": "tts-1", "voice": "shared", "input": TEXT, "response_format": "wav"},
        timeout=120,
    )
    assert speech.status_code == 200, speech.text
    assert len(read_wav(speech.content)[0]) > 0
    # The current model, chosen through one, is the other's too.
    chosen = httpx.get(f"{one}/set_gpt_weights", params={"weights_path": "GPT_weights/second-e5.ckpt"})
    assert chosen.status_code == 200, chosen.text
    assert httpx.get(f"{two}/weights").json()["current"]["gpt_weights"] == "GPT_weights/second-e5.ckpt"
    assert httpx.get(f"{two}/ready").json()["gpt_weights"] == "GPT_weights/second-e5.ckpt"
    assert httpx.delete(f"{two}/presets/shared").status_code == 204
    assert httpx.get(f"{one}/presets/shared").status_code == 404


def run_for(seconds: float, work) -> list[str]:
    """Run ``work(stop_event)`` on threads until ``seconds`` pass; the problems they report."""
    problems: list[str] = []
    stop = threading.Event()
    threads = [threading.Thread(target=work, args=(stop, problems, i)) for i in range(8)]
    for thread in threads:
        thread.start()
    time.sleep(seconds)
    stop.set()
    for thread in threads:
        thread.join(60)
    return problems


def test_racing_writers_never_leave_half_a_preset_or_choice(replicas, home) -> None:
    urls = list(replicas)
    assert post_preset(urls[0], home, "race", "start").status_code == 201
    models = ("GPT_weights/second-e5.ckpt", f"GPT_weights/{sorted(os.listdir(home / 'GPT_weights'))[0]}")
    written: set[str] = {"start"}
    assert httpx.get(f"{urls[1]}/set_gpt_weights", params={"weights_path": models[0]}).status_code == 200

    def work(stop: threading.Event, problems: list[str], index: int) -> None:
        url = urls[index % 2]
        for n in itertools.count():
            if stop.is_set():
                return
            if index < 4:  # writers: overwrite the preset, switch the current GPT
                prompt = f"writer{index}-{n}"
                written.add(prompt)
                answer = post_preset(url, home, "race", prompt, overwrite=True)
                if answer.status_code != 201:
                    problems.append(f"overwrite: {answer.status_code} {answer.text[:200]}")
                choice = httpx.get(f"{url}/set_gpt_weights", params={"weights_path": models[n % 2]})
                if choice.status_code != 200:
                    problems.append(f"set_gpt_weights: {choice.status_code} {choice.text[:200]}")
            else:  # readers: whatever they see is whole
                got = httpx.get(f"{url}/presets/race", timeout=30)
                if got.status_code == 200 and got.json()["prompt_text"] not in written:
                    problems.append(f"read a preset nobody wrote: {got.text[:200]}")
                elif got.status_code not in (200, 404):  # 404: between an overwrite's two renames
                    problems.append(f"read: {got.status_code} {got.text[:200]}")
                current = httpx.get(f"{url}/weights", timeout=30).json()["current"]["gpt_weights"]
                if current not in models:
                    problems.append(f"current GPT {current!r}")

    assert run_for(RACE_SECONDS, work) == []
    assert assert_whole_preset(home, "race").prompt_text in written
    json.loads((home / "output" / "api" / "models.json").read_text())
    assert not [p.name for p in (home / "presets").iterdir() if p.name.startswith(".")], "leftovers"


def test_a_replica_killed_mid_write_loses_nothing_it_acknowledged(replicas, home) -> None:
    survivor = replicas[0]
    acknowledged: list[str] = []
    with start_api_server(home, ENV) as victim:

        def work(stop: threading.Event, problems: list[str], index: int) -> None:
            for n in itertools.count():
                if stop.is_set():
                    return
                name = f"kill-{index}-{n}"
                try:
                    answer = post_preset(victim.url, home, name, f"saved {name}")
                except httpx.TransportError:
                    return  # the server is gone
                if answer.status_code == 201:
                    acknowledged.append(name)
                else:
                    problems.append(f"{name}: {answer.status_code}")

        def kill_soon() -> None:
            while len(acknowledged) < 12:
                time.sleep(0.01)
            os.kill(victim.process.pid, signal.SIGKILL)

        killer = threading.Thread(target=kill_soon)
        killer.start()
        assert run_for(10.0, work) == []
        killer.join(30)
        assert victim.process.wait(30) == -signal.SIGKILL
    assert len(acknowledged) >= 12
    listed = {p["name"] for p in httpx.get(f"{survivor}/presets", timeout=30).json()["presets"]}
    assert set(acknowledged) <= listed
    for name in acknowledged:
        assert httpx.get(f"{survivor}/presets/{name}").json()["prompt_text"] == f"saved {name}"
        assert_whole_preset(home, name)
    # Whatever the kill interrupted is either whole or invisible: a hidden temporary folder at most.
    for name in listed - {"race"}:
        assert_whole_preset(home, name)
