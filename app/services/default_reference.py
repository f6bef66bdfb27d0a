"""The server's default reference of upstream's legacy ``api.py`` protocol (``/change_refer``).

Upstream api.py keeps one reference (clip, what it says, its language) in memory for requests
that name none. Here it is a small JSON file under the data root (``output/api/default_reference.json``),
written atomically and read on each request, like the current models (``app.services.model_choice``):
replicas sharing a data root agree on it and it survives restarts. The clip is stored relative to
the data root; the API checks it lies inside before saving it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from app import config_io
from app.paths import Layout

log = logging.getLogger(__name__)

REFERENCE_FILE = Path("api") / "default_reference.json"  # under Layout.output


@dataclass(frozen=True)
class DefaultReference:
    """A reference for requests without one ("" everywhere = none set)."""

    # The clip, relative to the data root (e.g. "refs/voice.wav").
    path: str = ""
    # What the clip says.
    text: str = ""
    # Language mode of ``text`` (an app.text.LanguageMode id: "all_zh", "en", ...).
    language: str = ""

    @property
    def ready(self) -> bool:
        """All three parts are set (upstream's ``is_ready``)."""
        return bool(self.path and self.text and self.language)


class DefaultReferenceStore:
    """Read and replace the default reference of one data root."""

    def __init__(self, layout: Layout) -> None:
        self.path = layout.output / REFERENCE_FILE

    def read(self) -> DefaultReference:
        if not self.path.is_file():
            return DefaultReference()
        try:
            return config_io.load(DefaultReference, self.path)
        except config_io.ConfigError as exc:
            log.warning("ignoring %s: %s", self.path, exc)
            return DefaultReference()

    def save(self, reference: DefaultReference) -> DefaultReference:
        config_io.save(reference, self.path)
        log.info("default reference: %s (%s)", reference.path, reference.language)
        return reference
