"""The FastAPI application: routes, error handlers, the upload cap, shared state.

The API knows nothing of the web UI: an entry point that serves both mounts the UI on the app
returned here and hands both the same :class:`~app.services.synthesis.SynthesisService`.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from fastapi import FastAPI

from app.api import errors, metrics
from app.api.docs import install_cors, install_docs
from app.api.engine import ApiState
from app.api.routes import health, legacy, longform, openai, presets, tts, ws
from app.api.schemas import ERROR_RESPONSES
from app.api.security import FORM_OVERHEAD_BYTES, BodyLimit
from app.paths import Layout
from app.services.model_choice import ModelChoiceStore
from app.services.presets import PresetStore
from app.services.synthesis import PipelineSource, SynthesisService
from app.settings import Settings

DESCRIPTION = """
Voice-cloning text to speech (GPT-SoVITS class) over HTTP.

* **api_v2 compatible**: `GET|POST /tts` with upstream's parameter names and defaults,
  `/set_gpt_weights`, `/set_sovits_weights`. Paths resolve only inside the data folder.
* **OpenAI compatible**: `POST /v1/audio/speech` where `voice` is a saved preset.
* **Voice presets**: reference clip + what it says + models + defaults (`/presets`).
* **Legacy api.py compatible**: `GET|POST /` with `refer_wav_path`, `text_language`, `cut_punc`, ...,
  `/change_refer`, `/set_model`; `/speakers` and `/character_list` list the presets.
  A bare `GET /` (no query string) is redirected to the web UI or these docs.
* **LLM voice chat**: WebSocket `/ws/tts`: text in fragments as it is written, audio per sentence
  (protocol in the README and `app/api/routes/ws.py`).

Send the API key (when the server has one) as `Authorization: Bearer <key>` or `X-API-Key`.
Busy servers answer 503 with `Retry-After`. There is no `/control` endpoint.
"""


def create_app(
    settings: Settings,
    *,
    precision: str = "fp32",
    synthesis: SynthesisService | None = None,
    pipelines: PipelineSource | None = None,
) -> FastAPI:
    """The API for ``settings`` (data root, key, queue limit, upload cap, device).

    ``synthesis`` is the process's door to the device (the entry point shares it with the web
    UI); without one, the API gets its own of ``settings.queue_limit`` over ``pipelines``
    (default: the process-wide cache). The service stops with the app.
    """
    layout = Layout(settings.home, settings.pretrained_dir).ensure()
    if synthesis is None:
        synthesis = SynthesisService.create(settings.queue_limit, pipelines)
    elif pipelines is not None:
        raise ValueError("pass pipelines or synthesis, not both: the service owns its pipelines")
    api = ApiState(
        settings=settings,
        layout=layout,
        synthesis=synthesis,
        presets=PresetStore(layout.presets),
        models=ModelChoiceStore(layout),
        precision=precision,
    )

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        api.synthesis.shutdown(wait=False)

    app = FastAPI(
        title="SoVITS Studio API",
        description=DESCRIPTION,
        version="1",
        lifespan=lifespan,
        docs_url=None,  # install_docs: the pages load their assets from this server, not a CDN
        redoc_url=None,
    )
    app.state.api = api
    errors.install(app)
    app.add_middleware(BodyLimit, max_bytes=settings.max_upload_mb * (1 << 20) + FORM_OVERHEAD_BYTES)
    metrics.install(app, api)  # outermost: 413s are counted too
    for module in (health, tts, legacy):
        app.include_router(module.open_router, responses=ERROR_RESPONSES)
    for module in (health, tts, openai, presets, longform, legacy):
        app.include_router(module.router, responses=ERROR_RESPONSES)
    app.include_router(ws.router)  # WebSocket /ws/tts: checks the key itself (headers or ?api_key)
    install_docs(app)
    install_cors(app, settings.cors_origins)  # last: the outermost layer

    return app
