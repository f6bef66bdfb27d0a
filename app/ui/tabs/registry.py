"""The tab registry: the web UI shows these tabs, in this order.

To add a tab, write a module (or a package with a tab module) under :mod:`app.ui.tabs` exposing::

    TAB_ID = "tts"                     # stable id; the tab's elem_id is "tab-tts"
    TITLE_KEY = "tab.tts"              # i18n key of the tab title
    STRINGS = {"en": {...}, "zh": {...}}   # this tab's translation keys (prefix them with TAB_ID)
    def build(ctx: UIContext) -> None: ...  # create components; called inside ``with gr.Tab(...)``

then import it below and append it to ``TABS`` (one line each). Tabs appear when their capability
works: no placeholder tabs. The registry is a module of its own, not the package's ``__init__``,
so that tabs importing their sibling modules never import the registry (and so every tab) back.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from app.ui.context import UIContext
from app.ui.tabs import dataset, label, longform, train, tts
from app.ui.tabs.svc import tab as svc


class TabModule(Protocol):
    TAB_ID: str
    TITLE_KEY: str
    STRINGS: Mapping[str, Mapping[str, str]]

    def build(self, ctx: UIContext) -> None: ...


TABS: tuple[TabModule, ...] = (tts, longform, dataset, label, train, svc)
