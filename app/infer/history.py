"""History of synthesised audio: ``output/tts/<time>-<seed>.wav`` plus a ``.json`` with every parameter.

The json holds the request's parameters (the seed actually used included), the models, how the
reference was used, the segments, notes and timings: enough to reproduce the file.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path

import soundfile as sf

from app.fileio import atomic_path, atomic_write_text
from app.infer.request import PipelineSpec, TTSRequest, TTSResult

log = logging.getLogger(__name__)

FOLDER = "tts"  # under output/


@dataclass(frozen=True)
class HistoryEntry:
    """One synthesised file and its parameters."""

    # The audio file (16-bit PCM WAV).
    wav: Path
    # Its parameters.
    meta: Path
    # ISO time it was written.
    created: str
    # The text synthesised.
    text: str
    # The seed used.
    seed: int
    # Length in seconds.
    duration: float


def save(
    folder: Path, request: TTSRequest, result: TTSResult, spec: PipelineSpec | None = None
) -> HistoryEntry:
    """Write ``result`` as ``<folder>/<YYYYmmdd-HHMMSS>-<seed>.wav`` and its ``.json``."""
    folder.mkdir(parents=True, exist_ok=True)
    now = datetime.now()
    stem = f"{now:%Y%m%d-%H%M%S}-{result.seed}"
    n = 1
    while (folder / f"{stem}.wav").exists() or (folder / f"{stem}.json").exists():
        n += 1
        stem = f"{now:%Y%m%d-%H%M%S}-{result.seed}-{n}"
    wav, meta = folder / f"{stem}.wav", folder / f"{stem}.json"
    params = request.parameters()
    params["seed_requested"] = params["seed"]
    params["seed"] = result.seed
    record = {
        "created": now.isoformat(timespec="seconds"),
        "wav": wav.name,
        "sample_rate": result.sample_rate,
        "duration": round(result.duration, 3),
        "request": params,
        "models": None
        if spec is None
        else {
            "gpt": str(spec.gpt_path),
            "sovits": str(spec.sovits_path),
            "device": spec.device,
            "precision": spec.precision,
        },
        "segments": list(result.segments),
        "tokens_per_segment": [int(t.numel()) for t in result.tokens],
        "reference": asdict(result.reference),
        "notes": list(result.notes),
        "timings": {k: round(v, 4) if isinstance(v, float) else v for k, v in asdict(result.timings).items()},
    }
    with atomic_path(wav) as tmp:
        sf.write(tmp, result.audio, result.sample_rate, subtype="PCM_16", format="WAV")
    atomic_write_text(meta, json.dumps(record, ensure_ascii=False, indent=2))
    log.info("saved %s (%.1f s, seed %d)", wav, result.duration, result.seed)
    return HistoryEntry(wav, meta, record["created"], str(request.text), result.seed, result.duration)


def entries(folder: Path, limit: int = 50) -> list[HistoryEntry]:
    """The newest ``limit`` entries (wav + readable json), newest first; broken json files are skipped."""
    if not folder.is_dir():
        return []
    out = []
    for meta in sorted(folder.glob("*.json"), key=lambda p: p.stat().st_mtime, reverse=True):
        wav = meta.with_suffix(".wav")
        if not wav.is_file():
            continue
        try:
            record = json.loads(meta.read_text("utf-8"))
            out.append(
                HistoryEntry(
                    wav,
                    meta,
                    str(record["created"]),
                    str(record["request"]["text"]),
                    int(record["request"]["seed"]),
                    float(record["duration"]),
                )
            )
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("skipping unreadable history file %s: %s", meta, exc)
        if len(out) >= limit:
            break
    return out
