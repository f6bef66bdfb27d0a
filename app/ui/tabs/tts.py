"""TTS tab: clone a voice from a 3-10 s reference clip and read text with it.

The handlers are module functions of the values they receive (``ctx`` bound at wiring); ``build``
only lays the page out and wires them. A synthesis is a job of the process's synthesis service
(``ctx.synthesis``): it waits in the same line as the HTTP API's requests, and Stop, or a page
that goes away, cancels it there.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import gradio as gr

from app.infer import history
from app.infer.pipeline import CFM_STEP_CHOICES, DEFAULT_CFM_STEPS
from app.infer.reference import decode_clip
from app.infer.request import (
    ModelLoadError,
    PipelineSpec,
    ReferenceAudioError,
    TTSError,
    TTSInputError,
    TTSRequest,
    TTSResult,
)
from app.messages import Message
from app.paths import Layout, PathOutsideRoot
from app.services.device_queue import QueueFull
from app.services.model_choice import relative_name, resolve_weight
from app.services.weights import WeightsListing, flow_matching_version, list_weights, pipeline_spec
from app.text import LanguageMode, SplitMethod
from app.ui.context import UIContext
from app.ui.messages import error_from, render, say
from app.ui.tabs.binding import bind
from app.ui.tabs.missing import missing_text, panel
from app.ui.tabs.tts_strings import STRINGS

__all__ = ["STRINGS", "TAB_ID", "TITLE_KEY", "build", "refresh_models", "steps_for_model", "synthesize"]

TAB_ID = "tts"
TITLE_KEY = "tab.tts"
HISTORY_SHOWN = 8  # newest outputs shown as players
DEFAULTS = TTSRequest(text=".", reference=b"")


def _model_choices(
    listing: WeightsListing, layout: Layout
) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(label, value) of each model; values are relative to the data folder, so a script that
    names them (gradio_client) works on any machine with the same files."""
    return (
        [(w.label, relative_name(w.path, layout)) for w in listing.gpt],
        [(w.label, relative_name(w.path, layout)) for w in listing.sovits],
    )


def model_file(layout: Layout, kind: str, value: str | None) -> Path:
    """The listed model file ``value`` names (relative to the data folder, upstream's
    ``GPT_SoVITS/pretrained_models/...`` form, a bare listed name, or an absolute path inside)."""
    try:
        return resolve_weight(layout, kind, value or "")
    except PathOutsideRoot as exc:
        raise ModelLoadError(exc.args[0]) from None


def _steps_update(version: str | None) -> dict:
    """The sample-steps control for a SoVITS model: upstream's choices and default for v3 / v4, hidden otherwise."""
    if version is None:
        return {"choices": list(CFM_STEP_CHOICES["v3"]), "value": DEFAULT_CFM_STEPS["v3"], "visible": False}
    return {"choices": list(CFM_STEP_CHOICES[version]), "value": DEFAULT_CFM_STEPS[version], "visible": True}


def _weights_message(listing: WeightsListing, layout: Layout) -> str:
    """The missing-models panel's text for ``listing`` ("" when nothing is missing)."""
    return missing_text(layout, listing.missing, listing.lacking)


def weights_text(layout: Layout) -> str:
    """The panel's text for the folders as they are now (read on each page load)."""
    return _weights_message(list_weights(layout), layout)


def _summary(result: TTSResult, wav: Path) -> str:
    """The result line, in the reader's language, and the pipeline's notes (translated), one each."""
    t = result.timings
    lines = [
        say(
            "tts.summary",
            duration=result.duration,
            segments=len(result.segments),
            seed=result.seed,
            total=t.total,
            gpt=t.gpt,
            sovits=t.sovits,
            file=wav.name,
        )
    ]
    lines += [f"- {render(note)}" for note in result.notes]
    if result.reference.cached:
        lines.append("- " + say("tts.summary.cached"))
    return "\n".join(lines)


def _error(exc: TTSError) -> gr.Error:
    """The page's error for ``exc``, with what the pipeline noted before it refused, a line each."""
    return error_from(exc, exc.notes if isinstance(exc, TTSInputError) else ())


def check_reference(ref_audio: str | None) -> str:
    """A line under the reference as soon as it is uploaded: its length and what will be done with
    it, or what is wrong with it (too short, silent, unreadable), before any model loads. The clip
    is named by its own file name."""
    if not ref_audio:
        return ""
    path = Path(ref_audio)
    try:
        clip = decode_clip(path.read_bytes(), path.name)
    except (ReferenceAudioError, OSError) as exc:
        problem = render(exc.args[0]) if isinstance(exc, ReferenceAudioError) else str(exc)
        return "⚠️ " + say("tts.ref.bad", problem=problem)
    if clip.trimmed:
        line = say(
            "tts.ref.trimmed", seconds=clip.original_seconds, start=clip.start_seconds, end=clip.end_seconds
        )
    else:
        line = say("tts.ref.ok", seconds=clip.original_seconds)
    return "\n".join(["✓ " + line, *(f"- {render(w)}" for w in clip.warnings)])


def clear_status() -> str:
    """An empty status line (after a failed synthesis: no stale "Loading models…")."""
    return ""


def history_rows(ctx: UIContext) -> list[tuple[str, str]]:
    folder = ctx.layout.output / history.FOLDER
    return [
        (str(e.wav), f"{e.created} · seed {e.seed} · {e.duration:.1f} s · {e.text[:60]}")
        for e in history.entries(folder, HISTORY_SHOWN)
    ]


# ----------------------------------------------------------------------------- handlers
def refresh_models(layout: Layout, gpt_now: str | None, sovits_now: str | None) -> tuple[Any, Any, str]:
    """The weight folders read again; the chosen models stay chosen while they are still there."""
    fresh = list_weights(layout)
    g, s = _model_choices(fresh, layout)
    keep_g = gpt_now if gpt_now in {v for _, v in g} else (g[0][1] if g else None)
    keep_s = sovits_now if sovits_now in {v for _, v in s} else (s[0][1] if s else None)
    return (
        gr.update(choices=g, value=keep_g),
        gr.update(choices=s, value=keep_s),
        _weights_message(fresh, layout),
    )


def _flow_matching(layout: Layout, sovits: str | None) -> str | None:
    try:
        return flow_matching_version(layout, model_file(layout, "sovits", sovits))
    except ModelLoadError:
        return None


def steps_for_model(layout: Layout, sovits_path: str | None) -> Any:
    """Sample steps are a v3/v4 setting: shown, with upstream's choices and default, for those models."""
    return gr.update(**_steps_update(_flow_matching(layout, sovits_path)))


def synthesize(
    ctx: UIContext,
    gpt_weights: str | None,
    sovits_weights: str | None,
    precision: str,
    ref_audio: str | None,
    ref_free: bool,
    prompt_text: str | None,
    prompt_lang: str,
    text: str | None,
    text_lang: str,
    text_split_method: str,
    top_k: float,
    top_p: float,
    temperature: float,
    repetition_penalty: float,
    speed_factor: float,
    fragment_interval: float,
    seed: float | None,
    batch_size: float,
    sample_steps: int | None,
    aux_ref_audio: list[str] | None = None,
    progress: gr.Progress = gr.Progress(),  # gradio hands each call its own tracker
) -> Iterator[tuple[Any, Any, Any]]:
    """The form's values -> a queued synthesis; yields (audio, info, history) as segments finish.

    Also the ``/tts`` action of the app's API (gradio_client): the parameters are named as the
    HTTP API's ``/tts`` names them; models are named relative to the data folder.
    """
    layout = ctx.layout
    try:
        if not ref_audio:
            raise TTSInputError(
                Message(
                    "tts.err.no_reference", "no reference clip: upload or record 3-10 s of the voice to clone"
                )
            )
        gpt, sovits = model_file(layout, "gpt", gpt_weights), model_file(layout, "sovits", sovits_weights)
        request = TTSRequest(
            text=text or "",
            reference=str(ref_audio),
            text_language=text_lang,
            prompt_text=prompt_text or "",
            prompt_language=prompt_lang,
            reference_free=bool(ref_free),
            extra_references=tuple(str(f) for f in aux_ref_audio or ()),
            split_method=text_split_method,
            top_k=int(top_k),
            top_p=float(top_p),
            temperature=float(temperature),
            repetition_penalty=float(repetition_penalty),
            speed=float(speed_factor),
            pause_seconds=float(fragment_interval),
            seed=None if seed in (None, "") else int(seed),
            batch_size=int(batch_size),
            sample_steps=int(sample_steps)
            if sample_steps and flow_matching_version(layout, sovits)
            else None,
        )
        spec = pipeline_spec(layout, gpt, sovits, ctx.settings.device, precision)
        result = yield from _follow(ctx, spec, request, progress)
    except TTSError as exc:
        raise _error(exc) from exc
    entry = history.save(layout.output / history.FOLDER, request, result, spec)
    yield str(entry.wav), _summary(result, entry.wav), history_rows(ctx)


def _follow(
    ctx: UIContext, spec: PipelineSpec, request: TTSRequest, progress: gr.Progress
) -> Generator[tuple[Any, Any, Any], None, TTSResult]:
    """Queue ``request`` on the device and report where it is; returns its :class:`TTSResult`.

    A full line is refused at once (as the API answers 503). Leaving early (Stop, a closed page)
    cancels the job: the device is free again at the next segment, not at the end of the text.
    """
    ahead = ctx.synthesis.queue.pending  # not metrics(): that waits while a model loads
    try:
        chunks = ctx.synthesis.open_stream(spec, request, token_chunks=False)
    except QueueFull as exc:
        raise error_from(exc) from exc
    result: TTSResult | None = None
    try:
        if ahead:
            progress(0.0, desc=say("tts.progress.waiting"))
            yield gr.skip(), say("tts.status.waiting", ahead=ahead), gr.skip()
        else:
            progress(0.0, desc=say("tts.progress.loading"))
            yield gr.skip(), say("tts.status.loading"), gr.skip()
        for chunk in chunks:
            if chunk.result is not None:
                result = chunk.result
            elif chunk.segment_done:
                progress((chunk.segment + 1, chunk.segments), desc=say("tts.progress.segments"))
                yield (
                    gr.skip(),
                    say("tts.status.segment", done=chunk.segment + 1, total=chunk.segments),
                    gr.skip(),
                )
    finally:
        chunks.cancel()  # a no-op once the job has finished
    assert result is not None
    return result


def show_history(ctx: UIContext, rows: list[tuple[str, str]]) -> None:
    """Players of the newest outputs (a ``gr.render`` body: runs again when ``rows`` change)."""
    if not rows:
        return
    gr.Markdown(ctx.t("tts.history"))
    with gr.Column(elem_id="tts-history"):
        for path, label in rows:
            gr.Audio(value=path, label=label, type="filepath", interactive=False, buttons=["download"])


# ----------------------------------------------------------------------------- layout
def _model_row(
    ctx: UIContext, listing: WeightsListing
) -> tuple[gr.Dropdown, gr.Dropdown, gr.Radio, gr.Button]:
    gpt_choices, sovits_choices = _model_choices(listing, ctx.layout)
    with gr.Row(equal_height=True):
        gpt = gr.Dropdown(
            gpt_choices,
            value=gpt_choices[0][1] if gpt_choices else None,
            label=ctx.t("tts.gpt"),
            scale=3,
            elem_id="tts-gpt",
        )
        sovits = gr.Dropdown(
            sovits_choices,
            value=sovits_choices[0][1] if sovits_choices else None,
            label=ctx.t("tts.sovits"),
            scale=3,
            elem_id="tts-sovits",
        )
        precision = gr.Radio(
            [(ctx.t("tts.precision.fp32"), "fp32"), (ctx.t("tts.precision.fast"), "fast")],
            value="fp32",
            label=ctx.t("tts.precision"),
            scale=2,
            elem_id="tts-precision",
        )
        refresh = gr.Button(ctx.t("tts.refresh"), scale=1, elem_id="tts-refresh")
    return gpt, sovits, precision, refresh


def _reference_column(
    ctx: UIContext, languages: list[tuple[Any, str]]
) -> tuple[gr.Audio, gr.Checkbox, gr.Textbox, gr.Dropdown, gr.File]:
    reference = gr.Audio(
        sources=["upload", "microphone"],
        type="filepath",
        label=ctx.t("tts.reference"),
        elem_id="tts-reference",
    )
    checked = gr.Markdown(elem_id="tts-ref-check")
    reference.change(check_reference, reference, checked, show_progress="hidden")
    ref_free = gr.Checkbox(False, label=ctx.t("tts.ref_free"), elem_id="tts-ref-free")
    prompt = gr.Textbox("", label=ctx.t("tts.prompt"), lines=2, elem_id="tts-prompt")
    prompt_lang = gr.Dropdown(
        languages, value=DEFAULTS.prompt_language, label=ctx.t("tts.prompt_lang"), elem_id="tts-prompt-lang"
    )
    extras = gr.File(
        label=ctx.t("tts.extra"), file_count="multiple", file_types=["audio"], elem_id="tts-extra"
    )
    return reference, ref_free, prompt, prompt_lang, extras


def _parameters(ctx: UIContext, sovits_path: str | None) -> list[gr.components.Component]:
    """The accordion's controls, in the order :func:`synthesize` takes them (split ... steps)."""
    splits = [(ctx.t(f"tts.split.{m.value}"), m.value) for m in SplitMethod]
    with gr.Accordion(ctx.t("tts.params"), open=False, elem_id="tts-params"):
        gr.Markdown(ctx.t("help.tts.params_note"), elem_id="tts-params-note")
        return [
            gr.Dropdown(splits, value=DEFAULTS.split_method, label=ctx.t("tts.split")),
            gr.Slider(1, 100, value=DEFAULTS.top_k, step=1, label=ctx.t("tts.top_k")),
            gr.Slider(0.05, 1.0, value=DEFAULTS.top_p, step=0.05, label=ctx.t("tts.top_p")),
            gr.Slider(0.0, 1.0, value=DEFAULTS.temperature, step=0.05, label=ctx.t("tts.temperature")),
            gr.Slider(0.05, 2.0, value=DEFAULTS.repetition_penalty, step=0.05, label=ctx.t("tts.penalty")),
            gr.Slider(0.6, 1.65, value=DEFAULTS.speed, step=0.05, label=ctx.t("tts.speed")),
            gr.Slider(0.0, 1.0, value=DEFAULTS.pause_seconds, step=0.05, label=ctx.t("tts.pause")),
            gr.Number(-1, precision=0, label=ctx.t("tts.seed"), elem_id="tts-seed"),
            gr.Slider(1, 20, value=DEFAULTS.batch_size, step=1, label=ctx.t("tts.batch")),
            gr.Radio(
                **_steps_update(_flow_matching(ctx.layout, sovits_path)),
                label=ctx.t("tts.steps"),
                elem_id="tts-steps",
            ),
        ]


def build(ctx: UIContext) -> None:
    listing = list_weights(ctx.layout)
    languages = [(ctx.t(f"tts.lang.{m.value}"), m.value) for m in LanguageMode]

    gr.Markdown(ctx.t("tts.title"))
    gpt, sovits, precision, refresh = _model_row(ctx, listing)
    _, missing = panel(ctx, TAB_ID, bind(weights_text, ctx.layout))
    with gr.Row():
        with gr.Column():
            reference, ref_free, prompt, prompt_lang, extras = _reference_column(ctx, languages)
        with gr.Column():
            text = gr.Textbox(label=ctx.t("tts.text"), lines=10, elem_id="tts-text")
            text_lang = gr.Dropdown(
                languages, value=DEFAULTS.text_language, label=ctx.t("tts.text_lang"), elem_id="tts-text-lang"
            )
            parameters = _parameters(ctx, sovits.value)
    with gr.Row():
        run = gr.Button(ctx.t("tts.run"), variant="primary", elem_id="tts-run")
        stop = gr.Button(ctx.t("tts.stop"), variant="stop", elem_id="tts-stop")
    output = gr.Audio(
        type="filepath",
        interactive=False,
        buttons=["download"],
        label=ctx.t("tts.output"),
        elem_id="tts-output",
    )
    info = gr.Markdown(elem_id="tts-info")
    # A callable, read again on every page load (a State's value must deep-copy, a bound ctx does not).
    past = gr.State(lambda: history_rows(ctx))

    refresh.click(bind(refresh_models, ctx.layout), [gpt, sovits], [gpt, sovits, missing])
    steps = parameters[-1]
    sovits.change(bind(steps_for_model, ctx.layout), sovits, steps, show_progress="hidden")
    # In the order synthesize() takes their values.
    form = [
        gpt,
        sovits,
        precision,
        reference,
        ref_free,
        prompt,
        prompt_lang,
        text,
        text_lang,
        *parameters,
        extras,
    ]
    event = run.click(
        bind(synthesize, ctx),
        form,
        [output, info, past],
        api_name="tts",
        api_description="Read text in the voice of a reference clip; returns the audio file and a summary.",
        concurrency_id="cpu_heavy",
    )
    event.failure(clear_status, None, info, show_progress="hidden")
    stop.click(None, cancels=[event])
    gr.render(inputs=past)(bind(show_history, ctx))
