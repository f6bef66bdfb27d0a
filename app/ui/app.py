"""Assemble the web UI from the tab registry."""

from __future__ import annotations

from functools import lru_cache

import gradio as gr

from app.paths import Layout
from app.services.synthesis import SynthesisService
from app.settings import Settings
from app.ui.context import UIContext
from app.ui.i18n import COMMON, build_i18n
from app.ui.tabs.registry import TABS

# Long result lists scroll inside their box instead of stretching the page.
CSS = """
#dataset-clips { max-height: 70vh; overflow-y: auto; }
"""


def build_app(settings: Settings, lang: str = "auto", synthesis: SynthesisService | None = None) -> gr.Blocks:
    """The whole page: a title and one ``gr.Tab`` per registered tab module.

    Launch it with ``demo.launch(**launch_kwargs(settings, lang))`` (theme, i18n, upload limit and allowed paths go to
    ``launch()`` in Gradio 6). ``synthesis`` is the process's door to the device, shared with the
    HTTP API when both run in one server; without one the page gets its own of ``settings.queue_limit``.
    """
    layout = Layout(settings.home, settings.pretrained_dir).ensure()
    i18n = app_i18n(lang)
    if synthesis is None:
        synthesis = SynthesisService.create(settings.queue_limit)
    ctx = UIContext(settings=settings, layout=layout, i18n=i18n, lang=lang, synthesis=synthesis)
    with gr.Blocks(title="SoVITS Studio", analytics_enabled=False) as demo:
        gr.Markdown(i18n("app.header"), elem_id="studio-header")
        with gr.Tabs():
            for tab in TABS:
                with gr.Tab(i18n(tab.TITLE_KEY), id=tab.TAB_ID, elem_id=f"tab-{tab.TAB_ID}"):
                    tab.build(ctx)
    demo.queue(default_concurrency_limit=1, max_size=64)
    return demo


@lru_cache(maxsize=8)
def app_i18n(lang: str = "auto") -> gr.I18n:
    """The translation table of the whole app (shared strings plus every tab's)."""
    return build_i18n([COMMON, *(tab.STRINGS for tab in TABS)], lang)


def launch_kwargs(settings: Settings, lang: str = "auto") -> dict:
    """Keyword arguments for ``demo.launch`` that belong to the app rather than the command line."""
    layout = Layout(settings.home, settings.pretrained_dir)
    return {
        "i18n": app_i18n(lang),
        "max_file_size": f"{settings.max_upload_mb}mb",
        # Clips and synthesized audio live in output/; only that folder is served besides uploads.
        "allowed_paths": [str(layout.output)],
        # System fonts: the default theme would fetch Google Fonts, and the studio works offline.
        "theme": gr.themes.Soft(
            font=["ui-sans-serif", "system-ui", "sans-serif"], font_mono=["ui-monospace", "monospace"]
        ),
        "footer_links": ["api", "settings"],
        "css": CSS,
    }
