"""API key, upload cap, opaque 500s, docs, and the refusal to bind beyond loopback without a key."""

from __future__ import annotations

import logging

import pytest

from app.api import server
from tests.api.conftest import assert_error, tts_query

KEY = "s3cret-key"


def test_key_is_required_on_every_api_endpoint(make_client):
    client = make_client(api_key=KEY)
    for method, path in [
        ("GET", "/tts"),
        ("POST", "/tts"),
        ("GET", "/set_gpt_weights"),
        ("GET", "/set_sovits_weights"),
        ("GET", "/weights"),
        ("POST", "/v1/audio/speech"),
        ("GET", "/v1/models"),
        ("GET", "/v1/audio/voices"),
        ("GET", "/presets"),
        ("POST", "/presets"),
        ("DELETE", "/presets/x"),
    ]:
        missing = client.request(method, path)
        assert "missing API key" in assert_error(missing, 401), path
        assert missing.headers["www-authenticate"] == "Bearer"
        wrong = client.request(method, path, headers={"Authorization": f"Bearer {KEY}x"})
        assert "wrong API key" in assert_error(wrong, 401), path
        assert_error(client.request(method, path, headers={"X-API-Key": "nope"}), 401)
        assert_error(client.request(method, path, headers={"Authorization": f"Basic {KEY}"}), 401)


def test_either_header_carries_the_key(make_client):
    client = make_client(api_key=KEY)
    assert client.get("/v1/models", headers={"Authorization": f"Bearer {KEY}"}).status_code == 200
    assert client.get("/v1/models", headers={"X-API-Key": KEY}).status_code == 200
    # Past the key check, validation answers as usual.
    assert_error(client.get("/tts", headers={"X-API-Key": KEY}), 400, "text")


def test_probes_and_docs_stay_open(make_client):
    client = make_client(api_key=KEY)
    assert client.get("/health").status_code == 200
    assert client.get("/ready").status_code == 200
    assert client.get("/docs").status_code == 200
    spec = client.get("/openapi.json").json()
    for path in ("/tts", "/v1/audio/speech", "/presets", "/set_gpt_weights", "/health"):
        assert path in spec["paths"], path
    assert {"HTTPBearer", "APIKeyHeader"} <= set(spec["components"]["securitySchemes"])
    assert "multipart/form-data" in spec["paths"]["/tts"]["post"]["requestBody"]["content"]


def test_uploads_over_the_cap_are_413(make_client, api_home):
    client = make_client(max_upload_mb=1)
    big = b"\0" * (3 << 20)
    fields = {k: str(v) for k, v in tts_query(ref_audio_path=None).items()}
    response = client.post("/tts", data=fields, files={"ref_audio": ("big.wav", big, "audio/wav")})
    assert "upload limit" in assert_error(response, 413)

    def chunked():  # no Content-Length: the cap is enforced while reading
        for _ in range(3):
            yield b"\0" * (1 << 20)

    response = client.post("/tts", content=chunked(), headers={"content-type": "application/json"})
    assert_error(response, 413)
    small = client.post(
        "/presets", data={"name": "p"}, files={"ref_audio": ("a.wav", b"x" * 100, "audio/wav")}
    )
    assert small.status_code == 400  # under the cap: reaches validation


def test_internal_errors_are_opaque_500s_and_logged(client, caplog, monkeypatch):
    api = client.app.state.api

    def explode(spec):
        raise RuntimeError("secret detail /very/private/path")

    monkeypatch.setattr(api.pipelines, "get", explode)
    with caplog.at_level(logging.ERROR):
        response = client.get("/tts", params=tts_query())
    message = assert_error(response, 500)
    assert "secret" not in response.text and "private" not in response.text
    incident = message.split("(id ")[1].split(")")[0]
    assert incident in caplog.text and "secret detail" in caplog.text
    assert client.get("/health").status_code == 200


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.20"])
def test_binding_beyond_loopback_without_a_key_is_refused(host, capsys, monkeypatch):
    monkeypatch.delenv("STUDIO_API_KEY", raising=False)
    assert server.main(["--host", host, "--port", "1"]) == 2
    err = capsys.readouterr().err
    assert "refusing to start" in err and "STUDIO_API_KEY" in err and "--api-key" in err


def test_exposure_rules_and_bad_flags(capsys, monkeypatch):
    monkeypatch.delenv("STUDIO_API_KEY", raising=False)
    assert server.exposure_problem("0.0.0.0", "k") is None
    assert server.exposure_problem("127.0.0.1", None) is None
    assert server.exposure_problem("localhost", None) is None
    assert server.main(["--api-key", " "]) == 2
    assert server.main(["--queue-limit", "0"]) == 2
    assert "must be a positive number" in capsys.readouterr().err


def test_server_mounts_the_ui_unless_told_not_to(api_home):
    from fastapi.testclient import TestClient

    from app.settings import Settings
    from app.ui.mount import mount_ui  # the entry point's part: the API never imports the UI

    settings = Settings(home=api_home, api_key=KEY)
    with TestClient(server.build_server(settings)) as api_only:
        assert api_only.get("/ui/").status_code == 404
        assert api_only.get("/", follow_redirects=False).headers["location"] == "/docs"
    with TestClient(server.build_server(settings, mount_ui=mount_ui)) as both:
        assert both.get("/", follow_redirects=False).headers["location"] == "/ui/"
        page = both.get("/ui/")
        assert page.status_code == 200
        # With a key, the UI asks for it as its password.
        assert both.post("/ui/login", data={"username": "me", "password": "nope"}).status_code == 400
        assert both.post("/ui/login", data={"username": "me", "password": KEY}).status_code == 200
        assert both.get("/health").status_code == 200
