"""Process-wide settings: the one module that reads environment variables.

Every other module receives a :class:`Settings` (or the values it needs) as an argument.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

# The repository root: app/settings.py -> app -> root.
REPO_ROOT = Path(__file__).resolve().parent.parent

DEFAULT_HOST = "127.0.0.1"
DEFAULT_UI_PORT = 9874  # upstream GPT-SoVITS main web UI port
DEFAULT_API_PORT = 9880  # upstream api_v2 port
DEFAULT_MAX_UPLOAD_MB = 200
LOOPBACK_NAMES = {"localhost", "localhost.localdomain"}
# A browser origin: scheme, host (name, IPv4 or [IPv6]) and an optional port; no path.
ORIGIN_PATTERN = re.compile(
    r"[a-z][a-z0-9+.-]*://(\[[0-9a-f:.]+\]|[a-z0-9_.-]+)(:[0-9]{1,5})?", re.IGNORECASE
)


def is_loopback(host: str) -> bool:
    """True for addresses only this machine can reach (127.0.0.0/8, ::1, localhost)."""
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class Settings:
    """Everything configurable from the environment, resolved once at start-up."""

    # Root of every data folder (pretrained_models/, GPT_weights/, SoVITS_weights/, output/).
    # STUDIO_HOME moves them all, e.g. to a shared volume used by several API replicas.
    home: Path = REPO_ROOT
    # Where base models live; defaults to <home>/pretrained_models (STUDIO_PRETRAINED).
    pretrained_dir: Path | None = None
    # Largest accepted upload in megabytes (STUDIO_MAX_UPLOAD_MB).
    max_upload_mb: int = DEFAULT_MAX_UPLOAD_MB
    # Preferred compute device: "auto", "cpu", "cuda", "cuda:1" (STUDIO_DEVICE).
    device: str = "auto"
    # API key required by the HTTP API when set (STUDIO_API_KEY).
    api_key: str | None = None
    # Requests allowed to wait for the device before the API answers 503 (STUDIO_QUEUE_LIMIT).
    queue_limit: int = 4
    # Never contact a model hub or download site (HF_HUB_OFFLINE=1 or STUDIO_OFFLINE=1).
    offline: bool = False
    # Preset spoken for OpenAI's built-in voice names (alloy, nova, ...) that the voice table
    # (presets/openai_voices.json) does not map and gives no default for (STUDIO_OPENAI_VOICE).
    openai_voice: str | None = None
    # Browser origins allowed to call the HTTP API (CORS), e.g. ("http://localhost:8000",);
    # ("*",) allows any; empty: CORS off (STUDIO_CORS_ORIGINS, comma-separated).
    cors_origins: tuple[str, ...] = ()
    # Extra environment for child processes (jobs); never used as an argument channel.
    extra: Mapping[str, str] = field(default_factory=dict)

    @property
    def pretrained(self) -> Path:
        return self.pretrained_dir or self.home / "pretrained_models"


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not an integer") from None
    if value <= 0:
        raise ValueError(f"{name}={raw!r} must be a positive integer")
    return value


def child_environment(overrides: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for a child process (a job): this process's environment plus ``overrides``.

    Children get their arguments on the command line or in a config file, never through variables;
    overrides are for process-level knobs such as ``CUDA_VISIBLE_DEVICES`` or thread counts.
    """
    env = dict(os.environ)
    env.update(overrides or {})
    return env


@dataclass(frozen=True)
class DistributedEnv:
    """What ``torchrun`` tells each worker process (all 0/1 when not launched by torchrun).

    Across nodes (``torchrun --nnodes N --rdzv-backend c10d --rdzv-endpoint HOST:PORT``) the
    rendezvous assigns ``node_rank``; ``rank`` is global, so "rank 0" is one process of the run.
    """

    rank: int = 0  # global rank (RANK)
    local_rank: int = 0  # rank on this machine, the CUDA device index to use (LOCAL_RANK)
    world_size: int = 1  # number of processes, all nodes together (WORLD_SIZE)
    node_rank: int = 0  # this machine's place among the nodes (GROUP_RANK)
    local_world_size: int = 1  # processes on this machine (LOCAL_WORLD_SIZE)

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def nodes(self) -> int:
        """Machines taking part (every node runs as many processes under torchrun)."""
        return max(1, self.world_size // max(1, self.local_world_size))


def distributed_env(env: Mapping[str, str] | None = None) -> DistributedEnv:
    """Read torchrun's RANK / LOCAL_RANK / WORLD_SIZE / GROUP_RANK / LOCAL_WORLD_SIZE (torchrun's
    contract, not our argument channel)."""
    env = os.environ if env is None else env
    try:
        world_size = int(env.get("WORLD_SIZE", "1"))
        return DistributedEnv(
            rank=int(env.get("RANK", "0")),
            local_rank=int(env.get("LOCAL_RANK", "0")),
            world_size=world_size,
            node_rank=int(env.get("GROUP_RANK", "0")),
            local_world_size=int(env.get("LOCAL_WORLD_SIZE", str(world_size))),
        )
    except ValueError as exc:
        raise ValueError(f"malformed torchrun environment: {exc}") from None


NATIVE_KERNELS_VAR = "STUDIO_NATIVE_KERNELS"


def native_kernels_enabled(env: Mapping[str, str] | None = None) -> bool:
    """False when ``STUDIO_NATIVE_KERNELS`` is 0/false/no/off: the GPT's compiled kernel stays unused."""
    env = os.environ if env is None else env
    return (env.get(NATIVE_KERNELS_VAR) or "1").strip().lower() not in {"0", "false", "no", "off"}


def prepend_to_path(directory: str) -> None:
    """Put ``directory`` first on this process's PATH (and its children's) unless it is on it."""
    current = os.environ.get("PATH", "")
    if directory not in current.split(os.pathsep):
        os.environ["PATH"] = directory + os.pathsep + current if current else directory


def parse_origins(raw: str, source: str = "STUDIO_CORS_ORIGINS") -> tuple[str, ...]:
    """Comma-separated origins (``scheme://host[:port]``, or ``*``) as a tuple; ValueError naming
    ``source`` for anything else (a path, a trailing slash, ``null``: browsers never send those)."""
    out = []
    for item in (part.strip() for part in raw.split(",")):
        if not item:
            continue
        if item != "*" and not ORIGIN_PATTERN.fullmatch(item):
            raise ValueError(
                f"{source}: {item!r} is not an origin; write scheme://host[:port] without a path, "
                "e.g. http://localhost:8000, or * for any"
            )
        out.append(item.lower() if item != "*" else item)
    return tuple(dict.fromkeys(out))


def _flag(env: Mapping[str, str], name: str) -> bool:
    return (env.get(name) or "").strip().lower() in {"1", "true", "yes", "on"}


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Build :class:`Settings` from ``env`` (``os.environ`` when omitted)."""
    env = os.environ if env is None else env
    home = Path(env.get("STUDIO_HOME") or REPO_ROOT).expanduser().resolve()
    pretrained = env.get("STUDIO_PRETRAINED")
    return Settings(
        home=home,
        pretrained_dir=Path(pretrained).expanduser().resolve() if pretrained else None,
        max_upload_mb=_int(env, "STUDIO_MAX_UPLOAD_MB", DEFAULT_MAX_UPLOAD_MB),
        device=env.get("STUDIO_DEVICE") or "auto",
        api_key=env.get("STUDIO_API_KEY") or None,
        queue_limit=_int(env, "STUDIO_QUEUE_LIMIT", 4),
        offline=_flag(env, "HF_HUB_OFFLINE") or _flag(env, "STUDIO_OFFLINE"),
        openai_voice=(env.get("STUDIO_OPENAI_VOICE") or "").strip() or None,
        cors_origins=parse_origins(env.get("STUDIO_CORS_ORIGINS") or ""),
    )
