"""Upstream's legacy api.py protocol (``GET|POST /``, ``/change_refer``, ``/set_model``), the voice
listings community clients probe for, and the language names and ``cut_punc`` cuts behind them."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.api.app import create_app
from app.api.languages import LEGACY_NAMES, language_mode
from app.api.routes.legacy import LegacyParams, build_request
from app.settings import Settings
from app.text import LanguageMode
from app.text.marks import cut_at_marks, is_punctuation
from tests.api.conftest import PROMPT, TEXT, assert_error, assert_speech, read_wav
from tests.api.harness import serve
from tests.infer.tiny import GPT_NAME, SOVITS_NAME

UPSTREAM_QUERY = {  # upstream's README example, with our tiny reference
    "refer_wav_path": "ref.wav",
    "prompt_text": PROMPT,
    "prompt_language": "zh",
    "text": TEXT,
    "text_language": "zh",
}


@pytest.fixture(autouse=True)
def _no_default_reference(api_home: Path):
    yield
    (api_home / "output" / "api" / "default_reference.json").unlink(missing_ok=True)


@pytest.fixture
def voice_preset(client, api_home):
    fields = {"name": "narrator", "prompt_text": PROMPT, "prompt_lang": "zh", "text_lang": "zh", "seed": "11"}
    files = {"ref_audio": ("mine.wav", (api_home / "ref.wav").read_bytes(), "audio/wav")}
    assert client.post("/presets", data=fields, files=files).status_code == 201
    yield "narrator"
    client.delete("/presets/narrator")


# ---------------------------------------------------------------- an api.py client, over a real socket
def test_an_api_py_client_gets_wav_from_get_and_post(api_home):
    app = create_app(Settings(home=api_home))
    with serve(app) as url, httpx.Client(base_url=url, timeout=120) as http:
        got = http.get("/", params=UPSTREAM_QUERY)  # GET /?refer_wav_path=...&text=...
        assert got.status_code == 200, got.text
        assert got.headers["content-type"] == "audio/wav"
        assert_speech(*read_wav(got.content))
        posted = http.post("/", json={**UPSTREAM_QUERY, "top_k": 20, "top_p": 0.6, "temperature": 0.6})
        assert posted.status_code == 200 and posted.content[:4] == b"RIFF"
        refused = http.get("/", params={"text": TEXT, "text_language": "zh"})
        assert refused.status_code == 400 and "refer_wav_path" in refused.json()["message"]
        bare = http.get("/", follow_redirects=False)
        assert bare.status_code == 307 and bare.headers["location"] == "/docs"


def test_change_refer_sets_the_reference_of_requests_without_one(client, api_home):
    query = {"refer_wav_path": "ref.wav", "prompt_text": PROMPT, "prompt_language": "中文"}
    answer = client.get("/change_refer", params=query)
    assert answer.status_code == 200 and answer.json() == {"code": 0, "message": "Success"}
    stored = json.loads((api_home / "output" / "api" / "default_reference.json").read_text())
    assert stored == {"path": "ref.wav", "text": PROMPT, "language": "all_zh"}
    # upstream's shortest call: the text and its language only, cut at commas and full stops
    response = client.get("/", params={"text": TEXT, "text_language": "zh", "cut_punc": "，。"})
    assert response.status_code == 200, response.text
    assert_speech(*read_wav(response.content))
    posted = client.post("/change_refer", json={**query, "refer_wav_path": "refs/high.wav"})
    assert posted.json()["code"] == 0
    assert json.loads((api_home / "output" / "api" / "default_reference.json").read_text())["path"] == (
        "refs/high.wav"
    )


@pytest.mark.parametrize("missing", ["refer_wav_path", "prompt_text", "prompt_language"])
def test_change_refer_needs_all_three(client, missing):
    query = {"refer_wav_path": "ref.wav", "prompt_text": PROMPT, "prompt_language": "zh", missing: ""}
    assert_error(client.get("/change_refer", params=query), 400, missing)
    assert_error(client.post("/change_refer", json=query), 400, missing)


@pytest.mark.parametrize(
    ("where", "param", "value", "status"),
    [
        ("/", "refer_wav_path", "../../etc/passwd", 403),
        ("/", "refer_wav_path", "/etc/passwd", 403),
        ("/", "refer_wav_path", "missing.wav", 400),
        ("/", "inp_refs", "../ref.wav", 403),
        ("/change_refer", "refer_wav_path", "/etc/hostname", 403),
        ("/set_model", "gpt_model_path", "/etc/passwd", 403),
        ("/set_model", "sovits_model_path", "../SoVITS_weights/x.pth", 403),
        ("/set_model", "gpt_model_path", "ref.wav", 400),
    ],
)
def test_paths_stay_in_the_data_folder(client, where, param, value, status):
    query = {**UPSTREAM_QUERY, "prompt_text": PROMPT, param: value}
    message = assert_error(client.get(where, params=query), status, param)
    assert "/etc/passwd" not in message or "outside" in message


def test_set_model_chooses_listed_models(client, api_home):
    query = {
        "gpt_model_path": "GPT_weights/other-e5.ckpt",
        "sovits_model_path": f"SoVITS_weights/{SOVITS_NAME}",
    }
    assert client.get("/set_model", params=query).json() == {"code": 0, "message": "Success"}
    choice = json.loads((api_home / "output" / "api" / "models.json").read_text())
    assert choice == {"gpt": "GPT_weights/other-e5.ckpt", "sovits": f"SoVITS_weights/{SOVITS_NAME}"}
    assert client.post("/set_model", json={"gpt_model_path": f"GPT_weights/{GPT_NAME}"}).status_code == 200
    assert (
        json.loads((api_home / "output" / "api" / "models.json").read_text())["gpt"]
        == f"GPT_weights/{GPT_NAME}"
    )
    assert_error(client.get("/set_model"), 400, "gpt_model_path")
    # both are checked before either changes
    bad = {"gpt_model_path": "GPT_weights/other-e5.ckpt", "sovits_model_path": "nope.pth"}
    assert_error(client.post("/set_model", json=bad), 400, "sovits_model_path")
    assert (
        json.loads((api_home / "output" / "api" / "models.json").read_text())["gpt"]
        == f"GPT_weights/{GPT_NAME}"
    )


@pytest.mark.parametrize(
    ("query", "param"),
    [
        ({"text": ""}, "text"),
        ({"text": None}, "text"),
        ({"text_language": "klingon"}, "text_language"),
        ({"prompt_language": "xx"}, "prompt_language"),
        ({"prompt_language": None}, "prompt_language"),
        ({"cut_punc": "ab"}, "cut_punc"),
        ({"top_k": "many"}, "top_k"),
        ({"top_p": "0"}, "top_p"),
        ({"speed": "9"}, "speed"),
        ({"if_sr": "true"}, "if_sr"),
        ({"media_type": "silk"}, "media_type"),
        ({"sample_steps": "0"}, "sample_steps"),
        ({"text_language": None, "text_lang": "nope"}, "text_lang"),  # api_v2 spelling, named as sent
        ({"character": "nobody"}, "character"),
    ],
)
def test_bad_values_are_400s_naming_the_parameter(client, query, param):
    params = {k: v for k, v in {**UPSTREAM_QUERY, **query}.items() if v is not None}
    status = 404 if param == "character" else 400
    assert_error(client.get("/", params=params), status, param)
    assert_error(client.post("/", json=params), status, param)


def test_the_api_key_guards_the_legacy_routes_but_not_the_redirect(make_client):
    client = make_client(api_key="sekret")
    assert client.get("/", follow_redirects=False).status_code == 307
    assert_error(client.get("/", params=UPSTREAM_QUERY), 401)
    assert_error(client.post("/", json=UPSTREAM_QUERY), 401)
    assert_error(client.get("/change_refer", params={"refer_wav_path": "ref.wav"}), 401)
    assert_error(client.get("/set_model", params={"gpt_model_path": "x"}), 401)
    assert_error(client.get("/speakers"), 401)
    bad = client.get("/", params={**UPSTREAM_QUERY, "text_language": "xx"}, headers={"X-API-Key": "sekret"})
    assert_error(bad, 400, "text_language")


def test_speakers_and_character_list_are_the_presets(client, voice_preset):
    assert client.get("/speakers").json() == [
        {"name": "narrator", "voice_id": "narrator", "lang": "zh", "description": ""}
    ]
    assert client.get("/character_list").json() == {"narrator": ["default"]}
    # SillyTavern's adapter provider: POST / naming the voice, api_v2 spellings
    body = {"text": TEXT, "target_voice": "narrator", "text_lang": "zh", "media_type": "auto"}
    response = client.post("/", json=body)
    assert response.status_code == 200, response.text
    assert_speech(*read_wav(response.content))


# ---------------------------------------------------------------- requests built (no synthesis)
def _request(client, **values):
    return build_request(client.app.state.api, LegacyParams.model_validate({**UPSTREAM_QUERY, **values}))[0]


def test_cut_punc_cuts_after_each_mark_and_defaults_to_lines(client):
    text = "先帝创业未半而中道崩殂，今天下三分，益州疲弊。此诚危急存亡之秋也"
    cut = _request(client, text=text, cut_punc="，。")
    assert cut.split_method == "cut0"
    assert cut.text.split("\n") == [
        "先帝创业未半而中道崩殂，",
        "今天下三分，",
        "益州疲弊。",
        "此诚危急存亡之秋也",
    ]
    assert _request(client, text="一，二\n\n三").text == "一，二\n三"  # default: the text's own lines
    assert _request(client, text=text, text_split_method="cut5").split_method == "cut5"
    assert _request(client, inp_refs=['"refs/high.wav"']).extra_references[0].name == "high.wav"


def test_defaults_are_upstreams(client):
    request = _request(client)
    assert (request.top_k, request.top_p, request.temperature, request.speed) == (15, 1.0, 1.0, 1.0)
    assert request.pause_seconds == 0.3 and request.text_language == "zh" and request.prompt_language == "zh"


# ---------------------------------------------------------------- language names and cut_punc (pure)
@pytest.mark.parametrize(("name", "mode"), sorted(LEGACY_NAMES.items()))
def test_upstream_language_names(name, mode):
    assert language_mode(name) == mode
    assert language_mode(name.upper()) == mode  # upstream looks names up after .lower()


@given(st.sampled_from([m.value for m in LanguageMode]), st.lists(st.booleans(), min_size=8, max_size=8))
def test_language_ids_in_any_case(mode, upper):
    mixed = "".join(c.upper() if u else c for c, u in zip(mode, upper * 2, strict=False))
    assert language_mode(f" {mixed} ") == mode


def test_unknown_language_lists_the_choices():
    with pytest.raises(ValueError, match="中英混合"):
        language_mode("Klingon")


MARKS = "，。？！,.?!;；：…、~"


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.sampled_from("ab1。，.?! \n"), max_size=40), st.text(alphabet=MARKS, max_size=4))
def test_cut_at_marks_only_adds_line_breaks(text, marks):
    out = cut_at_marks(text, marks)
    assert out.replace("\n", "") == text.replace("\n", "")
    for line in out.split("\n")[:-1]:  # every line but the last ends at a cut or a line of the text
        assert line == "" or line[-1] in marks or line + "\n" in text + "\n"
    assert "\n\n" not in out


def test_cut_at_marks_keeps_decimal_points():
    assert cut_at_marks("pi is 3.14. yes.", ".") == "pi is 3.14.\n yes."


def test_is_punctuation():
    assert all(is_punctuation(c) for c in MARKS)
    assert not any(is_punctuation(c) for c in "a中1 \n")
