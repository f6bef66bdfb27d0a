"""TTS tab: clone a voice from a 3-10 s reference clip and read text with it."""

from __future__ import annotations

from pathlib import Path

import gradio as gr

from app.infer import history
from app.infer.pipeline import CFM_STEP_CHOICES, DEFAULT_CFM_STEPS
from app.infer.request import TTSError, TTSInputError, TTSRequest, TTSResult
from app.services.pipelines import shared_pipelines
from app.services.weights import WeightsListing, flow_matching_version, list_weights, pipeline_spec
from app.text import LanguageMode, SplitMethod
from app.ui.context import UIContext
from app.ui.tabs.tts_strings import STRINGS

__all__ = ["STRINGS", "TAB_ID", "TITLE_KEY", "build"]

TAB_ID = "tts"
TITLE_KEY = "tab.tts"
HISTORY_SHOWN = 8  # newest outputs shown as players
DEFAULTS = TTSRequest(text=".", reference=b"")


def _model_choices(listing: WeightsListing) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    return (
        [(w.label, str(w.path)) for w in listing.gpt],
        [(w.label, str(w.path)) for w in listing.sovits],
    )


def _steps_update(version: str | None) -> dict:
    """The sample-steps control for a SoVITS model: upstream's choices and default for v3 / v4, hidden otherwise."""
    if version is None:
        return {"choices": list(CFM_STEP_CHOICES["v3"]), "value": DEFAULT_CFM_STEPS["v3"], "visible": False}
    return {"choices": list(CFM_STEP_CHOICES[version]), "value": DEFAULT_CFM_STEPS[version], "visible": True}


def _weights_message(listing: WeightsListing) -> str:
    if not listing.message:
        return ""
    return "**Missing models**\n\n```\n" + listing.message + "\n```"


def _summary(result: TTSResult, wav: Path) -> str:
    t = result.timings
    lines = [
        f"**{result.duration:.2f} s** in {len(result.segments)} segment(s), seed **{result.seed}**, "
        f"synthesised in {t.total:.2f} s (GPT {t.gpt:.2f} s, SoVITS {t.sovits:.2f} s) → `{wav.name}`"
    ]
    lines += [f"- {note}" for note in result.notes]
    if result.reference.cached:
        lines.append("- The reference's features came from the cache.")
    return "\n".join(lines)


def _history_rows(ctx: UIContext) -> list[tuple[str, str]]:
    folder = ctx.layout.output / history.FOLDER
    return [
        (str(e.wav), f"{e.created} · seed {e.seed} · {e.duration:.1f} s · {e.text[:60]}")
        for e in history.entries(folder, HISTORY_SHOWN)
    ]


def build(ctx: UIContext) -> None:
    layout = ctx.layout
    listing = list_weights(layout)
    gpt_choices, sovits_choices = _model_choices(listing)
    languages = [(ctx.t(f"tts.lang.{m.value}"), m.value) for m in LanguageMode]
    splits = [(ctx.t(f"tts.split.{m.value}"), m.value) for m in SplitMethod]

    gr.Markdown(ctx.t("tts.title"))
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
    missing = gr.Markdown(_weights_message(listing), elem_id="tts-missing")
    with gr.Row():
        with gr.Column():
            reference = gr.Audio(
                sources=["upload", "microphone"],
                type="filepath",
                label=ctx.t("tts.reference"),
                elem_id="tts-reference",
            )
            ref_free = gr.Checkbox(False, label=ctx.t("tts.ref_free"), elem_id="tts-ref-free")
            prompt = gr.Textbox(label=ctx.t("tts.prompt"), lines=2, elem_id="tts-prompt")
            prompt_lang = gr.Dropdown(
                languages,
                value=DEFAULTS.prompt_language,
                label=ctx.t("tts.prompt_lang"),
                elem_id="tts-prompt-lang",
            )
            extras = gr.File(
                label=ctx.t("tts.extra"), file_count="multiple", file_types=["audio"], elem_id="tts-extra"
            )
        with gr.Column():
            text = gr.Textbox(label=ctx.t("tts.text"), lines=10, elem_id="tts-text")
            text_lang = gr.Dropdown(
                languages, value=DEFAULTS.text_language, label=ctx.t("tts.text_lang"), elem_id="tts-text-lang"
            )
            with gr.Accordion(ctx.t("tts.params"), open=False, elem_id="tts-params"):
                split = gr.Dropdown(splits, value=DEFAULTS.split_method, label=ctx.t("tts.split"))
                top_k = gr.Slider(1, 100, value=DEFAULTS.top_k, step=1, label="top_k")
                top_p = gr.Slider(0.05, 1.0, value=DEFAULTS.top_p, step=0.05, label="top_p")
                temperature = gr.Slider(0.0, 1.0, value=DEFAULTS.temperature, step=0.05, label="temperature")
                penalty = gr.Slider(
                    0.05, 2.0, value=DEFAULTS.repetition_penalty, step=0.05, label=ctx.t("tts.penalty")
                )
                speed = gr.Slider(0.6, 1.65, value=DEFAULTS.speed, step=0.05, label=ctx.t("tts.speed"))
                pause = gr.Slider(0.0, 1.0, value=DEFAULTS.pause_seconds, step=0.05, label=ctx.t("tts.pause"))
                seed = gr.Number(-1, precision=0, label=ctx.t("tts.seed"), elem_id="tts-seed")
                batch = gr.Slider(1, 20, value=DEFAULTS.batch_size, step=1, label=ctx.t("tts.batch"))
                steps = gr.Radio(
                    **_steps_update(flow_matching_version(layout, sovits.value)),
                    label=ctx.t("tts.steps"),
                    elem_id="tts-steps",
                )
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
    past = gr.State(lambda: _history_rows(ctx))  # read again on every page load

    def do_refresh(gpt_now: str | None, sovits_now: str | None):
        fresh = list_weights(layout)
        g, s = _model_choices(fresh)
        keep_g = gpt_now if gpt_now in {v for _, v in g} else (g[0][1] if g else None)
        keep_s = sovits_now if sovits_now in {v for _, v in s} else (s[0][1] if s else None)
        return (
            gr.update(choices=g, value=keep_g),
            gr.update(choices=s, value=keep_s),
            _weights_message(fresh),
        )

    refresh.click(do_refresh, [gpt, sovits], [gpt, sovits, missing], api_name="tts_refresh_models")
    # Sample steps are a v3/v4 setting: shown, with upstream's choices and default, for those models.
    sovits.change(
        lambda path: gr.update(**_steps_update(flow_matching_version(layout, path))), sovits, steps,
        show_progress="hidden",
    )  # fmt: skip

    def synthesize(
        gpt_path, sovits_path, precision_v, ref_path, ref_free_v, prompt_v, prompt_lang_v, extra_files, text_v,
        text_lang_v, split_v, top_k_v, top_p_v, temperature_v, penalty_v, speed_v, pause_v, seed_v, batch_v,
        steps_v, progress=gr.Progress(),
    ):  # fmt: skip
        try:
            if not ref_path:
                raise TTSInputError("no reference clip: upload or record 3-10 s of the voice to clone")
            request = TTSRequest(
                text=text_v or "",
                reference=str(ref_path),
                text_language=text_lang_v,
                prompt_text=prompt_v or "",
                prompt_language=prompt_lang_v,
                reference_free=bool(ref_free_v),
                extra_references=tuple(str(f) for f in extra_files or ()),
                split_method=split_v,
                top_k=int(top_k_v),
                top_p=float(top_p_v),
                temperature=float(temperature_v),
                repetition_penalty=float(penalty_v),
                speed=float(speed_v),
                pause_seconds=float(pause_v),
                seed=None if seed_v in (None, "") else int(seed_v),
                batch_size=int(batch_v),
                sample_steps=int(steps_v) if steps_v and flow_matching_version(layout, sovits_path) else None,
            )
            spec = pipeline_spec(layout, gpt_path or "", sovits_path or "", ctx.settings.device, precision_v)
            progress(0.0, desc="loading models")
            yield gr.skip(), "Loading models…", gr.skip()
            pipeline = shared_pipelines().get(spec)
            progress(0.02, desc="reading the reference and the text")
            result = None
            for chunk in pipeline.stream(request, token_chunks=False):
                if chunk.result is not None:
                    result = chunk.result
                elif chunk.segment_done:
                    progress((chunk.segment + 1, chunk.segments), desc="segments")
                    yield gr.skip(), f"Segment {chunk.segment + 1} of {chunk.segments} done…", gr.skip()
        except TTSError as exc:
            raise gr.Error(str(exc)) from exc
        assert result is not None
        entry = history.save(layout.output / history.FOLDER, request, result, spec)
        yield str(entry.wav), _summary(result, entry.wav), _history_rows(ctx)

    inputs = [
        gpt, sovits, precision, reference, ref_free, prompt, prompt_lang, extras, text, text_lang, split,
        top_k, top_p, temperature, penalty, speed, pause, seed, batch, steps,
    ]  # fmt: skip
    event = run.click(
        synthesize, inputs, [output, info, past], api_name="tts_synthesize", concurrency_id="cpu_heavy"
    )
    stop.click(None, cancels=[event])

    @gr.render(inputs=past)
    def show_history(rows: list[tuple[str, str]]) -> None:
        if not rows:
            return
        gr.Markdown(ctx.t("tts.history"))
        with gr.Column(elem_id="tts-history"):
            for path, label in rows:
                gr.Audio(value=path, label=label, type="filepath", interactive=False, buttons=["download"])
