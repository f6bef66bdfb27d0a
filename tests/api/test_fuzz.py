"""Property-based fuzzing of the whole HTTP API, built from its OpenAPI document (hypothesis).

Each operation of ``app.openapi()`` gets requests made from its documented parameters and
bodies (JSON, multipart, query, path): values of the documented types and their bounds, mixed
with wrong types, NUL and other control characters, lone surrogates, over-long strings, paths out
of the data folder, and a few real values (the reference clip, the model files, languages) so
that some requests get as far as synthesis with the tiny models. Every answer must be below 500,
have a documented status, and match the document: an ``ErrorBody`` naming the field for a 400
of bad input, a documented media type for a success; no answer holds the data folder's absolute
path.
"""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.api.app import create_app
from app.api.schemas import MAX_TEXT_CHARS, ErrorBody
from app.settings import Settings
from tests.infer.tiny import GPT_NAME, SOVITS_NAME, build_home, voice

EXAMPLES_PER_OPERATION = 40
# Real values, so some requests pass validation and reach the pipeline.
REAL = (
    "ref.wav", "refs/high.wav", f"GPT_weights/{GPT_NAME}", f"SoVITS_weights/{SOVITS_NAME}", "zh", "en",
    "auto", "cut0", "cut5", "wav", "raw", "pcm", "mp3", "tts-1", "voice", "你好，欢迎。", "true", "2",
)  # fmt: skip
NASTY = (
    "", " ", "\x00", "a\x00b", "\x1b[31m", "\x7f", "\u200b", "\u202e", "../ref.wav", "../../etc/passwd",
    "/etc/passwd", "C:\\Windows\\win.ini", "%00", "x" * 300, "y" * (MAX_TEXT_CHARS + 5), "-1", "1e309",
    "NaN", "null", "[]", "{}", "😀" * 3, "voice/../../x",
)  # fmt: skip
SURROGATES = ("\ud800", "a\udfffb")


def strings(json_body: bool) -> st.SearchStrategy[str]:
    """Text: real values, nasty values, control characters, any Unicode (lone surrogates in JSON only)."""
    options = [
        st.sampled_from(REAL),
        st.sampled_from(NASTY),
        st.text(st.characters(max_codepoint=0x9F), max_size=8),  # C0/C1 control characters
        st.text(max_size=12),
    ]
    if json_body:
        options.append(st.sampled_from(SURROGATES))
    return st.one_of(options)


def anything(json_body: bool) -> st.SearchStrategy[Any]:
    """A value of any JSON type (the wrong type, for most fields)."""
    scalars = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(2**70), 2**70),
        st.floats(allow_nan=True, allow_infinity=True),
        strings(json_body),
    )
    return st.one_of(
        scalars, st.lists(scalars, max_size=3), st.dictionaries(st.text(max_size=4), scalars, max_size=2)
    )


class Schemas:
    """Strategies from the OpenAPI document's JSON schemas ($ref resolved)."""

    def __init__(self, document: dict[str, Any], clips: st.SearchStrategy[tuple[str, bytes]]) -> None:
        self.document = document
        self.clips = clips

    def resolve(self, schema: dict[str, Any]) -> dict[str, Any]:
        while "$ref" in schema:
            node: Any = self.document
            for part in schema["$ref"].removeprefix("#/").split("/"):
                node = node[part]
            schema = node
        return schema

    def value(self, schema: dict[str, Any], json_body: bool) -> st.SearchStrategy[Any]:
        """The documented type most of the time, any type sometimes."""
        schema = self.resolve(schema)
        if "anyOf" in schema or "oneOf" in schema:
            typed = st.one_of([self.value(s, json_body) for s in schema.get("anyOf", schema.get("oneOf"))])
            return typed
        kind = schema.get("type")
        if kind == "string" and schema.get("format") == "binary":
            return self.clips
        if kind == "string":
            typed = strings(json_body)
            if "enum" in schema:
                typed = st.one_of(st.sampled_from(schema["enum"]), typed)
        elif kind in ("integer", "number"):
            bounds = [
                schema[k] + d
                for k in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")
                if k in schema
                for d in (-1, 0, 1)
            ]
            numbers = st.integers(-(2**40), 2**40) if kind == "integer" else st.floats()
            typed = st.one_of(numbers, st.sampled_from(bounds or [0]))
        elif kind == "boolean":
            typed = st.booleans()
        elif kind == "array":
            typed = st.lists(self.value(schema.get("items", {}), json_body), max_size=3)
        elif kind == "null":
            typed = st.none()
        elif kind == "object":
            typed = self.fields(schema, json_body)
        else:
            return anything(json_body)
        return st.one_of(typed, typed, typed, anything(json_body))

    def fields(self, schema: dict[str, Any], json_body: bool) -> st.SearchStrategy[dict[str, Any]]:
        """An object with its required properties (usually) and some optional ones."""
        schema = self.resolve(schema)
        properties = schema.get("properties", {})
        required = set(schema.get("required", ()))
        return st.fixed_dictionaries(
            {},
            optional={name: self.value(sub, json_body) for name, sub in properties.items()},
        ).flatmap(
            lambda chosen: (
                st.fixed_dictionaries(
                    {name: self.value(properties[name], json_body) for name in required - set(chosen)}
                ).map(lambda needed: {**chosen, **needed})
                if required
                else st.just(chosen)
            )
        )


def _text(value: Any) -> str:
    """A query or form value as a client sends it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value)


def _query(values: dict[str, Any]) -> list[tuple[str, str]]:
    pairs = []
    for name, value in values.items():
        if value is None:
            continue
        for item in value if isinstance(value, list) else [value]:
            pairs.append((name, _text(item)))
    return pairs


@pytest.fixture(scope="module")
def fuzz_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data root of its own (fuzzed requests may create presets and change the current models)."""
    home = build_home(tmp_path_factory.mktemp("fuzz_home"))
    voice(home / "ref.wav", 4.0, pauses=(2.0,))
    (home / "refs").mkdir()
    voice(home / "refs" / "high.wav", 3.5, sr=44100)
    return home


@pytest.fixture(scope="module")
def fuzz_client(fuzz_home: Path) -> Iterator[TestClient]:
    """A client of the fuzz home's API, with a saved voice "voice" (for OpenAI speech)."""
    with TestClient(create_app(Settings(home=fuzz_home)), raise_server_exceptions=False) as client:
        fields = {"name": "voice", "prompt_text": "你好欢迎", "prompt_lang": "zh", "text_lang": "zh"}
        files = {"ref_audio": ("voice.wav", (fuzz_home / "ref.wav").read_bytes(), "audio/wav")}
        assert client.post("/presets", data=fields, files=files).status_code == 201
        yield client


def _operations() -> list[tuple[str, str]]:
    app = create_app(Settings(home=Path("/nonexistent-fuzz-home")), synthesis=None)
    return [(method.upper(), path) for path, ops in app.openapi()["paths"].items() for method in ops]


def _clips(home: Path) -> st.SearchStrategy[tuple[str, bytes]]:
    constant = home / "constant.wav"
    if not constant.exists():
        sf.write(constant, np.full(4 * 32000, 0.3, np.float32), 32000)
    real = [(home / "ref.wav").read_bytes(), constant.read_bytes()]
    names = st.sampled_from(["clip.wav", "", "../../etc/passwd", "a b.mp3", "x" * 300])
    data = st.one_of(st.sampled_from([b"", b"RIFF\x00\x00\x00\x00WAVE", *real]), st.binary(max_size=64))
    return st.tuples(names, data)


# A valid request of each operation with inputs: half the examples fuzz one or two of its fields
# (the others fuzz everything), so that requests also get past validation into synthesis.
TTS_BASE = {"text": "你好，欢迎。", "text_lang": "zh", "ref_audio_path": "ref.wav", "prompt_text": "你好欢迎"}
LEGACY_BASE = {  # upstream api.py's names
    "text": "你好，欢迎。",
    "text_language": "中文",
    "refer_wav_path": "ref.wav",
    "prompt_text": "你好欢迎",
    "prompt_language": "zh",
    "seed": 7,
}
BASELINES: dict[tuple[str, str], dict[str, Any]] = {
    ("GET", "/tts"): {**TTS_BASE, "prompt_lang": "zh", "seed": 7},
    ("POST", "/tts"): {**TTS_BASE, "prompt_lang": "zh", "seed": 7, "media_type": "raw"},
    ("POST", "/v1/audio/speech"): {
        "model": "tts-1",
        "input": "你好，欢迎。",
        "voice": "voice",
        "response_format": "wav",
    },
    ("POST", "/presets"): {"name": "fuzzed", "prompt_text": "你好欢迎", "overwrite": True},
    ("GET", "/presets/{name}"): {"name": "voice"},
    ("DELETE", "/presets/{name}"): {"name": "fuzzed"},
    ("GET", "/set_gpt_weights"): {"weights_path": f"GPT_weights/{GPT_NAME}"},
    ("GET", "/set_sovits_weights"): {"weights_path": f"SoVITS_weights/{SOVITS_NAME}"},
    ("GET", "/"): LEGACY_BASE,
    ("POST", "/"): {**LEGACY_BASE, "cut_punc": "，", "media_type": "raw"},
    ("GET", "/change_refer"): {
        k: LEGACY_BASE[k] for k in ("refer_wav_path", "prompt_text", "prompt_language")
    },
    ("GET", "/set_model"): {"gpt_model_path": f"GPT_weights/{GPT_NAME}"},
}


def _inputs(
    schemas: Schemas, operation: dict[str, Any], data: st.DataObject
) -> tuple[str | None, dict[str, tuple[str, dict[str, Any]]], set[str]]:
    """(body media type, name -> (where, schema) of every input, required names)."""
    inputs = {
        p["name"]: (p["in"], p["schema"]) for p in operation.get("parameters", []) if p["in"] != "header"
    }
    required = {p["name"] for p in operation.get("parameters", []) if p.get("required")}
    content = operation.get("requestBody", {}).get("content", {})
    if not content:
        return None, inputs, required
    media = data.draw(st.sampled_from(sorted(content)), label="content type")
    body = schemas.resolve(content[media]["schema"])
    for name, sub in body.get("properties", {}).items():
        inputs[name] = ("body", sub)
    return media, inputs, required | set(body.get("required", ()))


def _request(
    schemas: Schemas, operation: dict[str, Any], method: str, path: str, data: st.DataObject
) -> tuple[str, dict[str, Any]]:
    """(url, keyword arguments of TestClient.request) for one fuzzed call of ``operation``."""
    media, inputs, required = _inputs(schemas, operation, data)
    json_body = media == "application/json"
    baseline = BASELINES.get((method, path))
    if baseline is not None and data.draw(st.booleans(), label="mutate a valid request"):
        fuzzed = data.draw(st.lists(st.sampled_from(sorted(inputs)), max_size=2, unique=True), label="fuzzed")
        values = dict(baseline)
        if media == "multipart/form-data" and "ref_audio" in inputs:
            values["ref_audio"] = data.draw(schemas.clips, label="ref_audio")
        for name in fuzzed:
            in_json = json_body and inputs[name][0] == "body"  # lone surrogates only inside a JSON body
            values[name] = data.draw(schemas.value(inputs[name][1], in_json), label=name)
    else:
        values = {}
        for name, (where, schema) in inputs.items():
            if name in required or data.draw(st.booleans()):
                values[name] = data.draw(schemas.value(schema, json_body and where == "body"), label=name)
    url = path
    query: dict[str, Any] = {}
    body: dict[str, Any] = {}
    for name, value in values.items():
        where = inputs.get(name, ("body",))[0]
        if where == "path":
            url = url.replace("{" + name + "}", urllib.parse.quote(_text(value), safe=""))
        elif where == "query":
            query[name] = value
        else:
            body[name] = value
    kwargs: dict[str, Any] = {"params": _query(query)}
    if media is None:
        return url, kwargs
    if json_body:
        sent = data.draw(st.one_of(st.just(body), st.just(body), anything(True)), label="json body")
        kwargs["content"] = json.dumps(sent, allow_nan=True).encode()  # NaN and lone surrogates too
        kwargs["headers"] = {
            "content-type": data.draw(st.sampled_from(["application/json", "text/plain", ""]))
        }
        return url, kwargs
    form: dict[str, list[str]] = {}
    files: list[tuple[str, tuple[str, bytes, str]]] = []
    for name, value in body.items():
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, tuple):
                files.append((name, (item[0], item[1], "audio/wav")))
            elif item is not None:
                form.setdefault(name, []).append(_text(item))
    kwargs["data"] = form
    kwargs["files"] = files or None
    return url, kwargs


def _check(operation: dict[str, Any], path: str, response: Any, home: Path) -> None:
    status = response.status_code
    where = f"{response.request.method} {response.request.url} -> {status}: {response.text[:400]!r}"
    assert status < 500 or (path == "/ready" and status == 503), where
    documented = operation["responses"]
    key = str(status) if str(status) in documented else f"{status // 100}XX"
    assert key in documented, f"undocumented status; {where}"
    for root in {str(home), str(home.resolve())}:
        assert root not in response.text and root not in str(response.headers), f"absolute path; {where}"
    media = response.headers.get("content-type", "").split(";")[0].strip()
    described = {m.split(";")[0] for m in documented[key].get("content", {})}
    if status >= 400 and "application/json" in described:
        body = ErrorBody.model_validate(response.json())
        assert body.message == body.error.message, where
        if status == 400 and body.error.code == "invalid_value":
            assert body.error.param and body.error.param in body.message, f"field not named; {where}"
    elif described:
        assert media in described, f"undocumented media type {media}; {where}"
        if media == "application/json":
            response.json()
    if "x-studio-notes" in response.headers:
        notes = json.loads(response.headers["x-studio-notes"])
        assert isinstance(notes, list) and all(isinstance(n, str) for n in notes), where


@pytest.mark.parametrize(("method", "path"), _operations(), ids=lambda v: v.replace("/", "_"))
def test_fuzzed_requests_get_documented_answers_never_5xx(fuzz_client, fuzz_home, method, path):
    document = fuzz_client.app.openapi()
    operation = document["paths"][path][method.lower()]
    schemas = Schemas(document, _clips(fuzz_home))

    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(data=st.data())
    def call(data: st.DataObject) -> None:
        url, kwargs = _request(schemas, operation, method, path, data)
        # GET / without a query string is a browser's: its redirect (to /docs) is the answer.
        response = fuzz_client.request(method, url, follow_redirects=path != "/", **kwargs)
        _check(operation, path, response, fuzz_home)

    call()
