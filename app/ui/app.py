"""Assemble the web UI from the tab registry."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import gradio as gr
from starlette.middleware import Middleware

from app.paths import Layout
from app.services.synthesis import SynthesisService
from app.settings import Settings
from app.ui.context import UIContext
from app.ui.help import STRINGS as HELP_STRINGS
from app.ui.help import attach_help
from app.ui.i18n import COMMON, build_i18n, merge
from app.ui.messages import STRINGS as MESSAGE_STRINGS
from app.ui.page_language import LANG_SCRIPT, StartLanguage
from app.ui.tabs.registry import TABS

# The actions scripts may call (gradio_client ``api_name``), each named at its event; every other
# event (refreshes, pickers, polls, page loads) is private: the page uses it, the API lists and
# accepts none of it.
PUBLIC_API = (
    "tts",
    "svc_convert",
    "slice",
    "build_dataset",
    "svc_preprocess",
    "svc_train_start",
    "svc_train_stop",
)

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
    with StudioBlocks(title="SoVITS Studio", analytics_enabled=False) as demo:
        demo.studio_lang = lang
        gr.Markdown(i18n("app.header"), elem_id="studio-header")
        with gr.Tabs():
            for tab in TABS:
                with gr.Tab(i18n(tab.TITLE_KEY), id=tab.TAB_ID, elem_id=f"tab-{tab.TAB_ID}"):
                    tab.build(ctx)
    attach_help(demo, i18n)
    demo.queue(default_concurrency_limit=1, max_size=64)
    hide_internal_events(demo)
    return demo


class StudioBlocks(gr.Blocks):
    """The page, whose API description (``view_api``, the "Use via API" page) shows labels as
    plain English text: the page's labels are translation keys the browser resolves.

    ``studio_lang`` is the language forced with ``--lang`` ("auto": each visitor's browser's);
    messages built in Python (:mod:`app.ui.messages`) read it from the event's Blocks."""

    studio_lang = "auto"

    def get_api_info(self, all_endpoints: bool = False, page: str | None = None) -> Any:
        info = super().get_api_info(all_endpoints=all_endpoints, page=page)
        english = app_texts()
        for endpoints in info.values():
            for endpoint in endpoints.values():
                for item in (*endpoint["parameters"], *endpoint["returns"]):
                    label = item.get("label")
                    if isinstance(label, gr.i18n.I18nData):
                        item["label"] = english.get(label.key, label.key)
        return info


def hide_internal_events(demo: gr.Blocks) -> None:
    """Make every event but the :data:`PUBLIC_API` actions private (not listed, not callable by
    API clients; the page itself still runs them). Raises when a public action is missing."""
    named = set()
    for fn in demo.fns.values():
        if fn.api_name in PUBLIC_API and fn.api_visibility == "public":
            named.add(fn.api_name)
        else:
            fn.api_visibility = "private"
    missing = sorted(set(PUBLIC_API) - named)
    if missing:
        raise RuntimeError(f"public API actions without an event: {missing}")


def _tables() -> list:
    """Every translation table: shared, the messages built in Python, the help lines, each tab's."""
    return [COMMON, MESSAGE_STRINGS, HELP_STRINGS, *(tab.STRINGS for tab in TABS)]


@lru_cache(maxsize=1)
def app_texts() -> dict[str, str]:
    """The English text of every translation key of the app."""
    return merge(_tables())["en"]


@lru_cache(maxsize=8)
def app_i18n(lang: str = "auto") -> gr.I18n:
    """The translation table of the whole app (shared strings plus every tab's)."""
    return build_i18n(_tables(), lang)


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
        # Keeps the page's language (the footer's switch included) in a cookie each event carries,
        # so toasts and status lines built on the server follow it; a switch redraws the page in it.
        "head": LANG_SCRIPT,
        # Starts each page in the language the visitor picked (before gradio reads the browser's).
        "app_kwargs": {"middleware": [Middleware(StartLanguage)]},
    }
