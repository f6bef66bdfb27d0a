"""A message for a person, as a key and parameters rather than only a finished English sentence.

Lower layers (inference, services, data tools) describe what happened with a :class:`Message`. It
*is* its English text (a ``str``), so the HTTP API, the CLIs, the logs and JSON files use it as
they use any string and stay English; it also carries ``key`` and ``params``, from which the web UI
renders it in the reader's language (:mod:`app.ui.messages` holds one text per key and language,
with the same ``{name}`` fields as the English template). An exception raised with a Message as
its text keeps it in ``exc.args[0]``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any


class Message(str):
    """``key``: a stable id ("tts.note.skipped_letters"); ``template``: the English ``str.format``
    template; ``params``: the values of its fields (numbers stay numbers, so each language formats
    them with the template's own format spec). Immutable, like the string it is."""

    key: str
    template: str
    params: Mapping[str, object]

    def __new__(cls, key: str, template: str, /, **params: object) -> Message:
        # key and template are positional only, so a template may have fields named "key" or "template".
        self = super().__new__(cls, template.format(**params))  # an unfilled field fails here
        object.__setattr__(self, "key", key)
        object.__setattr__(self, "template", template)
        object.__setattr__(self, "params", MappingProxyType(dict(params)))
        return self

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("a Message is immutable")

    def __reduce__(self) -> tuple[Any, ...]:  # pickles (process pools) keep the key
        return (_rebuild, (self.key, self.template, dict(self.params)))

    def render(self, template: str, params: Mapping[str, object] | None = None) -> str:
        """This message in the words of ``template`` (another language's text of ``key``), with
        ``params`` (default: its own; an interface passes them translated or shortened)."""
        return template.format(**(self.params if params is None else params))


def record(text: str) -> dict[str, object] | None:
    """What a file (a status file, a job file) keeps beside ``text`` so that a reader in another
    process words it in its own language: the key, template and values of a :class:`Message`
    whose values JSON can hold; None for plain text (nothing to keep)."""
    if not isinstance(text, Message):
        return None
    kept = {"key": text.key, "template": text.template, "params": dict(text.params)}
    try:
        json.dumps(kept)
    except (TypeError, ValueError):
        return None
    return kept


def rebuilt(kept: object, text: object) -> Message | None:
    """The :class:`Message` a file kept (:func:`record`) for a field whose text is ``text``; None
    when it kept none, or one that no longer gives that text (a file edited by hand, another version's)."""
    if not isinstance(kept, dict):
        return None
    try:
        message = Message(str(kept["key"]), str(kept["template"]), **dict(kept["params"]))
    except (KeyError, IndexError, TypeError, ValueError):
        return None
    return message if message == text else None


def said(exc: BaseException) -> str:
    """What ``exc`` says: the :class:`Message` it was raised with (its key kept, so a layer that
    re-raises it in its own error class keeps it translatable), else its text."""
    return exc.args[0] if exc.args and isinstance(exc.args[0], Message) else str(exc)


def _rebuild(key: str, template: str, params: dict[str, object]) -> Message:
    return Message(key, template, **params)
