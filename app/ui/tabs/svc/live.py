"""The live step of the SVC tab: the microphone in, the converted voice played back as it comes.

The browser streams microphone chunks (Gradio streaming audio, every :data:`CHUNK_SECONDS`) to
:func:`live_step`, which feeds them to a :class:`app.infer.svc.live.LiveConverter` kept in the
page's state (a new one when the options change) and answers with the converted audio completed
so far; the page plays it back gapless with Web Audio (:data:`PLAY_JS`). Each chunk's conversion
runs through the synthesis service's ``run()`` (the device's one line). The figures beside the
microphone show the latency (the algorithmic part: block + cross-fade + SOLA search; the
browser's chunking; the measured processing time), the blocks converted and how the processing
keeps up with real time.
"""

from __future__ import annotations

import base64
import time
from dataclasses import dataclass

import gradio as gr
import numpy as np

from app.audio.io import AudioError
from app.audio.pitch import TRACKERS
from app.infer.svc.live import MIN_BLOCK_SECONDS, LiveConverter, LiveOptions
from app.infer.svc.request import SvcInputError, SvcModelError
from app.services import svc as svc_service
from app.services.device_queue import QueueFull
from app.ui.context import UIContext
from app.ui.messages import error, error_from
from app.ui.tabs.binding import bind
from app.ui.tabs.svc import convert

CHUNK_SECONDS = 0.25  # how often the browser sends microphone audio
# Runs in the page for every converted chunk: decodes the payload (see _payload) and schedules it
# right after the previous one on one AudioContext, so the chunks play back without gaps; returns
# the seconds played back so far (shown under the microphone).
PLAY_JS = """
(payload) => {
  if (!payload) return null;
  const [seq, rate, data] = payload.split(":");
  const live = window.svcLive || (window.svcLive = {ctx: new AudioContext(), next: 0, played: 0});
  if (live.ctx.state === "suspended") live.ctx.resume();
  const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
  const pcm = new Int16Array(bytes.buffer);
  const buffer = live.ctx.createBuffer(1, pcm.length, Number(rate));
  const channel = buffer.getChannelData(0);
  for (let i = 0; i < pcm.length; i++) channel[i] = pcm[i] / 32768;
  const source = live.ctx.createBufferSource();
  source.buffer = buffer;
  source.connect(live.ctx.destination);
  live.next = Math.max(live.next, live.ctx.currentTime + 0.02);
  source.start(live.next);
  live.next += buffer.duration;
  live.played += buffer.duration;
  return Math.round(live.played * 100) / 100;
}
"""

STRINGS = {
    "en": {
        "svc.live.intro": "Speak or sing into the microphone: the converted voice plays back below, "
        "a little later (the latency shown). Use headphones so the output does not feed back into the microphone.",
        "svc.live.mic": "Microphone",
        "svc.live.output": "Converted voice played back (s)",
        "svc.live.block": "Block length (s): longer keeps up on slower machines, shorter answers sooner",
        "svc.live.context": "Lookback per block (s)",
        "svc.live.crossfade": "Cross-fade between blocks (s)",
        "svc.live.silence": "Silence threshold (dBFS): quieter input comes out silent",
        "svc.live.latency": "Latency (ms): the three below together",
        "svc.live.algorithmic": "Block + cross-fade + search (ms)",
        "svc.live.chunk": "Browser chunks (ms)",
        "svc.live.processing": "Processing of the last chunk (ms, measured)",
        "svc.live.blocks": "Blocks converted",
        "svc.live.rtf": "Processing / real time (above 1: falling behind; raise the block length or use fast)",
    },
    "zh": {
        "svc.live.intro": "对着麦克风说话或唱歌：转换后的声音会在下方稍后播放（延迟见下）。请戴耳机，以免输出回授进麦克风。",
        "svc.live.mic": "麦克风",
        "svc.live.output": "已播放的转换声音（秒）",
        "svc.live.block": "块长度（秒）：越长越能在慢机器上跟上，越短响应越快",
        "svc.live.context": "每块的回看长度（秒）",
        "svc.live.crossfade": "块间交叉淡化（秒）",
        "svc.live.silence": "静音阈值 (dBFS)：更安静的输入输出为静音",
        "svc.live.latency": "延迟（毫秒）：下面三项之和",
        "svc.live.algorithmic": "块 + 交叉淡化 + 搜索（毫秒）",
        "svc.live.chunk": "浏览器分块（毫秒）",
        "svc.live.processing": "最近一块的处理时间（毫秒，实测）",
        "svc.live.blocks": "已转换的块数",
        "svc.live.rtf": "处理时间 / 实时（大于 1：跟不上；请加大块长度或用快速精度）",
    },
}


@dataclass
class LiveSession:
    """One page's live conversion: the converter and what it was opened with."""

    options: LiveOptions
    input_rate: int
    converter: LiveConverter
    processing: float = 0.0  # seconds the last chunk that completed a block took, queue included
    sent: int = 0  # chunks answered


def _mono(chunk: tuple[int, np.ndarray]) -> tuple[int, np.ndarray]:
    """Gradio's (rate, int16 or float samples, mono or (T, C)) -> (rate, float32 mono)."""
    sr, data = chunk
    data = np.asarray(data)
    if np.issubdtype(data.dtype, np.integer):
        data = data.astype(np.float32) / float(np.iinfo(data.dtype).max + 1)
    if data.ndim == 2:
        data = data.mean(axis=1)
    return int(sr), data.astype(np.float32, copy=False)


def _payload(audio: np.ndarray, sr: int, seq: int) -> str:
    """``"<seq>:<rate>:<base64 of int16 PCM>"``: what :data:`PLAY_JS` schedules (``seq`` makes
    every payload a change, even two equal ones)."""
    pcm = (np.clip(audio, -1.0, 1.0) * 32767).astype("<i2")
    return f"{seq}:{sr}:{base64.b64encode(pcm.tobytes()).decode('ascii')}"


@dataclass(frozen=True)
class LatencyFigures:
    """What the status row shows (ms, except the counts)."""

    total_ms: float  # the three below together
    algorithmic_ms: float  # block + cross-fade + SOLA search
    chunk_ms: float  # the browser's chunking
    processing_ms: float  # the last chunk's conversion, measured (the device's queue included)
    blocks: int
    realtime_factor: float  # mean processing time per block / block length

    @classmethod
    def of(cls, session: LiveSession) -> LatencyFigures:
        s = session.converter.stats
        algorithmic, chunk, processing = (
            1000 * s.latency_seconds,
            1000 * CHUNK_SECONDS,
            1000 * session.processing,
        )
        return cls(
            round(algorithmic + chunk + processing), round(algorithmic), round(chunk), round(processing), s.blocks,
            round(s.realtime_factor, 2),
        )  # fmt: skip


def live_step(
    ctx: UIContext,
    chunk: tuple[int, np.ndarray] | None,
    session: LiveSession | None,
    label: str | None,
    speaker: str | None,
    transpose: float,
    f0_method: str,
    auto_f0: bool,
    noise_scale: float,
    cluster_ratio: float,
    precision: str,
    block_seconds: float,
    context_seconds: float,
    crossfade_seconds: float,
    silence_db: float,
) -> tuple[str | None, LiveSession | None, float, float, float, float, int, float]:
    """One microphone chunk in; (the converted audio as a :func:`_payload`, the session, the latency figures)."""
    if chunk is None:
        return None, session, *(gr.skip() for _ in range(6))
    choice = convert._choices(ctx.layout).get(label or "")
    if choice is None:
        raise error("svc.err.no_model")
    sr, samples = _mono(chunk)
    options = LiveOptions(
        model=choice.model, config=choice.config, speaker=speaker, transpose=float(transpose), f0_method=f0_method,
        auto_f0=bool(auto_f0), noise_scale=float(noise_scale), cluster_ratio=float(cluster_ratio), precision=precision,
        block_seconds=float(block_seconds), context_seconds=float(context_seconds),
        crossfade_seconds=float(crossfade_seconds), silence_db=float(silence_db),
    )  # fmt: skip
    t0 = time.perf_counter()
    try:
        if session is None or session.options != options or session.input_rate != sr:
            pipeline = svc_service.pipeline(ctx.layout.pretrained, ctx.settings.device)
            converter = ctx.synthesis.run(lambda: LiveConverter(pipeline, options, input_rate=sr)).result()
            session = LiveSession(options, sr, converter)
        out = ctx.synthesis.run(lambda: session.converter.feed(samples)).result()
    except QueueFull as exc:
        raise error_from(exc) from exc
    except (SvcInputError, SvcModelError, AudioError, ValueError) as exc:
        raise error_from(exc) from exc
    if len(out):  # the chunks that complete a block are the ones that cost (and set the latency)
        session.processing = time.perf_counter() - t0
    session.sent += 1
    audio = _payload(out, session.converter.output_rate, session.sent) if len(out) else gr.skip()
    f = LatencyFigures.of(session)
    return (
        audio,
        session,
        f.total_ms,
        f.algorithmic_ms,
        f.chunk_ms,
        f.processing_ms,
        f.blocks,
        f.realtime_factor,
    )


def live_stop() -> LiveSession | None:
    """Recording stopped: the next recording starts a fresh session (no stale audio in the window)."""
    return None


def build(ctx: UIContext) -> None:
    """The step's components, wired to the handlers above."""
    models = convert._choices(ctx.layout)
    first = next(iter(models), None)
    speakers = convert._speakers(models.get(first)) if first else []
    gr.Markdown(ctx.t("svc.live.intro"))
    with gr.Row():
        with gr.Column():
            with gr.Row():
                model = gr.Dropdown(
                    list(models), value=first, label=ctx.t("svc.cv.model"), elem_id="svc-live-model", scale=4
                )
                refresh = gr.Button("↻", scale=0, min_width=40, elem_id="svc-live-refresh")
            speaker = gr.Dropdown(
                speakers, value=speakers[0] if speakers else None, label=ctx.t("svc.cv.speaker"),
                elem_id="svc-live-speaker",
            )  # fmt: skip
            mic = gr.Audio(
                sources=["microphone"],
                streaming=True,
                type="numpy",
                label=ctx.t("svc.live.mic"),
                elem_id="svc-live-mic",
            )
            # Converted audio travels as text to the page, where PLAY_JS queues it gapless (Web Audio).
            payload = gr.Textbox(visible=False, elem_id="svc-live-payload")
            played = gr.Number(label=ctx.t("svc.live.output"), interactive=False, elem_id="svc-live-played")
            with gr.Row():
                figures = [
                    gr.Number(label=ctx.t(f"svc.live.{name}"), interactive=False, elem_id=f"svc-live-{name}")
                    for name in ("latency", "algorithmic", "chunk", "processing", "blocks", "rtf")
                ]
        with gr.Column():
            transpose = gr.Slider(
                -24, 24, value=0, step=1, label=ctx.t("svc.cv.transpose"), elem_id="svc-live-transpose"
            )
            f0 = gr.Dropdown(sorted(TRACKERS), value="pm", label=ctx.t("svc.cv.f0"), elem_id="svc-live-f0")
            auto_f0 = gr.Checkbox(value=False, label=ctx.t("svc.cv.auto_f0"))
            noise = gr.Slider(0.0, 1.0, value=0.4, step=0.05, label=ctx.t("svc.cv.noise"))
            cluster = gr.Slider(0.0, 1.0, value=0.0, step=0.05, label=ctx.t("svc.cv.cluster"))
            precision = gr.Radio(
                [(ctx.t("svc.cv.precision.fp32"), "fp32"), (ctx.t("svc.cv.precision.fast"), "fast")],
                value="fp32", label=ctx.t("svc.cv.precision"),
            )  # fmt: skip
            block = gr.Slider(
                MIN_BLOCK_SECONDS,
                2.0,
                value=0.5,
                step=0.05,
                label=ctx.t("svc.live.block"),
                elem_id="svc-live-block",
            )
            context = gr.Slider(0.0, 2.0, value=1.0, step=0.1, label=ctx.t("svc.live.context"))
            crossfade = gr.Slider(0.0, 0.2, value=0.05, step=0.01, label=ctx.t("svc.live.crossfade"))
            silence = gr.Slider(-80, -20, value=-50, step=1, label=ctx.t("svc.live.silence"))
    session = gr.State(None)

    refresh.click(bind(convert.refresh_models, ctx.layout), [model], [model])
    model.change(bind(convert.model_changed, ctx.layout), [model], [speaker])
    inputs = [mic, session, model, speaker, transpose, f0, auto_f0, noise, cluster, precision, block, context, crossfade, silence]  # fmt: skip
    mic.stream(
        bind(live_step, ctx), inputs, [payload, session, *figures], stream_every=CHUNK_SECONDS, time_limit=None,
        api_name=False,
    )  # fmt: skip
    payload.change(None, [payload], [played], js=PLAY_JS)
    mic.stop_recording(live_stop, None, [session], api_name=False)
