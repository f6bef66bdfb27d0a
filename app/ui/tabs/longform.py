"""Long-form tab: read a book, subtitles or a script with saved voices; listen to takes, pick one per line.

Jobs run in the studio's :class:`~app.services.longform.LongformService` (each take queued on the
device line the TTS tab and the API use), so a job goes on when the page is closed and is found
again after a restart. The page shows the chosen job (a timer follows it while it runs), its lines
in a table, and for one line its takes: listen, use one, or edit the text and regenerate the line
alone. Messages with values are rendered here in the reader's language
(:func:`app.ui.messages.current_language`: ``--lang``, else the browser's ``Accept-Language``).
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

import gradio as gr
import pandas as pd

from app.infer.longform import FitOptions, JobOptions, JobStateError, Script, SourceError, read_source
from app.services.longform import LongformError, LongformService, VoiceError, shared_longform
from app.services.presets import PresetStore
from app.ui.context import UIContext
from app.ui.messages import current_language, error_in, render
from app.ui.tabs.binding import bind
from app.ui.tabs.longform_strings import STRINGS

__all__ = ["STRINGS", "TAB_ID", "TITLE_KEY", "build"]

TAB_ID = "longform"
TITLE_KEY = "tab.longform"
# Seconds between looks at a running job.
POLL_S = 2.0
_TITLE_BAD = re.compile(r'[/\\:*?"<>|\s]+')
_COLUMNS = ("line", "voice", "text", "takes", "chosen")


# ------------------------------------------------------------------------ language
def _language(ctx: UIContext) -> str:
    """The reader's language: ``--lang``, else the browser's (the event's request)."""
    return current_language()


def _say(ctx: UIContext, key: str, **params: object) -> str:
    return STRINGS[_language(ctx)][key].format(**params)


def _fail(ctx: UIContext, exc: Exception) -> gr.Error:
    problem = render(exc.args[0]) if exc.args and isinstance(exc.args[0], str) else str(exc)
    return error_in(STRINGS, "longform.err.failed", _language(ctx), problem=problem)


# --------------------------------------------------------------------------- views
def _service(ctx: UIContext) -> LongformService:
    return shared_longform(ctx.layout.output / "longform", ctx.synthesis)


def preset_choices(ctx: UIContext) -> Any:
    """The saved voices, read again (the Refresh button, page loads)."""
    names = [p.name for p in PresetStore(ctx.layout.presets).list()]
    return gr.update(choices=names, value=names[0] if names else None)


def _job_choices(ctx: UIContext) -> list[tuple[str, str]]:
    return [(f"{s.title} · {s.id}", s.id) for s in _service(ctx).list()]


def job_list(ctx: UIContext, job_id: str | None) -> Any:
    """The jobs on disk, newest first; the chosen one stays chosen."""
    choices = _job_choices(ctx)
    ids = [value for _, value in choices]
    return gr.update(choices=choices, value=job_id if job_id in ids else (ids[0] if ids else None))


def load_page(ctx: UIContext) -> tuple[Any, Any]:
    """The saved voices and the jobs, when the page loads."""
    return preset_choices(ctx), job_list(ctx, None)


def _status(ctx: UIContext, job_id: str) -> str:
    job = _service(ctx).job(job_id)
    state = job.state
    lines = [
        _say(
            ctx,
            "longform.status",
            title=state.options.title,
            state=_say(ctx, f"longform.state.{state.state}"),
            done=state.done_lines,
            total=len(state.lines),
        )
    ]
    if state.error:
        lines.append(_say(ctx, "longform.status.error", error=render(state.error)))
    fit = job.outputs().get("fit")
    if fit is not None and state.state == "done":
        import json

        unfit = json.loads(fit.read_text(encoding="utf-8"))["unfit"]
        if unfit:
            shown = ", ".join(str(u["line"]) for u in unfit)
            lines.append(_say(ctx, "longform.status.unfit", count=len(unfit), lines=shown))
    return "\n\n".join(lines)


def _table(ctx: UIContext, job_id: str) -> pd.DataFrame:
    rows = [
        (i, s.line.voice, s.line.text, len(s.takes), s.chosen + 1 if s.takes else "")
        for i, s in enumerate(_service(ctx).job(job_id).state.lines)
    ]
    headers = [_say(ctx, f"longform.col.{c}") for c in _COLUMNS]
    return pd.DataFrame(rows, columns=headers)


def _results(ctx: UIContext, job_id: str) -> tuple[str | None, list[str]]:
    outputs = _service(ctx).job(job_id).outputs()
    kinds = ("srt", "vtt", "timestamps", "fit", "words_srt", "words_vtt")
    files = [str(outputs[k]) for k in kinds if k in outputs]
    return (str(outputs["audio"]) if "audio" in outputs else None), files


def _line_choices(ctx: UIContext, job_id: str) -> list[tuple[str, int]]:
    lines = _service(ctx).job(job_id).state.lines
    return [(f"{i}: {s.line.text[:60]}", i) for i, s in enumerate(lines)]


def show_job(ctx: UIContext, job_id: str | None) -> tuple[Any, ...]:
    """Status, lines table, line choices, whole audio and files of the chosen job."""
    if not job_id:
        return "", pd.DataFrame(), gr.update(choices=[], value=None), None, [], ""
    try:
        job = _service(ctx).job(job_id)
    except LongformError as exc:
        raise _fail(ctx, exc) from None
    audio, files = _results(ctx, job_id)
    choices = _line_choices(ctx, job_id)
    marker = f"{job.state.state}:{job.state.updated}"
    return (
        _status(ctx, job_id),
        _table(ctx, job_id),
        gr.update(choices=choices, value=choices[0][1] if choices else None),
        audio,
        files,
        marker,
    )


def follow_job(ctx: UIContext, job_id: str | None, seen: str) -> tuple[Any, ...]:
    """The timer's look at the job: everything again when it changed, nothing otherwise."""
    if not job_id:
        return (gr.skip(),) * 6
    try:
        state = _service(ctx).job(job_id).state
    except LongformError:
        return (gr.skip(),) * 6
    if f"{state.state}:{state.updated}" == seen:
        return (gr.skip(),) * 6
    status, table, lines, audio, files, marker = show_job(ctx, job_id)
    return status, table, gr.update(choices=lines["choices"]), audio, files, marker


def show_line(ctx: UIContext, job_id: str | None, line: int | None) -> tuple[Any, Any, str]:
    """The takes of one line (the chosen one selected, its audio loaded) and its text."""
    if not job_id or line is None:
        return gr.update(choices=[], value=None), None, ""
    try:
        state = _service(ctx).job(job_id).state.lines[int(line)]
    except (LongformError, IndexError) as exc:
        raise _fail(ctx, exc) from None
    choices = [
        (f"#{k + 1} · {t.seconds:.2f} s · {t.seed}" + (" ✓" if k == state.chosen else ""), k)
        for k, t in enumerate(state.takes)
    ]
    value = state.chosen if state.takes else None
    return gr.update(choices=choices, value=value), show_take(ctx, job_id, line, value), state.line.text


def show_take(ctx: UIContext, job_id: str | None, line: int | None, take: int | None) -> str | None:
    """The file of one take (for the player)."""
    if not job_id or line is None or take is None:
        return None
    job = _service(ctx).job(job_id)
    takes = job.state.lines[int(line)].takes
    return str(job.folder / takes[int(take)].file) if 0 <= int(take) < len(takes) else None


def _after_edit(ctx: UIContext, job_id: str, line: int) -> tuple[Any, ...]:
    status, table, _, audio, files, marker = show_job(ctx, job_id)
    takes, take_audio, text = show_line(ctx, job_id, line)
    return status, table, audio, files, marker, takes, take_audio, text


def choose_take(ctx: UIContext, job_id: str | None, line: int | None, take: int | None) -> tuple[Any, ...]:
    """Use one take of the line in the whole audio (assembled again)."""
    if not job_id or line is None or take is None:
        raise error_in(STRINGS, "longform.err.no_job", _language(ctx))
    try:
        _service(ctx).choose(job_id, int(line), int(take))
    except (LongformError, JobStateError) as exc:
        raise _fail(ctx, exc) from None
    return _after_edit(ctx, job_id, int(line))


def regenerate_line(ctx: UIContext, job_id: str | None, line: int | None, text: str) -> tuple[Any, ...]:
    """A new take of the line (or, with edited text, its takes anew); the other lines are kept."""
    if not job_id or line is None:
        raise error_in(STRINGS, "longform.err.no_job", _language(ctx))
    current = _service(ctx).job(job_id).state.lines[int(line)].line.text
    edited = text if text and " ".join(text.split()) != current else None
    try:
        _service(ctx).regenerate(job_id, int(line), edited)
    except (LongformError, JobStateError, ValueError) as exc:
        raise _fail(ctx, exc) from None
    return _after_edit(ctx, job_id, int(line))


def _mapping(ctx: UIContext, text: str) -> dict[str, str]:
    mapping = {}
    for number, row in enumerate((text or "").splitlines(), 1):
        if not row.strip():
            continue
        name, sep, preset = row.partition("=")
        if not sep or not name.strip() or not preset.strip():
            raise error_in(STRINGS, "longform.err.mapping", _language(ctx), line=number)
        mapping[name.strip()] = preset.strip()
    return mapping


def start_job(
    ctx: UIContext,
    source: str | None,
    voice: str | None,
    script_voices: str,
    takes: float,
    dub: bool,
    max_speed: float,
    word_timestamps: bool,
    title: str,
) -> tuple[Any, str]:
    """Start reading ``source``; the job list (the new job chosen) and its status."""
    if not source:
        raise error_in(STRINGS, "longform.err.no_source", _language(ctx))
    if not voice:
        raise error_in(STRINGS, "longform.err.no_voice", _language(ctx))
    mapping = _mapping(ctx, script_voices)
    name = _TITLE_BAD.sub("_", (title or "").strip() or Path(source).stem)[:80] or "longform"
    try:
        script = _titled(read_source(source), _language(ctx))
        options = JobOptions(
            title=name,
            takes=int(takes),
            dub=bool(dub) and script.timed,
            fit=FitOptions(max_speed=float(max_speed)),
            word_timestamps=bool(word_timestamps),
        )
        voices = LongformService.script_voices(ctx.layout, script, voice, mapping, ctx.settings.device)
        job_id = _service(ctx).submit(script, voices, options)
    except (SourceError, JobStateError, VoiceError, LongformError, ValueError) as exc:
        raise _fail(ctx, exc) from None
    return gr.update(choices=_job_choices(ctx), value=job_id), _status(ctx, job_id)


def _titled(script: Script, lang: str) -> Script:
    """``script`` with the chapters the source left untitled ("Chapter 3") named in ``lang``: the
    job's files keep the title they were written with."""
    lines = tuple(dataclasses.replace(line, chapter=render(line.chapter, lang)) for line in script.lines)
    return dataclasses.replace(script, lines=lines)


def stop_job(ctx: UIContext, job_id: str | None) -> str:
    """Stop the chosen job after its current take."""
    if not job_id:
        raise error_in(STRINGS, "longform.err.no_job", _language(ctx))
    try:
        _service(ctx).stop(job_id)
    except LongformError as exc:
        raise _fail(ctx, exc) from None
    return _status(ctx, job_id)


def resume_job(ctx: UIContext, job_id: str | None) -> str:
    """Continue the chosen job from its last take."""
    if not job_id:
        raise error_in(STRINGS, "longform.err.no_job", _language(ctx))
    try:
        _service(ctx).resume(job_id)
    except LongformError as exc:
        raise _fail(ctx, exc) from None
    return _status(ctx, job_id)


# -------------------------------------------------------------------------- layout
def _form(ctx: UIContext) -> list[Any]:
    """The new job's inputs, in the order :func:`start_job` takes them."""
    with gr.Row():
        source = gr.File(
            label=ctx.t("longform.source"),
            file_types=[".txt", ".md", ".markdown", ".epub", ".srt", ".vtt", ".list", ".script"],
            type="filepath",
            elem_id="longform-source",
        )
        with gr.Column():
            voice = gr.Dropdown([], label=ctx.t("longform.voice"), elem_id="longform-voice")
            script_voices = gr.Textbox(
                "", lines=2, label=ctx.t("longform.script_voices"), elem_id="longform-cast"
            )
        with gr.Column():
            takes = gr.Slider(1, 8, value=1, step=1, label=ctx.t("longform.takes"), elem_id="longform-takes")
            dub = gr.Checkbox(True, label=ctx.t("longform.dub"), elem_id="longform-dub")
            max_speed = gr.Slider(1.0, 2.0, value=1.5, step=0.05, label=ctx.t("longform.max_speed"))
            words = gr.Checkbox(False, label=ctx.t("longform.word_timestamps"), elem_id="longform-words")
            title = gr.Textbox("", label=ctx.t("longform.name"), elem_id="longform-title")
    return [source, voice, script_voices, takes, dub, max_speed, words, title]


def build(ctx: UIContext) -> None:
    gr.Markdown(ctx.t("longform.title"))
    form = _form(ctx)
    with gr.Row():
        start = gr.Button(ctx.t("longform.start"), variant="primary", elem_id="longform-start")
        stop = gr.Button(ctx.t("longform.stop"), variant="stop", elem_id="longform-stop")
        resume = gr.Button(ctx.t("longform.resume"), elem_id="longform-resume")
        refresh = gr.Button(ctx.t("longform.refresh"), elem_id="longform-refresh")
    job = gr.Dropdown([], label=ctx.t("longform.job"), elem_id="longform-job")
    status = gr.Markdown(elem_id="longform-status")
    table = gr.Dataframe(
        interactive=False, wrap=True, label=ctx.t("longform.lines"), elem_id="longform-lines"
    )
    with gr.Row():
        line = gr.Dropdown([], label=ctx.t("longform.line"), elem_id="longform-line", scale=2)
        take = gr.Dropdown([], label=ctx.t("longform.take"), elem_id="longform-take", scale=1)
        take_audio = gr.Audio(
            type="filepath",
            interactive=False,
            label=ctx.t("longform.take_audio"),
            elem_id="longform-take-audio",
            scale=2,
        )
    with gr.Row():
        text = gr.Textbox("", lines=2, label=ctx.t("longform.text"), elem_id="longform-text", scale=4)
        choose = gr.Button(ctx.t("longform.choose"), elem_id="longform-choose", scale=1)
        regenerate = gr.Button(ctx.t("longform.regenerate"), elem_id="longform-regenerate", scale=1)
    result = gr.Audio(
        type="filepath", interactive=False, label=ctx.t("longform.result"), elem_id="longform-result"
    )
    files = gr.File(
        file_count="multiple", interactive=False, label=ctx.t("longform.files"), elem_id="longform-files"
    )
    seen = gr.State("")
    timer = gr.Timer(POLL_S)

    shown = [status, table, line, result, files, seen]
    voice = form[1]
    refresh.click(bind(preset_choices, ctx), None, voice).then(bind(job_list, ctx), job, job)
    start.click(bind(start_job, ctx), form, [job, status], concurrency_id="longform")
    job.change(bind(show_job, ctx), job, shown, show_progress="hidden")
    timer.tick(bind(follow_job, ctx), [job, seen], shown, show_progress="hidden")
    stop.click(bind(stop_job, ctx), job, status)
    resume.click(bind(resume_job, ctx), job, status)
    line.change(bind(show_line, ctx), [job, line], [take, take_audio, text], show_progress="hidden")
    take.change(bind(show_take, ctx), [job, line, take], take_audio, show_progress="hidden")
    edited = [status, table, result, files, seen, take, take_audio, text]
    choose.click(bind(choose_take, ctx), [job, line, take], edited)
    regenerate.click(bind(regenerate_line, ctx), [job, line, text], edited, concurrency_id="longform")
    gr.on(None, bind(load_page, ctx), None, [voice, job], show_progress="hidden")  # on each page load
