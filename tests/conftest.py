"""Suite-wide test setup: offline hubs, no network but loopback, shared fixture locations."""

from __future__ import annotations

import ipaddress
import os
import socket
from pathlib import Path

import pytest

# Model hubs must never be contacted: fail fast instead of retrying for ~30 s.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("OPEN_JTALK_DICT_DIR", "/var/lib/mecab/dic/open-jtalk/naist-jdic")

REPO_ROOT = Path(__file__).resolve().parent.parent


class NetworkBlocked(RuntimeError):
    """A test tried to reach a host other than this machine."""


def _is_local(address: object) -> bool:
    if isinstance(address, tuple) and address:
        host = address[0]
    else:
        return isinstance(address, (str, bytes))  # AF_UNIX socket path
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex


def _guarded_connect(self: socket.socket, address: object) -> None:
    if not _is_local(address):
        raise NetworkBlocked(f"tests run offline; refused connection to {address!r}")
    return _real_connect(self, address)


def _guarded_connect_ex(self: socket.socket, address: object) -> int:
    if not _is_local(address):
        raise NetworkBlocked(f"tests run offline; refused connection to {address!r}")
    return _real_connect_ex(self, address)


socket.socket.connect = _guarded_connect  # type: ignore[method-assign]
socket.socket.connect_ex = _guarded_connect_ex  # type: ignore[method-assign]


@pytest.fixture(scope="session")
def upstream_fixtures() -> Path:
    """Folder of upstream parity fixtures: ``$UPSTREAM_FIXTURES`` or ``../shared/fixtures/upstream``."""
    folder = Path(
        os.environ.get("UPSTREAM_FIXTURES") or REPO_ROOT.parent / "shared" / "fixtures" / "upstream"
    )
    if not folder.is_dir():
        pytest.fail(f"upstream fixtures not found at {folder}; set UPSTREAM_FIXTURES")
    return folder


# ---- browser harness (see tests/browser.py) -------------------------------------------------


@pytest.fixture(scope="module")
def studio_server(tmp_path_factory):
    """``webui.py`` running on a free port with a fresh ``STUDIO_HOME`` (one per test module)."""
    from tests.browser import run_studio

    with run_studio(tmp_path_factory.mktemp("studio_home")) as server:
        yield server


@pytest.fixture(scope="session")
def studio_browser(tmp_path_factory):
    """Headless Chromium context (fresh profile), shared by the session's browser tests."""
    from tests.browser import chromium_context

    with chromium_context(tmp_path_factory.mktemp("chromium_profile")) as context:
        yield context


@pytest.fixture
def studio_page(studio_browser, studio_server):
    """A page with the studio loaded; closed after the test."""
    from tests.browser import open_studio

    studio_browser.clear_cookies()
    page = open_studio(studio_browser, studio_server)
    yield page
    page.close()


@pytest.fixture(scope="session")
def espeak_wav(tmp_path_factory) -> Path:
    """``speech.wav``: three espeak-ng sentences with pauses, 1 s silence before, 2 s after."""
    from tests.synth import padded_speech

    return padded_speech(tmp_path_factory.mktemp("speech") / "speech.wav")


# ---- TTS fine-tuning data (see tests/tts_data.py) ----------------------------------------------


@pytest.fixture(scope="session")
def tts_pretrained(tmp_path_factory):
    """Tiny random base models in upstream's pretrained_models/ layout (tests.tts_data.Pretrained)."""
    from tests.tts_data import make_pretrained

    return make_pretrained(tmp_path_factory.mktemp("tts_models") / "pretrained_models")


@pytest.fixture(scope="session")
def tts_dataset(tmp_path_factory):
    """(audio folder, clips, .list path): 20 Piper/espeak-ng clips and their annotation list."""
    from tests.tts_data import make_clips, write_dataset_list

    root = tmp_path_factory.mktemp("tts_dataset")
    clips = make_clips(root / "clips")
    return root / "clips", clips, write_dataset_list(root / "voice.list", clips)


@pytest.fixture(scope="session")
def tts_experiment(tmp_path_factory, tts_pretrained, tts_dataset) -> Path:
    """The dataset formatted once (1a, 1b, 1c) into an experiment folder; copy it before changing it."""
    from app.data.preprocess.tts_features import run_format
    from app.runconfig import FormatRunConfig

    audio_dir, _, list_path = tts_dataset
    exp_dir = tmp_path_factory.mktemp("tts_experiment") / "voice"
    report = run_format(
        FormatRunConfig(
            list_path=list_path,
            audio_dir=audio_dir,
            exp_dir=exp_dir,
            bert_dir=tts_pretrained.bert,
            hubert_dir=tts_pretrained.hubert,
            pretrained_s2g=tts_pretrained.s2g,
            workers=1,
        )
    )
    assert not report.problems, report.problems
    return exp_dir


# ---- singing voice conversion (see tests/svc_data.py) -------------------------------------------


@pytest.fixture(scope="session")
def svc_trained(tmp_path_factory):
    """A tiny so-vits-svc model trained from scratch by a real training job (see tests/svc_data.py)."""
    from tests.svc_data import train_tiny_svc

    return train_tiny_svc(tmp_path_factory.mktemp("svc_trained"))
