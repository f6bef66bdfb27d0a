"""The missing-models panel each tab shows when base models are not in the data folder.

One short, collapsible panel: which assets are missing (what each is, in the reader's language,
and its folder and files relative to the data folder), the one command that fetches them all, and the other way: copying the
``pretrained_models/`` folder of an existing upstream install. Worded in the reader's language on
each page load (the Markdown's value is a function gradio calls per visit).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

import gradio as gr

from app.assets import AssetStatus, asset_status, get
from app.assets.registry import DOWNLOAD_COMMAND
from app.paths import Layout
from app.services.model_choice import relative_name
from app.services.weights import WEIGHT_FILES
from app.ui.context import UIContext
from app.ui.messages import error, render, say, warning

FILES_NAMED = 4  # files listed per asset; the rest are counted


def _absent(st: AssetStatus) -> bool:
    """Whether a file of ``st`` is not there at all (or its package is not installed). A file of
    another size (a converted or newer model, or a cut download) is left to the loader to judge."""
    if st.asset.source == "bundled":
        return not st.ok
    folder = st.folder
    transformers = (
        any(fs.file.path == "config.json" for fs in st.files) and (folder / "config.json").is_file()
    )
    if transformers and any((folder / name).is_file() for name in WEIGHT_FILES):
        return False  # a transformers folder, in either weight format, as the loaders read it
    return any(fs.state == "missing" for fs in st.files)


def _files(st: AssetStatus, layout: Layout) -> str:
    names = [f"`{fs.path.name}`" for fs in st.files if fs.state == "missing"]
    shown = ", ".join(names[:FILES_NAMED])
    if len(names) > FILES_NAMED:
        shown += " " + say("missing.more", count=len(names) - FILES_NAMED)
    return shown


def missing_text(layout: Layout, statuses: Sequence[AssetStatus], lacking: Sequence[str] = ()) -> str:
    """Markdown naming what is missing and how to get it; "" when nothing is."""
    statuses = [st for st in statuses if _absent(st)]
    if not statuses and not lacking:
        return ""
    lines = []
    if lacking:
        lines.append(
            say(
                "missing.lacking",
                kinds=" + ".join(lacking),
                gpt=relative_name(layout.gpt_weights, layout),
                sovits=relative_name(layout.sovits_weights, layout),
            )
        )
    bundled = [st for st in statuses if st.asset.source == "bundled"]
    downloads = [st for st in statuses if st.asset.source != "bundled"]
    for st in downloads:
        folder = relative_name(st.folder, layout)
        lines.append(
            f"- **{st.asset.id}** ({render(st.asset.description)}) → `{folder}/`: {_files(st, layout)}"
        )
    for st in bundled:
        lines.append("- " + say("missing.package", id=st.asset.id, package=st.asset.repo_id or st.asset.id))
    if downloads:
        ids = " ".join(dict.fromkeys(st.asset.id for st in downloads))
        lines.append("\n" + say("missing.fetch", command=f"{DOWNLOAD_COMMAND} {ids}"))
        lines.append(say("missing.copy", folder=relative_name(layout.pretrained, layout)))
    return "\n".join(lines)


def asset_text(layout: Layout, asset_ids: Sequence[str]) -> str:
    """:func:`missing_text` for the given catalog assets (those a tab needs before it can run)."""
    return missing_text(layout, [asset_status(get(i), layout.pretrained) for i in asset_ids])


def missing_ids(layout: Layout, asset_ids: Sequence[str]) -> list[str]:
    """Those of ``asset_ids`` not (fully) in the data folder."""
    return [i for i in asset_ids if _absent(asset_status(get(i), layout.pretrained))]


def check_before_job(layout: Layout, asset_ids: Sequence[str], required: bool) -> None:
    """Before a job starts: refuse (``required``) or warn when a base model it uses is missing."""
    absent = missing_ids(layout, asset_ids)
    if not absent:
        return
    command = f"{DOWNLOAD_COMMAND} {' '.join(absent)}"
    if required:
        raise error("missing.err.job", ids=", ".join(absent), command=command)
    warning("missing.warn.job", ids=", ".join(absent), command=command)


def panel(ctx: UIContext, tab_id: str, text: Callable[[], str]) -> tuple[gr.Accordion, gr.Markdown]:
    """The collapsible panel, shown when ``text()`` says something is missing when the page is built.

    ``text`` runs again on every page load (in the visitor's language); a tab's refresh button can
    send a new value to the returned Markdown.
    """
    with gr.Accordion(
        ctx.t("missing.title"), open=True, visible=bool(text()), elem_id=f"{tab_id}-missing-panel"
    ) as box:
        body = gr.Markdown(text, elem_id=f"{tab_id}-missing")
    return box, body


def asset_panel(ctx: UIContext, tab_id: str, asset_ids: Sequence[str]) -> tuple[gr.Accordion, gr.Markdown]:
    """:func:`panel` for the given catalog assets."""
    return panel(ctx, tab_id, functools.partial(asset_text, ctx.layout, tuple(asset_ids)))
