"""``GET /metrics``: the server's figures in Prometheus' text format.

Each app has its own :class:`~prometheus_client.CollectorRegistry` (never the process-wide one),
so several apps in one process (tests, a UI and an API) keep their own counts. What is counted:

- HTTP requests by method, route template (``/presets/{name}``, never the raw path: a bounded set
  of labels) and status, their duration, and the 503 answers (a full queue, no model);
- each synthesis the :class:`~app.services.synthesis.SynthesisService` reports
  (:class:`~app.services.synthesis.SynthesisRecord`): time from queueing to the end, time to the
  first audio, the wait in the queue, the real-time factor, failures;
- read at scrape time, from the owners of the figures: the device queue (``DeviceMetrics``:
  pending, limit, busy, completed, refused), the loaded models (one gauge per pipeline, the models
  as labels), and training jobs (:mod:`app.services.training_figures`: step, epoch, progress,
  losses, steps per second of the running jobs and the newest finished one of each kind).

Protected by the API key when the server has one (Prometheus sends it with ``authorization``
``credentials`` in its scrape config).
"""

from __future__ import annotations

import time
from collections.abc import Iterator

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from starlette.routing import Match, Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.api.engine import ApiState
from app.api.security import require_key
from app.services.model_choice import relative_name
from app.services.synthesis import SynthesisRecord
from app.services.training_figures import training_figures

PREFIX = "studio"
# Seconds: a short sentence on a GPU (~0.1 s) up to a long text on a CPU (minutes).
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0)
# Device seconds per second of audio: a GPU ~0.05, our CPU bench 0.34-1.4, v4 on CPU ~8.
RTF_BUCKETS = (0.05, 0.1, 0.2, 0.35, 0.5, 0.75, 1.0, 1.5, 2.0, 4.0, 8.0, 16.0)
# The route label of a request no route matched (a 404): one label, whatever the path.
UNMATCHED = "<unmatched>"

router = APIRouter(tags=["probes"], dependencies=[Depends(require_key)])


class StudioMetrics:
    """The app's registry, its counters and histograms, and the collector of the owners' figures."""

    def __init__(self, api: ApiState) -> None:
        self.registry = CollectorRegistry()
        reg = self.registry
        self.requests = Counter(
            f"{PREFIX}_http_requests", "HTTP requests answered", ["method", "route", "status"], registry=reg
        )
        self.request_seconds = Histogram(
            f"{PREFIX}_http_request_duration_seconds",
            "HTTP request handling time, body sent",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=reg,
        )
        self.busy = Counter(
            f"{PREFIX}_http_unavailable", "503 answers (queue full, no model chosen)", ["route"], registry=reg
        )
        self.synthesis_seconds = Histogram(
            f"{PREFIX}_synthesis_seconds",
            "Synthesis time from queueing to the last audio",
            ["mode"],
            buckets=LATENCY_BUCKETS,
            registry=reg,
        )
        self.first_audio = Histogram(
            f"{PREFIX}_first_audio_seconds",
            "Time from queueing to the first audio (a whole synthesis: its result)",
            ["mode"],
            buckets=LATENCY_BUCKETS,
            registry=reg,
        )
        self.queue_wait = Histogram(
            f"{PREFIX}_queue_wait_seconds",
            "Time a synthesis waited for the device",
            ["mode"],
            buckets=LATENCY_BUCKETS,
            registry=reg,
        )
        self.rtf = Histogram(
            f"{PREFIX}_synthesis_real_time_factor",
            "Device seconds per second of audio",
            ["mode"],
            buckets=RTF_BUCKETS,
            registry=reg,
        )
        self.failures = Counter(
            f"{PREFIX}_synthesis_failures", "Syntheses ended by an error", ["mode"], registry=reg
        )
        reg.register(OwnersCollector(api))
        api.synthesis.observe(self.observe)

    def observe(self, record: SynthesisRecord) -> None:
        """A finished synthesis (called on the device's worker thread)."""
        if not record.ok:
            self.failures.labels(record.mode).inc()
            return
        self.synthesis_seconds.labels(record.mode).observe(record.wait_s + record.run_s)
        self.queue_wait.labels(record.mode).observe(record.wait_s)
        if record.first_audio_s is not None:
            self.first_audio.labels(record.mode).observe(record.first_audio_s)
        if record.real_time_factor is not None:
            self.rtf.labels(record.mode).observe(record.real_time_factor)

    def count_request(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests.labels(method, route, str(status)).inc()
        self.request_seconds.labels(route).observe(seconds)
        if status == 503:
            self.busy.labels(route).inc()


class OwnersCollector:
    """Figures read when scraped from where they are kept: the device queue, the pipeline cache,
    the training jobs' status files."""

    def __init__(self, api: ApiState) -> None:
        self.api = api

    def describe(self) -> list[Metric]:
        return []  # collected fresh on each scrape; nothing to check at registration

    def collect(self) -> Iterator[Metric]:
        yield from self._device()
        yield from self._training()

    def _device(self) -> Iterator[Metric]:
        device = self.api.synthesis.metrics()
        for name, doc, value in (
            ("queue_pending", "Syntheses and device jobs running or waiting", device.pending),
            ("queue_limit", "Jobs allowed to wait behind the running one before 503", device.limit),
            ("device_busy", "1 while a job is on the device", int(device.busy)),
        ):
            yield GaugeMetricFamily(f"{PREFIX}_{name}", doc, value=value)
        yield CounterMetricFamily(f"{PREFIX}_queue_completed", "Device jobs finished", value=device.completed)
        yield CounterMetricFamily(
            f"{PREFIX}_queue_refused",
            "Submissions refused because the queue was full (503)",
            value=device.refused,
        )
        loaded = GaugeMetricFamily(
            f"{PREFIX}_loaded_model",
            "Pipelines in memory (1 each), least recently used first",
            labels=["gpt", "sovits", "device", "precision"],
        )
        for spec in device.loaded:
            gpt = relative_name(spec.gpt_path, self.api.layout)
            sovits = relative_name(spec.sovits_path, self.api.layout)
            loaded.add_metric([gpt, sovits, spec.device, spec.precision], 1)
        yield loaded

    def _training(self) -> Iterator[Metric]:
        labels = ["job", "kind", "name", "state"]
        families = {
            "step": GaugeMetricFamily(
                f"{PREFIX}_training_step", "Latest logged optimiser step", labels=labels
            ),
            "epoch": GaugeMetricFamily(f"{PREFIX}_training_epoch", "Current epoch", labels=labels),
            "progress": GaugeMetricFamily(
                f"{PREFIX}_training_progress", "Fraction done (0-1)", labels=labels
            ),
            "speed": GaugeMetricFamily(
                f"{PREFIX}_training_steps_per_second", "Optimiser steps per second lately", labels=labels
            ),
        }
        loss = GaugeMetricFamily(f"{PREFIX}_training_loss", "Latest named losses", labels=[*labels, "loss"])
        for job in training_figures(self.api.layout.jobs):
            values = [job.job, job.kind, job.name, job.state]
            families["step"].add_metric(values, job.step)
            families["epoch"].add_metric(values, job.epoch)
            if job.progress is not None:
                families["progress"].add_metric(values, job.progress)
            if job.steps_per_s is not None:
                families["speed"].add_metric(values, job.steps_per_s)
            for name, value in sorted(job.losses.items()):
                loss.add_metric([*values, name], value)
        yield from families.values()
        yield loss


def route_label(scope: Scope, original: Scope) -> str:
    """The template of the route that answered (``/presets/{name}``), never the raw path.

    ``scope`` is the request's scope after routing (FastAPI's routes put themselves in it);
    ``original`` a copy from before, matched against the app's mounts (``/ui``, ``/docs-assets``).
    """
    route = scope.get("route")
    inner = route.path if route is not None and hasattr(route, "path") else ""
    for candidate in getattr(original.get("app"), "routes", ()):
        if isinstance(candidate, Mount) and candidate.matches(dict(original))[0] == Match.FULL:
            return candidate.path + inner  # a mounted app's own route (the UI's) under its mount
    return inner or UNMATCHED


class HttpMetrics:
    """ASGI middleware: counts each HTTP request by method, route template and status."""

    def __init__(self, app: ASGIApp, metrics: StudioMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        original = dict(scope)  # routing rewrites root_path in place
        status = 500  # what the client gets when the app raises before answering

        async def watched(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, watched)
        finally:
            seconds = time.perf_counter() - start
            self.metrics.count_request(scope.get("method", ""), route_label(scope, original), status, seconds)


@router.get(
    "/metrics",
    summary="Prometheus metrics: requests, queue, synthesis latency, loaded models, training",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "Prometheus text format"}},
)
def metrics(request: Request) -> Response:
    """Runs on a worker thread: reading the loaded models waits while a model loads."""
    registry = request.app.state.metrics.registry
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


def install(app: FastAPI, api: ApiState) -> None:
    """Give ``app`` its registry, the request-counting middleware and ``/metrics``."""
    app.state.metrics = StudioMetrics(api)
    app.add_middleware(HttpMetrics, metrics=app.state.metrics)
    app.include_router(router)
