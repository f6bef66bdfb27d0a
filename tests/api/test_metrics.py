"""``/metrics``: Prometheus text that parses, moves with requests and syntheses, and needs the key."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from app.api.app import create_app
from app.runstatus import RunStatus, append_metrics, write_status
from app.services.jobs import JobRecord, JobSpec, _record_to_json
from app.services.training_figures import throughput
from app.settings import Settings
from tests.api.conftest import tts_query


def scrape(client: TestClient, **headers: str) -> dict[tuple[str, tuple], float]:
    """Every sample of /metrics: (name, sorted labels) -> value."""
    response = client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: dict, metric: str, /, **labels: str) -> float:
    return samples.get((metric, tuple(sorted(labels.items()))), 0.0)


def test_requests_are_counted_by_route_template_and_status(client) -> None:
    before = scrape(client)
    for _ in range(3):
        assert client.get("/health").status_code == 200
    assert client.get("/presets/nobody").status_code == 404
    assert client.get("/no/such/path").status_code == 404
    after = scrape(client)
    health = {"method": "GET", "route": "/health", "status": "200"}
    assert (
        value(after, "studio_http_requests_total", **health)
        - value(before, "studio_http_requests_total", **health)
        == 3
    )
    assert (
        value(after, "studio_http_requests_total", method="GET", route="/presets/{name}", status="404") == 1
    )
    assert value(after, "studio_http_requests_total", method="GET", route="<unmatched>", status="404") == 1
    assert not any("nobody" in str(labels) or "/no/such" in str(labels) for _, labels in after)
    assert value(after, "studio_http_request_duration_seconds_count", route="/health") >= 3
    assert value(after, "studio_queue_limit") == 4


def test_syntheses_move_the_histograms_and_the_loaded_models(client) -> None:
    before = scrape(client)
    assert value(before, "studio_synthesis_seconds_count", mode="whole") == 0
    assert client.get("/tts", params=tts_query()).status_code == 200
    assert client.get("/tts", params=tts_query(streaming_mode=True)).status_code == 200
    after = scrape(client)
    for mode in ("whole", "stream"):
        assert value(after, "studio_synthesis_seconds_count", mode=mode) == 1
        assert value(after, "studio_first_audio_seconds_count", mode=mode) == 1
        assert value(after, "studio_synthesis_real_time_factor_count", mode=mode) == 1
        assert value(after, "studio_synthesis_seconds_sum", mode=mode) > 0
    assert value(after, "studio_queue_completed_total") >= 2
    loaded = [labels for name, labels in after if name == "studio_loaded_model"]
    assert loaded and all(dict(labels)["gpt"].endswith(".ckpt") for labels in loaded)
    assert not any(dict(labels)["gpt"].startswith("/") for labels in loaded)  # relative to the data folder


def test_a_full_queue_counts_503s(make_client) -> None:
    client = make_client(queue_limit=1)
    synthesis = client.app.state.api.synthesis
    release = threading.Event()
    running = synthesis.run(lambda: release.wait(30))
    waiting = synthesis.run(lambda: None)
    try:
        assert client.get("/tts", params=tts_query()).status_code == 503
    finally:
        release.set()
        running.result(30)
        waiting.result(30)
    samples = scrape(client)
    assert value(samples, "studio_queue_refused_total") == 1
    assert value(samples, "studio_http_unavailable_total", route="/tts") == 1
    assert value(samples, "studio_http_requests_total", method="GET", route="/tts", status="503") == 1


def test_metrics_need_the_key_when_one_is_set(make_client) -> None:
    client = make_client(api_key="sesame")
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers={"X-API-Key": "wrong"}).status_code == 401
    samples = scrape(client, Authorization="Bearer sesame")
    # The refused scrapes are counted too, under their route.
    assert value(samples, "studio_http_requests_total", method="GET", route="/metrics", status="401") == 2


def test_apps_in_one_process_keep_their_own_counts(tmp_path) -> None:
    with (
        TestClient(create_app(Settings(home=tmp_path / "a"))) as one,
        TestClient(create_app(Settings(home=tmp_path / "b"))) as two,
    ):
        one.get("/health")
        one.get("/health")
        two.get("/health")
        health = {"method": "GET", "route": "/health", "status": "200"}
        assert value(scrape(one), "studio_http_requests_total", **health) == 2
        assert value(scrape(two), "studio_http_requests_total", **health) == 1


def write_job(jobs: Path, job_id: str, run_dir: Path, *, kind: str, state: str) -> None:
    spec = JobSpec(module=f"app.train.{kind}", config=run_dir / "run.yaml", name=f"{kind}: voice", kind=kind)
    record = JobRecord(id=job_id, spec=spec, created=time.time(), state=state, pid=None, returncode=0)
    (jobs / job_id).mkdir(parents=True)
    (jobs / job_id / "job.json").write_text(_record_to_json(record))


def test_training_jobs_show_step_loss_and_throughput(tmp_path) -> None:
    home = tmp_path / "home"
    app = create_app(Settings(home=home))
    jobs = app.state.api.layout.jobs
    run = home / "output" / "voice" / "logs_s2_v2"
    run.mkdir(parents=True)
    (run / "run.yaml").write_text("{}")
    write_status(run / "status.json", RunStatus(state="done", stage="sovits", epoch=2, step=40, total_steps=40, losses={"loss_g": 1.5}))  # fmt: skip
    t0 = time.time()
    rows = [{"step": step, "epoch": 1, "time": t0 + 2 * i} for i, step in enumerate((10, 20, 30, 40))]
    (run / "metrics.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    write_job(jobs, "20260101-000000-aaaaaa", run, kind="sovits", state="ended")
    write_job(jobs, "20250101-000000-bbbbbb", run, kind="sovits", state="ended")  # older: left out
    with TestClient(app) as client:
        samples = scrape(client)
    labels = {"job": "20260101-000000-aaaaaa", "kind": "sovits", "name": "sovits: voice", "state": "done"}
    assert value(samples, "studio_training_step", **labels) == 40
    assert value(samples, "studio_training_epoch", **labels) == 2
    assert value(samples, "studio_training_progress", **labels) == 1.0
    assert value(samples, "studio_training_loss", **labels, loss="loss_g") == 1.5
    assert abs(value(samples, "studio_training_steps_per_second", **labels) - 5.0) < 1e-6
    assert not any("bbbbbb" in str(labels) for _, labels in samples)


def test_throughput_counts_the_last_run_of_increasing_steps(tmp_path) -> None:
    path = tmp_path / "metrics.jsonl"
    assert throughput(path) is None
    for step, when in ((1, 0.0), (2, 10.0), (3, 20.0), (2, 100.0), (3, 101.0), (4, 102.0)):
        append_metrics(path, step=step, epoch=1, losses={})
        rows = path.read_text().splitlines()
        row = json.loads(rows[-1]) | {"time": when}
        path.write_text("\n".join([*rows[:-1], json.dumps(row)]) + "\n")
    assert throughput(path) == 1.0  # steps 2 -> 4 in 2 s after the resume
    path.write_text('{"step": 1, "time": 0}\nnot json\n{"step": 5, "ti')
    assert throughput(path) is None


def test_a_mounted_app_is_counted_under_its_mount_path(tmp_path) -> None:
    from fastapi import FastAPI

    app = create_app(Settings(home=tmp_path / "home"))
    inner = FastAPI()
    inner.get("/page/{anything}")(lambda anything: {"page": anything})
    app.mount("/ui", inner)  # as the web UI is mounted
    with TestClient(app) as client:
        assert client.get("/ui/page/one").status_code == 200
        assert client.get("/ui/page/two").status_code == 200
        samples = scrape(client)
    labels = {"method": "GET", "route": "/ui/page/{anything}", "status": "200"}
    assert value(samples, "studio_http_requests_total", **labels) == 2
