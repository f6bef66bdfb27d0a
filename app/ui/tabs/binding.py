"""Bind a module-level event handler to what its tab shares, keeping the handler's name.

Tabs write handlers as plain functions whose first parameters are the tab's shared state (data
folders, a job manager); ``build()`` binds that state and hands the result to Gradio. Gradio names
an event's API endpoint after ``fn.__name__``, which a bare ``functools.partial`` lacks.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TypeVar

R = TypeVar("R")


def bind(fn: Callable[..., R], *bound: object) -> Callable[..., R]:
    """``fn`` with its first parameters fixed to ``bound``; the rest stay Gradio's inputs."""
    handler = functools.partial(fn, *bound)
    handler.__name__ = fn.__name__  # type: ignore[attr-defined]
    handler.__doc__ = fn.__doc__  # the API description of a public action
    return handler
