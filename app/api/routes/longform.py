"""Long-form jobs over HTTP: submit a book, subtitles or a script; follow, stop, resume; fetch the results.

- ``POST /longform/jobs``: start a job (JSON: the source as text or base64, its file name or
  kind, the voice preset(s), options); 202 with the job's id.
- ``GET /longform/jobs``: every job; ``GET /longform/jobs/{id}``: one job with its lines and takes.
- ``POST /longform/jobs/{id}/stop`` and ``/resume``.
- ``POST /longform/jobs/{id}/lines/{line}/regenerate`` (optional new ``text``) and
  ``/lines/{line}/choose`` (``take``): one line, the rest kept; the outputs are assembled again.
- ``GET /longform/jobs/{id}/result/{kind}``: ``audio`` (wav), ``srt``, ``vtt``, ``timestamps``,
  ``fit`` (dubbing report), ``words_srt`` / ``words_vtt`` (jobs with ``word_timestamps``); ``GET /longform/jobs/{id}/lines/{line}/takes/{take}``: one take (wav).

Every take is queued on the same device line as ``/tts``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
from typing import Any, ClassVar

from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse, JSONResponse
from pydantic import Field

from app.api.errors import ApiError
from app.api.routes.tts import state
from app.api.schemas import FieldText, RequestModel
from app.api.security import require_key
from app.infer.longform import FitOptions, JobOptions, JobStateError, kind_of, parse_source
from app.infer.longform.state import MAX_TAKES, LineState
from app.infer.request import MAX_PAUSE_SECONDS, MAX_SEED, ModelLoadError, TTSInputError
from app.services.longform import JobNotFound, LongformError, LongformService, VoiceError, shared_longform
from app.services.presets import PresetError, PresetNotFound

router = APIRouter(prefix="/longform", tags=["long-form jobs"], dependencies=[Depends(require_key)])

MAX_SOURCE_CHARS = 8_000_000  # ~ a 10-hour audiobook's text, ten times over
RESULT_TYPES = {
    "audio": "audio/wav",
    "srt": "application/x-subrip",
    "vtt": "text/vtt",
    "timestamps": "application/json",
    "fit": "application/json",
    "words_srt": "application/x-subrip",
    "words_vtt": "text/vtt",
}


class JobRequest(RequestModel):
    """A long-form job to start."""

    long_fields: ClassVar[dict[str, int]] = {"source": MAX_SOURCE_CHARS, "source_base64": MAX_SOURCE_CHARS}

    source: str = Field("", description="the source as text (txt, md, srt, vtt, script)")
    source_base64: str = Field("", description="the source file's bytes in base64 (needed for epub)")
    filename: str = Field("", description="the source's file name: its suffix gives the kind")
    kind: str = Field("", description="text, markdown, epub, srt, vtt or script (instead of filename)")
    voice: str = Field(description="preset of the default voice")
    voices: dict[str, str] = Field(default_factory=dict, description="script voice name -> preset")
    title: str = "longform"
    takes: int = Field(1, ge=1, le=MAX_TAKES)
    seed: int = Field(0, ge=0, le=MAX_SEED)
    line_pause: float = Field(0.5, ge=0.0, le=MAX_PAUSE_SECONDS)
    chapter_pause: float = Field(1.5, ge=0.0, le=MAX_PAUSE_SECONDS)
    dub: bool | None = Field(None, description="fit cues to their times (default: for subtitle sources)")
    max_speed: float = Field(1.5, ge=1.0, le=4.0, description="fastest speed when dubbing")
    word_timestamps: bool = Field(
        False, description="time every word (Chinese: character): in timestamps, words_srt and words_vtt"
    )


class RegenerateRequest(RequestModel):
    text: str | None = Field(None, description="the line's new text (its takes are made anew)")


class ChooseRequest(RequestModel):
    take: int = Field(ge=0, description="index of the take to use")


def _service(request: Request) -> LongformService:
    api = state(request)
    return shared_longform(api.layout.output / "longform", api.synthesis)


def _api_error(exc: Exception, param: str | None = None) -> ApiError:
    """The answer for ``exc``; a voice's error is answered as its cause's, with the voice named."""
    message = str(exc)
    if isinstance(exc, VoiceError) and exc.cause is not None:
        exc = exc.cause
    if isinstance(exc, PresetNotFound):
        return ApiError(404, message, param=param or "voice", code="preset_not_found")
    if isinstance(exc, JobNotFound):
        return ApiError(404, message, param="job_id", code="job_not_found")
    if isinstance(exc, LongformError):
        return ApiError(409, message, param="job_id", code="job_state")
    if isinstance(exc, ModelLoadError):
        return ApiError(400, message, param=param or "voice", code="model_unavailable")
    return ApiError(400, message, param=param)


def _submit(service: LongformService, body: JobRequest, request: Request) -> str:
    api = state(request)
    if bool(body.source) == bool(body.source_base64):
        raise ApiError(
            400, "give the source as source (text) or source_base64 (bytes), exactly one", param="source"
        )
    try:
        kind = body.kind or kind_of(body.filename or "source.txt")
        data: bytes | str = body.source
        if body.source_base64:
            data = base64.b64decode(body.source_base64, validate=True)
        script = parse_source(data, kind, body.filename or "source")
    except (binascii.Error, ValueError) as exc:
        raise ApiError(400, f"source: {exc}", param="source") from None
    try:
        options = JobOptions(
            title=body.title, takes=body.takes, seed=body.seed, line_pause=body.line_pause,
            chapter_pause=body.chapter_pause, dub=script.timed if body.dub is None else body.dub,
            fit=FitOptions(max_speed=body.max_speed), word_timestamps=body.word_timestamps,
        )  # fmt: skip
    except ValueError as exc:
        raise ApiError(400, str(exc)) from None
    try:
        voices = service.script_voices(
            api.layout, script, body.voice, body.voices, api.settings.device, api.precision
        )
    except VoiceError as exc:
        param = f"voices.{exc.voice}" if exc.voice else "voice"
        raise _api_error(exc, param) from None
    try:
        return service.submit(script, voices, options)
    except (LongformError, JobStateError) as exc:
        raise ApiError(400, str(exc), param="dub") from None


@router.post("/jobs", status_code=202, summary="Start a long-form job")
async def submit_job(body: JobRequest, request: Request) -> JSONResponse:
    service = _service(request)
    job_id = await asyncio.to_thread(_submit, service, body, request)
    return JSONResponse({"id": job_id, "status": f"/longform/jobs/{job_id}"}, status_code=202)


@router.get("/jobs", summary="List long-form jobs")
async def list_jobs(request: Request) -> dict:
    jobs = await asyncio.to_thread(_service(request).list)
    return {"jobs": [_summary_json(s) for s in jobs]}


def _summary_json(summary: Any) -> dict[str, Any]:
    return {
        "id": summary.id, "title": summary.title, "kind": summary.kind, "state": summary.state,
        "done": summary.done, "total": summary.total, "error": summary.error, "created": summary.created,
    }  # fmt: skip


def _job_json(service: LongformService, job_id: str) -> dict[str, Any]:
    try:
        job = service.job(job_id)
    except LongformError as exc:
        raise _api_error(exc) from None
    out = _summary_json(service.summary(job_id))
    out["running"] = service.running(job_id)
    out["results"] = sorted(job.outputs()) if job.state.state == "done" else []
    out["lines"] = [_line_json(s) for s in job.state.lines]
    return out


def _line_json(s: LineState) -> dict[str, Any]:
    return {
        "text": s.line.text,
        "voice": s.line.voice,
        "chapter": s.line.chapter,
        "start": s.line.start,
        "end": s.line.end,
        "chosen": s.chosen,
        "takes": [
            {"seed": t.seed, "seconds": round(t.seconds, 3), "speed": round(t.speed, 3)} for t in s.takes
        ],
    }


@router.get("/jobs/{job_id}", summary="One long-form job: progress, lines, takes")
async def get_job(job_id: FieldText, request: Request) -> dict:
    return await asyncio.to_thread(_job_json, _service(request), job_id)


def _act(service: LongformService, action: str, job_id: str, *args: Any) -> dict[str, Any]:
    try:
        getattr(service, action)(job_id, *args)
    except (LongformError, JobStateError, PresetError, TTSInputError, ModelLoadError) as exc:
        raise _api_error(exc, "line" if isinstance(exc, JobStateError) else None) from None
    return _job_json(service, job_id)


@router.post("/jobs/{job_id}/stop", summary="Stop a job after its current take")
async def stop_job(job_id: FieldText, request: Request) -> dict:
    return await asyncio.to_thread(_act, _service(request), "stop", job_id)


@router.post("/jobs/{job_id}/resume", summary="Continue a stopped, failed or interrupted job")
async def resume_job(job_id: FieldText, request: Request) -> dict:
    return await asyncio.to_thread(_act, _service(request), "resume", job_id)


@router.post("/jobs/{job_id}/lines/{line}/regenerate", summary="A new take of one line (or new text)")
async def regenerate_line(job_id: FieldText, line: int, body: RegenerateRequest, request: Request) -> dict:
    return await asyncio.to_thread(_act, _service(request), "regenerate", job_id, line, body.text)


@router.post("/jobs/{job_id}/lines/{line}/choose", summary="Use one take of a line")
async def choose_take(job_id: FieldText, line: int, body: ChooseRequest, request: Request) -> dict:
    return await asyncio.to_thread(_act, _service(request), "choose", job_id, line, body.take)


@router.get(
    "/jobs/{job_id}/result/{kind}",
    summary="A result file: audio, srt, vtt, timestamps, fit, words_srt, words_vtt",
)
async def get_result(job_id: FieldText, kind: FieldText, request: Request) -> FileResponse:
    if kind not in RESULT_TYPES:
        raise ApiError(
            400, f"unknown result kind {kind!r}: use one of {', '.join(RESULT_TYPES)}", param="kind"
        )
    service = _service(request)
    try:
        outputs = await asyncio.to_thread(service.outputs, job_id)
    except LongformError as exc:
        raise _api_error(exc) from None
    if kind not in outputs:
        raise ApiError(
            404,
            f"job {job_id} has no {kind} result (fit exists for dubbing jobs, words_srt and words_vtt "
            "for jobs with word_timestamps)",
            param="kind",
        )
    path = outputs[kind]
    return FileResponse(path, media_type=RESULT_TYPES[kind], filename=path.name)


@router.get("/jobs/{job_id}/lines/{line}/takes/{take}", summary="One take of one line (wav)")
async def get_take(job_id: FieldText, line: int, take: int, request: Request) -> FileResponse:
    try:
        job = await asyncio.to_thread(_service(request).job, job_id)
    except LongformError as exc:
        raise _api_error(exc) from None
    lines = job.state.lines
    if not 0 <= line < len(lines) or not 0 <= take < len(lines[line].takes):
        raise ApiError(404, f"line {line} has no take {take}", param="take")
    return FileResponse(job.folder / lines[line].takes[take].file, media_type="audio/wav")
