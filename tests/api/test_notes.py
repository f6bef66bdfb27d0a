"""What the pipeline notes reaches API clients: the X-Studio-Notes header on audio (whole or
streamed; /tts and OpenAI speech), ``notes`` in JSON error bodies; references without speech are
refused naming the parameter; messages name files relative to the data folder."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from app.api.errors import relative_paths
from tests.api.conftest import PROMPT, assert_error, assert_speech, read_wav, tts_query

MIXED_TEXT = "你好，Привет。"  # the Cyrillic word is skipped, and noted


@pytest.fixture(scope="module")
def odd_refs(api_home: Path) -> dict[str, Path]:
    """A clipped copy of ref.wav, a constant (DC only) clip and a pure tone, under odd/."""
    folder = api_home / "odd"
    folder.mkdir(exist_ok=True)
    clean, sr = sf.read(api_home / "ref.wav", dtype="float32")
    t = np.arange(4 * sr) / sr
    refs = {
        "clipped": (np.clip(clean * 8, -1, 1), "PCM_16"),
        "constant": (np.full(4 * sr, 0.4), "FLOAT"),
        "tone": (0.5 * np.sin(2 * np.pi * 440 * t), "PCM_16"),
    }
    for name, (wav, subtype) in refs.items():
        sf.write(folder / f"{name}.wav", wav.astype(np.float32), sr, subtype=subtype)
    return {name: folder / f"{name}.wav" for name in refs}


def notes_of(response) -> list[str]:
    raw = dict(response.headers.raw)[b"x-studio-notes"]
    raw.decode("ascii")  # ASCII on the wire: non-ASCII travels as JSON escapes
    notes = json.loads(raw)
    assert isinstance(notes, list) and all(isinstance(n, str) for n in notes)
    return notes


def test_clean_request_has_an_empty_notes_header(client):
    response = client.get("/tts", params=tts_query())
    assert response.status_code == 200, response.text
    assert notes_of(response) == []


@pytest.mark.parametrize("streaming_mode", [0, 1, 2], ids=["whole", "segments", "tokens"])
def test_tts_notes_header_carries_reference_and_text_notes(client, odd_refs, streaming_mode):
    query = tts_query(text=MIXED_TEXT, ref_audio_path="odd/clipped.wav", streaming_mode=streaming_mode)
    response = client.get("/tts", params=query)
    assert response.status_code == 200, response.text
    assert_speech(*read_wav(response.content))
    notes = notes_of(response)
    assert any("is clipped" in n for n in notes), notes
    assert any("Привет" in n for n in notes), notes  # non-ASCII survives the header


def test_openai_speech_notes_header(client, api_home, odd_refs):
    fields = {"name": "loud", "prompt_text": PROMPT, "prompt_lang": "zh", "text_lang": "zh"}
    files = {"ref_audio": ("loud.wav", odd_refs["clipped"].read_bytes(), "audio/wav")}
    assert client.post("/presets", data=fields, files=files).status_code == 201
    try:
        body = {"model": "tts-1", "input": MIXED_TEXT, "voice": "loud", "response_format": "wav"}
        response = client.post("/v1/audio/speech", json=body)
        assert response.status_code == 200, response.text
        notes = notes_of(response)
        assert any("is clipped" in n for n in notes) and any("Привет" in n for n in notes), notes
        streamed = client.post("/v1/audio/speech", json={**body, "stream": True})
        assert streamed.status_code == 200 and notes_of(streamed) == notes
    finally:
        client.delete("/presets/loud")


@pytest.mark.parametrize(("name", "why"), [("constant", "without its DC offset"), ("tone", "pure tone")])
def test_reference_without_speech_is_refused_with_the_notes_so_far(client, api_home, odd_refs, name, why):
    response = client.get("/tts", params=tts_query(text=MIXED_TEXT, ref_audio_path=f"odd/{name}.wav"))
    message = assert_error(response, 400, "ref_audio_path")
    assert f"odd/{name}.wav holds no speech" in message and why in message
    assert str(api_home) not in response.text and str(api_home.resolve()) not in response.text
    body = response.json()
    assert any("Привет" in n for n in body["notes"]), body
    assert notes_of(response) == body["notes"]


def test_uploaded_reference_without_speech_names_the_upload(client, odd_refs):
    fields = {k: str(v) for k, v in tts_query(ref_audio_path=None).items()}
    files = {"ref_audio": ("c.wav", odd_refs["constant"].read_bytes(), "audio/wav")}
    message = assert_error(client.post("/tts", data=fields, files=files), 400, "ref_audio")
    assert "uploaded reference clip holds no speech" in message
    missing = client.post("/tts", json=tts_query(aux_ref_audio_paths=["odd/nothing.wav"]))
    assert "odd/nothing.wav not found" in assert_error(missing, 400, "aux_ref_audio_paths")


def test_extra_references_are_checked_like_the_reference(client, odd_refs):
    silent = client.post("/tts", json=tts_query(aux_ref_audio_paths=["odd/tone.wav"]))
    assert "odd/tone.wav holds no speech" in assert_error(silent, 400, "aux_ref_audio_paths")
    clipped = client.post("/tts", json=tts_query(aux_ref_audio_paths=["odd/clipped.wav"]))
    assert clipped.status_code == 200, clipped.text
    assert any(n.startswith("An extra reference clip is clipped") for n in notes_of(clipped))


def test_error_messages_name_files_relative_to_the_data_folder(client, api_home):
    (api_home / "odd").mkdir(exist_ok=True)
    (api_home / "odd" / "notes.txt").write_text("not audio")
    response = client.get("/tts", params=tts_query(ref_audio_path=str(api_home / "odd" / "notes.txt")))
    message = assert_error(response, 400, "ref_audio_path")
    assert "odd/notes.txt" in message and "not a readable audio file" in message
    assert str(api_home) not in response.text and str(api_home.resolve()) not in response.text


def test_prompt_text_without_prompt_lang_is_a_400_as_upstream(client):
    assert_error(client.get("/tts", params=tts_query(prompt_lang=None)), 400, "prompt_lang")
    timbre_only = client.get("/tts", params=tts_query(prompt_lang=None, prompt_text=""))
    assert timbre_only.status_code == 200, timbre_only.text


@pytest.mark.parametrize(
    ("param", "value", "why"),
    [
        ("text", "a\x00b", "NUL byte"),
        ("text", "a\x1bb", "U+001B"),
        ("ref_audio_path", "ref.wav\x00.txt", "NUL byte"),
        ("ref_audio_path", "x" * 5000, "5000 characters long"),
        ("prompt_text", "\x07" + PROMPT, "U+0007"),
        ("preset", "\x00", "NUL byte"),
        ("gpt_weights", "a" * 2000, "limit is 1024"),
        ("text_lang", "zh\x00", "NUL byte"),
    ],
)
def test_control_characters_and_long_strings_are_refused_naming_the_field(client, param, value, why):
    for response in (
        client.get("/tts", params=tts_query(**{param: value})),
        client.post("/tts", json=tts_query(**{param: value})),
    ):
        assert why in assert_error(response, 400, param)


def test_json_body_may_carry_a_lone_surrogate_but_it_is_refused(client):
    body = json.dumps(tts_query(text="a\ud800b")).encode()
    response = client.post("/tts", content=body, headers={"content-type": "application/json"})
    assert "lone surrogate" in assert_error(response, 400, "text")


def test_relative_paths_cut_only_whole_data_folder_paths():
    roots = [(Path("/data/pretrained_models"), "pretrained_models"), (Path("/data"), "")]
    assert relative_paths("/data/ref.wav: not found", roots) == "ref.wav: not found"
    assert relative_paths("/data/pretrained_models/x.pt", roots) == "pretrained_models/x.pt"
    assert relative_paths("'/data/a b.wav' and /data", roots) == "'a b.wav' and ."
    assert relative_paths("/mnt/data/x and /database/y", roots) == "/mnt/data/x and /database/y"
