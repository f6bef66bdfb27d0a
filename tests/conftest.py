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
