"""api_v2-compatible /tts and the model endpoints, through FastAPI's TestClient."""

from __future__ import annotations

import math
import os

import numpy as np
import pytest

from tests.api.conftest import PROMPT, TEXT, assert_error, assert_speech, read_wav, tts_query

# The style of upstream's README example (every value in the query string, streaming_mode=true).
README_QUERY = (
    "/tts?text={text}&text_lang=zh&ref_audio_path=ref.wav&prompt_lang=zh&prompt_text={prompt}"
    "&text_split_method=cut5&batch_size=1&media_type=wav&streaming_mode=true"
)


def test_upstream_readme_request_works_unchanged(client):
    response = client.get(README_QUERY.format(text=TEXT, prompt=PROMPT))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "audio/wav"
    body = response.content
    # One RIFF header with open-ended sizes, then PCM (not a header per chunk).
    assert body[:4] == b"RIFF" and body[4:8] == b"\xff\xff\xff\xff" and body.count(b"RIFF") == 1
    audio, rate = read_wav(body)
    assert_speech(audio, rate)


def test_upstream_post_json_with_every_api_v2_field_is_reproducible(client):
    body = {
        **tts_query(seed=1234),
        "aux_ref_audio_paths": [],
        "top_k": 15,
        "top_p": 1,
        "temperature": 1,
        "text_split_method": "cut5",
        "batch_size": 1,
        "batch_threshold": 0.75,
        "split_bucket": True,
        "speed_factor": 1.0,
        "fragment_interval": 0.3,
        "media_type": "wav",
        "streaming_mode": False,
        "parallel_infer": True,
        "repetition_penalty": 1.35,
        "sample_steps": 32,
        "super_sampling": False,
        "overlap_length": 2,
        "min_chunk_length": 16,
        "some_future_upstream_field": "ignored",
    }
    first = client.post("/tts", json=body)
    assert first.status_code == 200, first.text
    assert first.headers["x-seed"] == "1234"
    assert int(first.headers["content-length"]) == len(first.content)
    audio, rate = read_wav(first.content)
    assert_speech(audio, rate)
    assert math.isclose(float(first.headers["x-audio-seconds"]), len(audio) / rate, abs_tol=1e-3)
    again = client.post("/tts", json=body)
    assert again.content == first.content  # same seed, same request: same audio


def test_uploaded_reference_and_aux_clips(client, api_home):
    files = [
        ("ref_audio", ("clip.wav", (api_home / "ref.wav").read_bytes(), "audio/wav")),
        ("aux_ref_audio", ("aux.wav", (api_home / "refs" / "high.wav").read_bytes(), "audio/wav")),
    ]
    fields = {k: str(v) for k, v in tts_query(ref_audio_path=None, media_type="raw").items()}
    response = client.post("/tts", data=fields, files=files)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "audio/pcm"
    audio = np.frombuffer(response.content, dtype="<i2")
    assert_speech(audio, 32000)
    wrong = client.post("/tts", data=fields, files=[("other", ("x.wav", b"abc", "audio/wav"))])
    assert_error(wrong, 400, "other")


def test_aux_reference_paths_and_per_request_models(client):
    query = tts_query(aux_ref_audio_paths=["refs/high.wav"], gpt_weights="other-e5.ckpt", media_type="ogg")
    response = client.get("/tts", params=query)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "audio/ogg"
    assert response.content[:4] == b"OggS"
    loaded = client.get("/ready").json()["loaded"]
    assert loaded[-1]["gpt_weights"] == "GPT_weights/other-e5.ckpt"


@pytest.mark.parametrize(
    ("query", "param"),
    [
        ({"text": None}, "text"),
        ({"text": "   "}, "text"),
        ({"text_lang": None}, "text_lang"),
        ({"text_lang": "klingon"}, "text_lang"),
        ({"prompt_lang": "xx"}, "prompt_lang"),
        ({"ref_audio_path": None}, "ref_audio_path"),
        ({"speed_factor": 0}, "speed_factor"),
        ({"speed_factor": 5}, "speed_factor"),
        ({"speed_factor": "nan"}, "speed_factor"),
        ({"top_k": 0}, "top_k"),
        ({"temperature": "hot"}, "temperature"),
        ({"media_type": "wma"}, "media_type"),
        ({"streaming_mode": 7}, "streaming_mode"),
        ({"text_split_method": "cut9"}, "text_split_method"),
        ({"batch_size": 0}, "batch_size"),
        ({"seed": -2}, "seed"),
        ({"super_sampling": True}, "super_sampling"),
        ({"sample_steps": 3}, "sample_steps"),
        ({"sample_steps": 129}, "sample_steps"),
        ({"sample_steps": 16}, "sample_steps"),  # a v2 model has no flow-matching steps
        ({"batch_threshold": 1.5}, "batch_threshold"),
        ({"overlap_length": -1}, "overlap_length"),
        ({"min_chunk_length": 0}, "min_chunk_length"),
        ({"preset": "nobody"}, "preset"),
        ({"ref_audio_path": "missing.wav"}, "ref_audio_path"),
    ],
)
def test_bad_parameters_are_4xx_naming_the_field(client, query, param):
    status = 404 if param == "preset" else 400
    assert_error(client.get("/tts", params=tts_query(**query)), status, param)
    body = {k: v for k, v in tts_query(**query).items()}
    assert_error(client.post("/tts", json=body), status, param)


def test_bad_bodies(client):
    assert_error(client.post("/tts", content=b"{not json", headers={"content-type": "application/json"}), 400)
    assert_error(client.post("/tts", json=[1, 2]), 400)
    assert_error(client.post("/tts", content=b"x", headers={"content-type": "text/plain"}), 415)
    assert_error(client.post("/tts", json={}), 400, "text")


def test_a_silent_reference_is_a_400_also_when_streaming(client):
    for mode in ("0", "1", "2"):
        message = assert_error(
            client.get("/tts", params=tts_query(ref_audio_path="silent.wav", streaming_mode=mode)), 400
        )
        assert "silent" in message


@pytest.mark.parametrize("path", ["/etc/passwd", "../outside.wav", "refs/../../outside.wav", "..\\x.wav"])
def test_reference_paths_outside_the_data_root_are_refused(client, path):
    assert_error(client.get("/tts", params=tts_query(ref_audio_path=path)), 403, "ref_audio_path")
    aux = tts_query(aux_ref_audio_paths=[path])
    assert_error(client.get("/tts", params=aux), 403, "aux_ref_audio_paths")


def test_a_link_out_of_the_data_root_is_refused(client, api_home, tmp_path):
    outside = tmp_path / "secret.wav"
    outside.write_bytes((api_home / "ref.wav").read_bytes())
    link = api_home / "refs" / "link.wav"
    os.symlink(outside, link)
    try:
        message = assert_error(client.get("/tts", params=tts_query(ref_audio_path="refs/link.wav")), 403)
        assert str(api_home) not in message  # the server's folders are not disclosed
    finally:
        link.unlink()


def test_set_weights_checks_and_shares_the_choice(client, make_client, api_home):
    ok = client.get("/set_gpt_weights", params={"weights_path": "GPT_weights/other-e5.ckpt"})
    assert ok.status_code == 200, ok.text
    assert ok.json() == {"message": "success", "gpt_weights": "GPT_weights/other-e5.ckpt", "version": "v2"}
    ok = client.get("/set_sovits_weights", params={"weights_path": "tiny_e2_s10.pth"})
    assert ok.json()["sovits_weights"] == "SoVITS_weights/tiny_e2_s10.pth"
    # A second server on the same data root (a replica) sees the choice.
    replica = make_client()
    current = replica.get("/weights").json()["current"]
    assert current == {
        "gpt_weights": "GPT_weights/other-e5.ckpt",
        "sovits_weights": "SoVITS_weights/tiny_e2_s10.pth",
    }
    assert replica.get("/ready").json()["gpt_weights"] == "GPT_weights/other-e5.ckpt"
    assert_error(client.get("/set_gpt_weights"), 400, "weights_path")
    assert_error(client.get("/set_gpt_weights", params={"weights_path": "/etc/passwd"}), 403, "weights_path")
    assert_error(client.get("/set_gpt_weights", params={"weights_path": "../x.ckpt"}), 403, "weights_path")
    assert_error(
        client.get("/set_gpt_weights", params={"weights_path": "SoVITS_weights/tiny_e2_s10.pth"}), 400
    )
    broken = api_home / "GPT_weights" / "broken.ckpt"
    broken.write_bytes(b"PK\x03\x04 this is not a checkpoint")
    try:
        message = assert_error(
            client.get("/set_gpt_weights", params={"weights_path": "GPT_weights/broken.ckpt"}), 400
        )
        assert "broken.ckpt" in message
    finally:
        broken.unlink()
    assert client.get("/weights").json()["current"]["gpt_weights"] == "GPT_weights/other-e5.ckpt"


def test_control_and_server_wide_reference_are_refused(client):
    message = assert_error(client.get("/control", params={"command": "exit"}), 403)
    assert "cannot be stopped" in message
    assert client.get("/health").json() == {"status": "ok"}
    assert_error(client.get("/set_refer_audio", params={"refer_audio_path": "ref.wav"}), 400)


def test_probes_and_listing(client):
    assert client.get("/health").json() == {"status": "ok"}
    ready = client.get("/ready")
    assert ready.status_code == 200 and ready.json()["ready"] is True
    listing = client.get("/weights").json()
    assert {w["path"] for w in listing["gpt"]} == {"GPT_weights/tiny-e2.ckpt", "GPT_weights/other-e5.ckpt"}
    assert [w["path"] for w in listing["sovits"]] == ["SoVITS_weights/tiny_e2_s10.pth"]


def test_ready_is_503_without_models(tmp_path):
    from fastapi.testclient import TestClient

    from app.api.app import create_app
    from app.settings import Settings

    with TestClient(create_app(Settings(home=tmp_path))) as empty:
        response = empty.get("/ready")
        assert response.status_code == 503
        assert response.json()["ready"] is False and response.json()["problems"]
        assert_error(empty.get("/tts", params=tts_query()), 400, "ref_audio_path")  # no ref.wav there


def test_api_v2_knobs_reach_the_request() -> None:
    """batch_threshold, split_bucket, parallel_infer, sample_steps and return_fragment are honoured."""
    from app.api.routes.tts import build_request
    from app.api.schemas import TTSParams

    def built(**fields):
        params = TTSParams(text="Hello.", text_lang="en", **fields)
        return build_request(None, params, set(fields), ref_upload=b"RIFF")[0]

    request = built(batch_size=4, batch_threshold=0.5, split_bucket=True, sample_steps=8)
    assert (request.batch_size, request.batch_threshold, request.split_bucket, request.sample_steps) == (
        4,
        0.5,
        True,
        8,
    )
    assert built(batch_size=4, parallel_infer=False).batch_size == 1
    assert not built(batch_size=4, split_bucket=False).split_bucket
    # Upstream turns bucketing off while streaming (segments of a bucket finish out of order).
    assert not built(batch_size=4, streaming_mode=2).split_bucket
    assert not built(batch_size=4, return_fragment=True).split_bucket
    assert TTSParams(text="x", return_fragment=True).stream_mode == 1
    assert TTSParams(text="x", return_fragment=True, streaming_mode=3).stream_mode == 3


def test_streaming_chunks_follow_min_chunk_length_and_overlap_length() -> None:
    from app.api.responses import stream_options

    assert stream_options(0, 16) is None and stream_options(1, 16) is None
    fixed = stream_options(3, 20, overlap_length=3)
    sizes = fixed.chunk_sizes()
    assert [next(sizes) for _ in range(4)] == [8, 20, 20, 20] and fixed.hold == 6
    growing = stream_options(2, 30, overlap_length=1)
    sizes = growing.chunk_sizes()
    assert [next(sizes) for _ in range(4)] == [30, 30, 60, 96] and growing.hold == 2


def test_return_fragment_streams_per_segment(client):
    response = client.get("/tts", params=tts_query(return_fragment="true"))
    assert response.status_code == 200, response.text
    assert response.content[4:8] == b"\xff\xff\xff\xff"  # a streamed WAV header (open-ended sizes)
    assert "content-length" not in response.headers
