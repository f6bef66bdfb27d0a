"""What every tab's ``build(ctx)`` receives."""

from __future__ import annotations

from dataclasses import dataclass, field

import gradio as gr

from app.paths import Layout
from app.services.synthesis import SynthesisService
from app.settings import Settings


@dataclass(frozen=True)
class UIContext:
    """Shared, read-only state handed to each tab while the page is built."""

    # Process settings (data root, upload limit, device preference, ...).
    settings: Settings
    # Data folders under settings.home (pretrained_models/, output/, ...).
    layout: Layout
    # Translation table; ``ctx.t("dataset.run")`` gives a label the browser shows in its language.
    i18n: gr.I18n
    # The language forced with --lang ("auto": the browser's).
    lang: str = "auto"
    # The one door to the device: every synthesis (and any other device work) of a tab goes through
    # it, in the same line as the HTTP API's when both run in one server. A context built for one
    # tab alone (tests) gets a line of its own.
    synthesis: SynthesisService = field(default_factory=SynthesisService.create)

    def t(self, key: str) -> gr.i18n.I18nData:
        """A translatable label for ``key``; keys are ids and never drive logic."""
        return self.i18n(key)
