"""Long-form jobs over HTTP: submit (subtitles, a two-voice script), follow, fetch results, edit one line."""

from __future__ import annotations

import base64
import io
import re
import shutil
import time

import pytest
import soundfile as sf

from app.infer.longform import parse_source
from app.services.presets import ClipUpload, PresetStore, VoicePreset
from tests.api.conftest import PROMPT


@pytest.fixture
def voices(api_home):
    store = PresetStore(api_home / "presets")
    clip = ClipUpload((api_home / "ref.wav").read_bytes(), "ref.wav")
    store.create(VoicePreset("lf_narrator", "", PROMPT, "zh", "en", pause_seconds=0.2), clip, overwrite=True)
    store.create(VoicePreset("lf_bob", "", "", "auto", "en", speed=1.1), clip, overwrite=True)
    yield
    for name in ("lf_narrator", "lf_bob"):
        store.delete(name)
    shutil.rmtree(api_home / "output" / "longform", ignore_errors=True)


def _wait_done(client, job_id: str, seconds: float = 240.0) -> dict:
    end = time.monotonic() + seconds
    while True:
        job = client.get(f"/longform/jobs/{job_id}").json()
        if not job["running"] and job["state"] != "queued":
            return job
        assert time.monotonic() < end, job
        time.sleep(0.1)


SRT = "1\n00:00:00,200 --> 00:00:02,000\nHello there.\n\n2\n00:00:02,500 --> 00:00:03,000\nToo short for this.\n"


def test_a_subtitle_job_is_dubbed_and_its_results_fetched(client, voices):
    response = client.post(
        "/longform/jobs",
        json={
            "source": SRT, "filename": "film.srt", "voice": "lf_narrator", "title": "film",
            "word_timestamps": True,
        },
    )  # fmt: skip
    assert response.status_code == 202, response.text
    job_id = response.json()["id"]
    job = _wait_done(client, job_id)
    assert job["state"] == "done" and job["done"] == job["total"] == 2, job
    assert sorted(job["results"]) == ["audio", "fit", "srt", "timestamps", "vtt", "words_srt", "words_vtt"]
    srt = client.get(f"/longform/jobs/{job_id}/result/srt")
    cues = parse_source(srt.text, "srt").lines
    assert [c.text for c in cues] == ["Hello there.", "Too short for this."]
    assert cues[0].start == pytest.approx(0.2, abs=1e-3)
    words = parse_source(client.get(f"/longform/jobs/{job_id}/result/words_vtt").text, "vtt").lines
    assert [w.text for w in words] == ["Hello", "there", "Too", "short", "for", "this"]
    assert cues[0].start - 1e-3 <= words[0].start and words[1].end <= cues[0].end + 1e-3
    audio = client.get(f"/longform/jobs/{job_id}/result/audio")
    assert audio.headers["content-type"] == "audio/wav"
    samples, rate = sf.read(io.BytesIO(audio.content), dtype="int16")
    assert len(samples) / rate >= 3.0 - 1e-3
    unfit = client.get(f"/longform/jobs/{job_id}/result/fit").json()["unfit"]
    assert [u["line"] for u in unfit] == [1] and unfit[0]["speed"] == 1.5
    take = client.get(f"/longform/jobs/{job_id}/lines/0/takes/0")
    assert take.status_code == 200 and sf.read(io.BytesIO(take.content))[1] == rate


def test_a_two_voice_script_and_one_line_edited(client, voices):
    script = "narrator|Good morning.\nbob|Hello to you.\n"
    body = {
        "source_base64": base64.b64encode(script.encode()).decode(),
        "kind": "script",
        "voice": "lf_narrator",
        "voices": {"narrator": "lf_narrator", "bob": "lf_bob"},
        "takes": 2,
    }
    job_id = client.post("/longform/jobs", json=body).json()["id"]
    job = _wait_done(client, job_id)
    assert job["state"] == "done" and [len(line["takes"]) for line in job["lines"]] == [2, 2]
    assert [t["speed"] for t in job["lines"][1]["takes"]] == [1.1, 1.1]  # bob's preset speed
    seeds = [t["seed"] for t in job["lines"][0]["takes"]]
    edited = client.post(f"/longform/jobs/{job_id}/lines/1/regenerate", json={"text": "Bye now."}).json()
    assert edited["lines"][1]["text"] == "Bye now." and len(edited["lines"][1]["takes"]) == 2
    assert [t["seed"] for t in edited["lines"][0]["takes"]] == seeds  # the other line is kept
    chosen = client.post(f"/longform/jobs/{job_id}/lines/0/choose", json={"take": 1}).json()
    assert chosen["lines"][0]["chosen"] == 1
    stamps = client.get(f"/longform/jobs/{job_id}/result/timestamps").json()["lines"]
    assert [(s["voice"], s["take"], s["text"]) for s in stamps] == [
        ("narrator", 1, "Good morning."),
        ("bob", 0, "Bye now."),
    ]
    # A finished job neither stops nor resumes; unknown ids and takes are 404.
    assert client.post(f"/longform/jobs/{job_id}/stop").status_code == 409
    assert client.post(f"/longform/jobs/{job_id}/resume").status_code == 409
    assert client.get("/longform/jobs/nope").status_code == 404
    assert client.get(f"/longform/jobs/{job_id}/lines/0/takes/9").status_code == 404
    assert client.post(f"/longform/jobs/{job_id}/lines/0/choose", json={"take": 7}).status_code == 400
    assert job_id in [j["id"] for j in client.get("/longform/jobs").json()["jobs"]]


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"source": "Hi.", "filename": "a.txt", "voice": "nobody"}, 404, "no voice preset named 'nobody'"),
        (
            {"source": "bob|Hi.", "kind": "script", "voice": "lf_narrator"},
            404,
            "voice bob: no voice preset named 'bob'",
        ),
        ({"source": "Hi.", "filename": "a.doc", "voice": "lf_narrator"}, 400, "unknown source type"),
        ({"source": "Hi.", "filename": "a.txt", "voice": "lf_narrator", "dub": True}, 400, "subtitle cues"),
        ({"voice": "lf_narrator"}, 400, "exactly one"),
        ({"source_base64": "@@", "kind": "epub", "voice": "lf_narrator"}, 400, "source:"),
    ],
    ids=["preset", "script-voice", "kind", "dub-text", "no-source", "base64"],
)
def test_bad_jobs_are_refused_with_the_reason(client, voices, body, status, message):
    response = client.post("/longform/jobs", json=body)
    assert response.status_code == status, response.text
    assert re.search(message, response.text), response.text
