"""The per-clip report of a processing step, and how a rerun knows what is already done.

Separation and each vocal clean-up step write ``report.json`` beside their outputs: for every
output file, the step, the clip it came from, the model that made it, the frames written and
the step's figures (how much it removed). A rerun skips a clip only when its entry names the same
source and model and every output file is there with the frames recorded; anything else (another
model, a half-finished run, a file replaced by hand) is done again. Audio is written atomically
(:func:`app.audio.save_audio`), so a listed file with the right length is a complete one.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import soundfile as sf

from app.fileio import atomic_write_text

logger = logging.getLogger(__name__)

REPORT_NAME = "report.json"


@dataclass(frozen=True)
class StepRecord:
    """One clip through one step: what the report says about it."""

    step: str  # "separate", "karaoke", "dereverb", "denoise"
    source: Path  # the clip that went in
    outputs: tuple[Path, ...]  # files written (the one the next step reads first)
    model: str  # the model or settings that made them
    figures: dict[str, float]  # e.g. {"removed_db": -14.2, "seconds": 3.1}
    resumed: bool  # True when an earlier run's outputs were kept


def _frames(path: Path) -> int | None:
    try:
        return int(sf.info(str(path)).frames)
    except (sf.LibsndfileError, RuntimeError, OSError):
        return None


class StepLedger:
    """``report.json`` of one output folder: finished outputs per step and per clip."""

    def __init__(self, folder: Path) -> None:
        self.path = Path(folder) / REPORT_NAME
        self.entries: dict[str, dict[str, dict[str, Any]]] = {}
        if self.path.is_file():
            try:
                loaded = json.loads(self.path.read_text(encoding="utf-8"))
                self.entries = loaded if isinstance(loaded, dict) else {}
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                # Nothing is lost: every clip is simply done again and the report rewritten.
                logger.warning("%s is unreadable (%s); every clip will be processed again", self.path, exc)

    def finished(self, step: str, source: Path, first_output: Path, model: str) -> StepRecord | None:
        """The earlier record of ``source`` through ``step`` when its outputs are complete, else None."""
        entry = self.entries.get(step, {}).get(first_output.name)
        if not isinstance(entry, dict) or entry.get("source") != str(source) or entry.get("model") != model:
            return None
        outputs = tuple(self.path.parent / rel for rel in entry.get("outputs", []))
        frames = entry.get("frames", [])
        if not outputs or len(frames) != len(outputs):
            return None
        if any(_frames(p) != n for p, n in zip(outputs, frames, strict=True)):
            return None
        return StepRecord(step, source, outputs, model, dict(entry.get("figures", {})), True)

    def record(self, record: StepRecord) -> None:
        """Add ``record`` and rewrite the report (after every clip: a crash loses at most the clip in work)."""
        base = self.path.parent
        self.entries.setdefault(record.step, {})[record.outputs[0].name] = {
            "source": str(record.source),
            "model": record.model,
            "outputs": [str(p.relative_to(base)) for p in record.outputs],
            "frames": [_frames(p) for p in record.outputs],
            "figures": {k: round(v, 3) for k, v in record.figures.items()},
        }
        atomic_write_text(self.path, json.dumps(self.entries, ensure_ascii=False, indent=1, sort_keys=True))
