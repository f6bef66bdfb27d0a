"""Dockerfile, compose and Kubernetes files, checked structurally (no image can be built here).

They parse, and what they name exists: modules import, console commands are declared, server
arguments are accepted, ports are the server's, probe paths are routes of the app, copied paths
and config files are in the repository, Debian packages are the Makefile's.
"""

from __future__ import annotations

import importlib.util
import re
import shlex
from pathlib import Path

import pytest
import yaml

from app.api.server import _parser as server_parser
from app.settings import DEFAULT_API_PORT, Settings
from tests.test_entry_points import declared_scripts

REPO = Path(__file__).resolve().parent.parent
DEPLOY = REPO / "deploy"
DATA = "/data"


# -- helpers ------------------------------------------------------------------------------------------
def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined, comments dropped."""
    lines, current = [], ""
    for raw in (REPO / "Dockerfile").read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not current and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        current += line
        keyword, _, rest = current.partition(" ")
        lines.append((keyword.upper(), rest.strip()))
        current = ""
    return lines


def stages() -> list[list[tuple[str, str]]]:
    """The Dockerfile's instructions per stage (global ARGs before the first FROM left out)."""
    found: list[list[tuple[str, str]]] = []
    for keyword, rest in dockerfile():
        if keyword == "FROM":
            found.append([])
        if found:
            found[-1].append((keyword, rest))
    return found


def apt_packages(instructions: list[tuple[str, str]]) -> set[str]:
    packages = set()
    for keyword, rest in instructions:
        if keyword == "RUN" and "apt-get install" in rest:
            words = rest.split("apt-get install", 1)[1].split("&&")[0].split()
            packages |= {w for w in words if not w.startswith("-")}
    return packages


def makefile_apt_packages() -> set[str]:
    match = re.search(r"^APT_PACKAGES\s*:=\s*(.+)$", (REPO / "Makefile").read_text(), re.MULTILINE)
    assert match, "Makefile has no APT_PACKAGES"
    return set(match.group(1).split())


def exec_form(rest: str) -> list[str]:
    value = yaml.safe_load(rest)  # a JSON array is YAML too
    assert isinstance(value, list), f"use the exec form (a JSON array): {rest}"
    return value


def app_routes(tmp_path: Path) -> set[str]:
    from app.api.app import create_app

    return set(create_app(Settings(home=tmp_path / "home")).openapi()["paths"])


def check_module_command(argv: list[str]) -> None:
    """``python -m MODULE ...``, ``torch.distributed.run ... -m MODULE``, or a console command."""
    if argv[0] in declared_scripts():
        return
    assert argv[0] in ("python", "python3"), argv
    modules = [argv[i + 1] for i, word in enumerate(argv[:-1]) if word == "-m"]
    assert modules, f"no -m MODULE in {argv}"
    for module in modules:
        assert importlib.util.find_spec(module) is not None, f"{module} does not import"


def check_server_args(args: list[str]) -> None:
    """Arguments of ``python -m app.api``: accepted by its parser, on the server's port."""
    parsed = server_parser().parse_args(args)
    assert parsed.port == DEFAULT_API_PORT


# -- Dockerfile -----------------------------------------------------------------------------------------
def test_dockerfile_is_multi_stage_with_one_variant_argument() -> None:
    all_stages = stages()
    assert len(all_stages) >= 2
    build, runtime = all_stages[0], all_stages[-1]
    assert " AS " in build[0][1].upper() and " AS " in runtime[0][1].upper()
    text = (REPO / "Dockerfile").read_text()
    assert "ARG VARIANT=cpu" in text and "cuda)" in text and "cpu)" in text
    assert "download.pytorch.org/whl/cpu" in text and re.search(r"download\.pytorch\.org/whl/cu\d+", text)
    torch_pin = re.search(r"^torch==\S+", (REPO / "requirements.txt").read_text(), re.MULTILINE)
    assert (
        torch_pin and "grep -E '^torch=='" in text
    )  # torch at requirements.txt's pin, from the variant's index
    assert any("--from=build" in rest for keyword, rest in runtime if keyword == "COPY")


def test_dockerfile_copies_only_what_exists_and_is_not_ignored() -> None:
    ignored = {
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    for keyword, rest in dockerfile():
        if keyword != "COPY" or "--from=" in rest:
            continue
        sources = [w for w in shlex.split(rest) if not w.startswith("--")][:-1]
        for source in sources:
            assert (REPO / source).exists(), f"COPY {source}: not in the repository"
            assert source.rstrip("/") not in ignored, f"COPY {source}: excluded by .dockerignore"
    for data_folder in ("pretrained_models", "GPT_weights", "SoVITS_weights", "output", ".venv", ".git"):
        assert data_folder in ignored, f"{data_folder} would go into the build context"


def test_runtime_image_runs_the_api_as_a_user_with_the_data_volume_and_health_check(tmp_path) -> None:
    runtime = stages()[-1]
    last = {keyword: rest for keyword, rest in runtime}
    assert last["USER"] not in ("root", "0")
    assert exec_form(last["VOLUME"]) == [DATA]
    assert f"STUDIO_HOME={DATA}" in " ".join(rest for keyword, rest in runtime if keyword == "ENV")
    assert last["EXPOSE"] == str(DEFAULT_API_PORT)
    entrypoint, cmd = exec_form(last["ENTRYPOINT"]), exec_form(last["CMD"])
    check_module_command(entrypoint)
    assert entrypoint[-1] == "app.api"
    check_server_args(cmd)
    health = re.search(r"http://127\.0\.0\.1:(\d+)(/\w+)", last["HEALTHCHECK"])
    assert health and int(health.group(1)) == DEFAULT_API_PORT
    assert health.group(2) == "/health" and "/health" in app_routes(tmp_path)


def test_debian_packages_are_the_makefiles() -> None:
    wanted = makefile_apt_packages()
    all_stages = stages()
    runtime = apt_packages(all_stages[-1])
    assert runtime and runtime <= wanted, runtime - wanted
    # Everything but the browser-test packages (the browser, its driver, CJK fonts for the
    # screenshots of the zh/ja/ko pages) is at run time: the server draws no text itself.
    assert wanted - runtime == {"chromium", "chromium-driver", "fonts-noto-cjk"}
    for stage in all_stages[:-1]:
        assert apt_packages(stage) <= wanted


# -- compose --------------------------------------------------------------------------------------------
def nginx_conf() -> str:
    return (DEPLOY / "nginx.conf").read_text()


def test_compose_runs_replicas_on_one_volume_behind_a_retrying_proxy() -> None:
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    services = compose["services"]
    api, models, proxy = services["api"], services["models"], services["proxy"]
    assert str(api["deploy"]["replicas"]).strip("${}").split(":-")[-1] == "3"
    check_server_args(api["command"])
    assert (DEPLOY / api["build"]["context"] / api["build"]["dockerfile"]).is_file()
    for service in (api, models):
        assert [v.split(":")[-1] for v in service["volumes"]] == [DATA]
        assert service["environment"]["STUDIO_HOME"] == DATA
    assert api["volumes"] == models["volumes"]
    assert "studio-data" in compose["volumes"]
    # The one-shot model download finishes before the replicas start.
    assert models["restart"] == "no"
    check_module_command(models["entrypoint"])
    assert declared_scripts()[models["entrypoint"][0]] == "app.assets.cli:main"
    assert api["depends_on"]["models"]["condition"] == "service_completed_successfully"
    # The proxy's config is in the repository and points at the replicas' port.
    source, target = proxy["volumes"][0].split(":")[:2]
    assert (DEPLOY / source).resolve() == DEPLOY / "nginx.conf" and target == "/etc/nginx/nginx.conf"
    conf = nginx_conf()
    assert re.search(rf"server\s+api:{DEFAULT_API_PORT}\b", conf)
    listen = re.search(r"listen\s+(\d+);", conf)
    assert listen and proxy["ports"][0].endswith(f":{listen.group(1)}")


def test_nginx_retries_503_on_another_replica() -> None:
    conf = nginx_conf()
    retry = re.search(r"proxy_next_upstream\s+([^;]+);", conf)
    assert retry and "http_503" in retry.group(1).split() and "non_idempotent" in retry.group(1).split()
    assert re.search(r"proxy_next_upstream_tries\s+[2-9]", conf)
    assert "proxy_request_buffering on" in conf  # a POST body is kept to send it again
    assert "max_fails=0" in conf  # a busy replica is not taken out
    assert conf.count("{") == conf.count("}")


# -- Kubernetes ----------------------------------------------------------------------------------------
def manifests() -> list[dict]:
    docs = []
    for path in sorted((DEPLOY / "k8s").rglob("*.yaml")):
        docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


def by_kind(kind: str) -> list[dict]:
    return [d for d in manifests() if d["kind"] == kind]


def pod_spec(doc: dict) -> dict:
    return doc["spec"]["template"]["spec"]


def test_every_manifest_parses_into_one_namespace() -> None:
    docs = manifests()
    assert {d["kind"] for d in docs} >= {
        "Namespace", "PersistentVolumeClaim", "Deployment", "Service", "HorizontalPodAutoscaler", "Job",
    }  # fmt: skip
    namespace = by_kind("Namespace")[0]["metadata"]["name"]
    assert all(d["metadata"].get("namespace") == namespace for d in docs if d["kind"] != "Namespace")
    assert all(d["apiVersion"] and d["metadata"]["name"] for d in docs)


def test_pods_mount_the_shared_claim_as_the_data_folder() -> None:
    claim = by_kind("PersistentVolumeClaim")[0]
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]
    for doc in by_kind("Deployment") + by_kind("Job"):
        spec = pod_spec(doc)
        volumes = {v["name"]: v for v in spec["volumes"]}
        assert spec["securityContext"]["runAsNonRoot"] is True
        for container in spec["containers"]:
            mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
            assert volumes[mounts[DATA]]["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"]
            assert {"name": "STUDIO_HOME", "value": DATA} in container["env"]
            check_module_command(container["command"] + container.get("args", []))


def test_api_deployment_probes_service_and_autoscaler(tmp_path) -> None:
    deployment = by_kind("Deployment")[0]
    container = pod_spec(deployment)["containers"][0]
    assert container["command"][-1] == "app.api"
    check_server_args(container["args"])
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    routes = app_routes(tmp_path)
    for probe, path in (("readinessProbe", "/ready"), ("livenessProbe", "/health")):
        get = container[probe]["httpGet"]
        assert get["path"] == path and path in routes
        assert ports[get["port"]] == DEFAULT_API_PORT
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"] == labels
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/path"] in routes
    service = by_kind("Service")[0]
    assert service["spec"]["selector"] == labels
    assert all(p["targetPort"] in ports for p in service["spec"]["ports"])
    hpa = by_kind("HorizontalPodAutoscaler")[0]
    assert hpa["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    assert hpa["spec"]["metrics"][0]["resource"]["name"] == "cpu"
    ingress = by_kind("Ingress")[0]
    assert "http_503" in ingress["metadata"]["annotations"]["nginx.ingress.kubernetes.io/proxy-next-upstream"]
    backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend["name"] == service["metadata"]["name"]


@pytest.mark.parametrize("command", ["sovits-studio-download", "app.train.sovits"])
def test_jobs_download_models_and_train_on_a_gpu(command: str) -> None:
    jobs = [j for j in by_kind("Job") if command in str(pod_spec(j)["containers"][0])]
    assert len(jobs) == 1
    spec = pod_spec(jobs[0])
    container = spec["containers"][0]
    assert spec["restartPolicy"] in ("OnFailure", "Never")
    if command == "app.train.sovits":
        assert container["resources"]["limits"]["nvidia.com/gpu"] >= 1
        assert container["image"].endswith(":cuda")
        assert "--config" in container["args"]
    else:
        assert container["image"].endswith(":cpu")
