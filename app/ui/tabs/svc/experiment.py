"""What the SVC steps share: the experiment the page names, and the choices of its dropdown."""

from __future__ import annotations

from typing import Any

import gradio as gr

from app.paths import Layout, SvcExperiment
from app.services import svc as svc_service
from app.ui.messages import error, render


def experiment_tree(layout: Layout, name: str | None) -> SvcExperiment:
    """The experiment named in the UI; raises gr.Error for an empty or invalid name."""
    try:
        return layout.svc_experiment((name or "").strip())
    except ValueError as exc:
        raise error("svc.err.experiment", problem=render(exc.args[0] if exc.args else str(exc))) from exc


def experiment_choices(layout: Layout, selected: str | None = None) -> dict[str, Any]:
    """The experiment dropdown listed again (a new experiment appears), ``selected`` shown when given."""
    names = svc_service.list_experiments(layout)
    if selected is None:
        return gr.update(choices=names)
    return gr.update(choices=names, value=selected)
