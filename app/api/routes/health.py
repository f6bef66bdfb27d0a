"""Probes and listings: ``/health`` (process up), ``/ready`` (models usable), ``/weights``."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from app.api.errors import relative_to_data
from app.api.routes.tts import state
from app.api.security import require_key
from app.services.model_choice import relative_name
from app.services.weights import list_weights

open_router = APIRouter(tags=["probes"])
router = APIRouter(tags=["models"], dependencies=[Depends(require_key)])


@open_router.get("/health", summary="Liveness: the process answers")
async def health() -> dict:
    return {"status": "ok"}


@open_router.get(
    "/ready",
    summary="Readiness: models and encoders are in place",
    responses={503: {"description": "not ready: the body's `problems` say what is missing"}},
)
async def ready(request: Request) -> JSONResponse:
    """200 when a synthesis could start now: current models found, HuBERT and BERT present.

    Nothing is loaded (a probe must stay cheap); files are checked for presence. 503 otherwise,
    with what is missing. ``queue`` is the device's line, the web UI's requests included.
    """
    api = state(request)
    listing = list_weights(api.layout)
    problems: list[str] = []
    device = api.synthesis.metrics()
    queue = {
        "pending": device.pending,
        "limit": device.limit,
        "busy": device.busy,
        "completed": device.completed,
        "refused": device.refused,
    }
    body: dict = {"ready": False, "queue": queue}
    try:
        gpt, sovits = api.models.current(listing)
        body["gpt_weights"] = relative_name(gpt, api.layout)
        body["sovits_weights"] = relative_name(sovits, api.layout)
    except ValueError as exc:
        problems.append(str(exc))
    if not listing.ready:
        problems.append(listing.message or f"the HuBERT encoder is missing from {listing.hubert_dir.name}/")
    if not (listing.bert_dir / "config.json").is_file():
        body["warnings"] = [
            f"Chinese text needs the BERT model in pretrained_models/{listing.bert_dir.name}/"
        ]
    body["loaded"] = [
        {
            "gpt_weights": relative_name(s.gpt_path, api.layout),
            "sovits_weights": relative_name(s.sovits_path, api.layout),
        }
        for s in device.loaded
    ]
    body["ready"] = not problems
    if problems:
        body["problems"] = [relative_to_data(p, api.layout) for p in problems]
    return JSONResponse(body, status_code=200 if not problems else 503)


@router.get("/weights", summary="Models that can be chosen, and the current ones")
async def weights(request: Request) -> dict:
    api = state(request)
    listing = list_weights(api.layout)
    choice = api.models.read()
    return {
        "gpt": [
            {"path": relative_name(w.path, api.layout), "label": w.label, "base": w.base} for w in listing.gpt
        ],
        "sovits": [
            {"path": relative_name(w.path, api.layout), "label": w.label, "base": w.base}
            for w in listing.sovits
        ],
        "current": {"gpt_weights": choice.gpt, "sovits_weights": choice.sovits},
        "missing": relative_to_data(listing.message, api.layout) if listing.message else listing.message,
    }
