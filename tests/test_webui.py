"""webui.py: safe defaults for binding, auth parsing, and a real launch that serves the page."""

from __future__ import annotations

import urllib.request

import pytest

import webui


def test_loopback_detection():
    for host in ("127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost"):
        assert webui.is_loopback(host), host
    for host in ("0.0.0.0", "::", "192.168.1.4", "example.org"):
        assert not webui.is_loopback(host), host


@pytest.mark.parametrize("argv", [["--host", "0.0.0.0"], ["--host", "192.168.0.9"], ["--share"]])
def test_exposed_without_auth_is_refused(argv, capsys):
    assert webui.main(argv) == 2
    err = capsys.readouterr().err
    assert "refusing to start" in err and "--auth USER:PASSWORD" in err


def test_auth_or_explicit_no_auth_is_accepted():
    assert webui.exposure_problem("0.0.0.0", False, ("u", "p"), False) is None
    assert webui.exposure_problem("0.0.0.0", False, None, True) is None
    assert webui.exposure_problem("127.0.0.1", False, None, False) is None


def test_auth_parsing(capsys):
    assert webui.parse_auth("me:pa:ss") == ("me", "pa:ss")
    with pytest.raises(SystemExit):
        webui.main(["--auth", "nopassword"])
    assert "USER:PASSWORD" in capsys.readouterr().err


def test_server_serves_the_page_with_studio_home(studio_server):
    with urllib.request.urlopen(studio_server.url, timeout=10) as response:
        assert response.status == 200
        assert b"SoVITS Studio" in response.read()
    # STUDIO_HOME moved every data folder.
    for name in ("pretrained_models", "GPT_weights", "SoVITS_weights", "output"):
        assert (studio_server.home / name).is_dir(), name
