"""Messages built in Python: every one goes through the translation tables, in every language.

The AST checks fail when a literal (or an f-string, or ``str(exc)``) reaches ``gr.Error``,
``gr.Warning``, ``gr.Info`` or a progress description anywhere in ``app/ui`` (other than the one
module that renders messages), and when a key used by a handler or made by a lower layer has no
text in some language.
"""

from __future__ import annotations

import ast
import pickle
import re
import string
from pathlib import Path

import gradio as gr
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from app.messages import Message
from app.ui import messages
from app.ui.i18n import LANGUAGES
from app.ui.messages import STRINGS, error_from, language_of, render, say

APP = Path(__file__).resolve().parents[2] / "app"
RENDERER = APP / "ui" / "messages" / "__init__.py"
TOASTS = {"Error", "Warning", "Info"}
SPEAKERS = {"say", "error", "warning", "info", "term"}


def _modules(root: Path) -> list[tuple[Path, ast.Module]]:
    return [(p, ast.parse(p.read_text(encoding="utf-8"))) for p in sorted(root.rglob("*.py"))]


def _calls(tree: ast.AST) -> list[ast.Call]:
    return [n for n in ast.walk(tree) if isinstance(n, ast.Call)]


def _name(call: ast.Call) -> str | None:
    f = call.func
    return f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else None


def _is_toast(call: ast.Call) -> bool:
    f = call.func
    return (
        isinstance(f, ast.Attribute)
        and f.attr in TOASTS
        and isinstance(f.value, ast.Name)
        and f.value.id == "gr"
    )


def _raw_text(node: ast.AST) -> bool:
    """A literal, an f-string, a concatenation of them, or ``str(...)`` / ``f"{...}"`` of anything."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return True
    if isinstance(node, ast.JoinedStr):
        return True
    if isinstance(node, ast.BinOp):
        return _raw_text(node.left) or _raw_text(node.right)
    return isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "str"


def test_no_literal_text_reaches_a_toast_or_a_progress_line():
    bad = []
    for path, tree in _modules(APP / "ui"):
        if path == RENDERER:
            continue
        for call in _calls(tree):
            where = f"{path.relative_to(APP.parent)}:{call.lineno}"
            if _is_toast(call):
                bad.append(
                    f"{where}: gr.{call.func.attr}(...) outside app.ui.messages: use error()/warning()/info()"
                )
            for kw in call.keywords:
                if kw.arg == "desc" and _raw_text(kw.value):
                    bad.append(f"{where}: progress desc= is literal text: use say()")
    assert not bad, "\n".join(bad)


def test_the_toast_check_catches_what_it_should():
    caught = ast.parse('raise gr.Error(f"{x} failed")\ngr.Warning("careful")\nprogress(0, desc="loading")')
    toasts = [c for c in _calls(caught) if _is_toast(c)]
    descs = [kw for c in _calls(caught) for kw in c.keywords if kw.arg == "desc" and _raw_text(kw.value)]
    assert len(toasts) == 2 and len(descs) == 1


# Lower-layer modules whose refusals and reports the pages show as they are (the Label tab's issue
# report and edits, the Train tab's list checks, the SVC pitch checks): every text they raise or
# report is a Message, so it reaches the page in the reader's language.
SHOWN_LAYERS = (
    APP / "data" / "filelist.py",
    APP / "data" / "audio_place.py",
    APP / "data" / "labeling.py",
    APP / "data" / "preprocess" / "proofread.py",
    APP / "audio" / "pitch_range.py",
    APP / "infer" / "svc" / "pipeline.py",
    APP / "services" / "experiments.py",
    APP / "services" / "weights.py",
    APP / "infer" / "reference.py",
    APP / "infer" / "request.py",
    APP / "infer" / "loading.py",
    APP / "infer" / "longform" / "sources.py",
    APP / "infer" / "longform" / "subtitles.py",
    APP / "infer" / "stages" / "text.py",
    APP / "infer" / "scripts.py",
    APP / "services" / "model_choice.py",
    APP / "services" / "longform.py",
    APP / "infer" / "longform" / "state.py",
    APP / "infer" / "longform" / "job.py",
    APP / "infer" / "longform" / "fit.py",
    APP / "services" / "presets.py",
    APP / "infer" / "pipeline.py",
    APP / "audio" / "io.py",
    APP / "infer" / "svc" / "live.py",
    APP / "services" / "jobs.py",
    APP / "paths.py",
    APP / "text" / "overrides.py",
    APP / "text" / "frontend.py",
    APP / "data" / "preprocess" / "slice.py",
    APP / "data" / "preprocess" / "pipeline.py",
    APP / "audio" / "slicer.py",
    APP / "data" / "experiment.py",
    APP / "data" / "preprocess" / "svc" / "dataset.py",
    APP / "data" / "preprocess" / "transcribe.py",
    APP / "data" / "preprocess" / "asr_base.py",
    APP / "data" / "preprocess" / "cleanup.py",
    APP / "data" / "preprocess" / "separate.py",
    APP / "data" / "preprocess" / "separate_base.py",
    APP / "models" / "upstream" / "gpt.py",
    APP / "models" / "upstream" / "sovits.py",
    APP / "models" / "upstream" / "safe_pickle.py",
    APP / "models" / "upstream" / "svc" / "checkpoint.py",
    APP / "data" / "preprocess" / "svc" / "features.py",
    APP / "data" / "preprocess" / "svc" / "cluster.py",
    APP / "audio" / "pitch.py",
    APP / "text" / "cleaner.py",
    APP / "text" / "split.py",
    APP / "models" / "upstream" / "sovits_cfm.py",
    APP / "models" / "upstream" / "sovits_lora.py",
    APP / "models" / "upstream" / "cfm_voice.py",
    APP / "config_io.py",
    APP / "models" / "upstream" / "vocoder.py",
    APP / "models" / "vocoders" / "bigvgan.py",
    APP / "models" / "vocoders" / "hifigan.py",
    APP / "models" / "upstream" / "sv.py",
    APP / "models" / "encoders" / "sv.py",
    APP / "models" / "encoders" / "sv_net.py",
    APP / "models" / "upstream" / "roformer.py",
    APP / "models" / "roformer.py",
    APP / "data" / "preprocess" / "roformer.py",
    APP / "models" / "upstream" / "uvr_vr.py",
    APP / "data" / "preprocess" / "vr.py",
    APP / "data" / "preprocess" / "mdx.py",
    APP / "models" / "upstream" / "svc" / "features.py",
    APP / "models" / "encoders" / "content.py",
    APP / "models" / "encoders" / "hubert.py",
    APP / "models" / "encoders" / "hubert_net.py",
    APP / "models" / "encoders" / "bert.py",
    APP / "runconfig.py",
    APP / "models" / "svc" / "config.py",
    APP / "models" / "svc" / "synthesizer.py",
    APP / "train" / "svc" / "data.py",
    APP / "train" / "svc" / "trainer.py",
)
# Calls whose text argument is shown: (callee, position of the text).
SHOWN_ARGS = {"LineError": 2, "AudioPathError": 1}
# Calls that translate their key argument (``raise error("label.err.not_open")``).
TRANSLATORS = SPEAKERS | {"error_in", "say_in", "error_from"}


def _raw_exceptions(tree: ast.AST) -> list[int]:
    """Lines raising an exception, or building an issue, whose text is literal/f-string/str(exc)."""
    bad = []
    for node in ast.walk(tree):
        raised = node.exc if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call) else None
        shown = raised is not None and raised.args and _name(raised) not in {*SHOWN_ARGS, *TRANSLATORS}
        if shown and _raw_text(raised.args[0]):
            bad.append(node.lineno)
        if isinstance(node, ast.Call) and _name(node) in SHOWN_ARGS:
            at = SHOWN_ARGS[_name(node)]
            if len(node.args) > at and _raw_text(node.args[at]):
                bad.append(node.lineno)
    return bad


def test_errors_the_pages_show_are_messages():
    """A page module raises with say()/a Message (never str(exc) or English), and the lower layers
    the pages show as they are build every refusal and issue as a Message."""
    bad = []
    for path, tree in _modules(APP / "ui" / "tabs"):
        bad += [f"{path.relative_to(APP.parent)}:{n}" for n in _raw_exceptions(tree)]
    for path in SHOWN_LAYERS:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        bad += [f"{path.relative_to(APP.parent)}:{n}" for n in _raw_exceptions(tree)]
    assert not bad, "raise with a Message (lower layers) or say() (pages):\n" + "\n".join(bad)


def test_the_exception_check_catches_what_it_should():
    caught = ast.parse(
        'raise SessionError(str(exc))\nraise EditError(f"row {i}")\nLineError(1, line, "bad", kind)\n'
        'raise AudioPathError(OUTSIDE, f"{x!r}")\nraise EditError(Message("k", "t"))\n'
        'raise SessionError(say("k"))\nraise SessionError(exc.args[0])\nLineError(1, line, reason, kind)\n'
        'raise error("label.err.not_open")'
    )
    assert _raw_exceptions(caught) == [1, 2, 3, 4]


def test_dataset_tool_messages_read_in_every_language():
    """A list's issues, an edit's refusal and a pitch range, rendered in each language: translated, values kept."""
    from app.audio.pitch_range import PitchRange
    from app.data.filelist import ISSUE_KINDS, parse_text
    from app.data.labeling import EditError, plan_merge

    for kind, title in ISSUE_KINDS.items():
        assert STRINGS["en"][f"list.kind.{kind}"] == title
    (issue,) = parse_text("a.wav|spk|XX|hello\n").errors
    with pytest.raises(EditError) as refused:
        plan_merge(
            parse_text("a.wav|s|en|one\nb.wav|s|en|two\nc.wav|s|en|three\n").rows, [0, 2], 0.2, "m.wav"
        )
    pitch = PitchRange(voiced_seconds=3.0, median=220.0, p5=180.0, p25=200.0, p75=250.0, p95=300.0).describe()
    assert str(pitch) == "median 220 Hz (A3), 5-95 %: 180-300 Hz (F#3-D4)"
    for lang in LANGUAGES:
        shown = [render(m, lang) for m in (issue.reason, refused.value.args[0], pitch)]
        assert "'XX'" in shown[0] and "0, 2" in shown[1] and "220" in shown[2] and "F#3" in shown[2]
        if lang != "en":
            assert all(
                text != str(m)
                for text, m in zip(shown, (issue.reason, refused.value.args[0], pitch), strict=True)
            )


def _used_keys() -> dict[str, str]:
    used = {}
    for path, tree in _modules(APP / "ui"):
        for call in _calls(tree):
            bare = isinstance(call.func, ast.Name) and call.func.id in SPEAKERS - {"term"}
            if bare and call.args and isinstance(call.args[0], ast.Constant):
                used[call.args[0].value] = f"{path.relative_to(APP.parent)}:{call.lineno}"
    return used


def _template(node: ast.AST, assigned: list[tuple[int, str, ast.AST]], line: int) -> str:
    """The text of a Message's template: a literal, a name assigned one before ``line``, or a sum of them."""
    if isinstance(node, ast.Name):
        values = [v for n, name, v in assigned if name == node.id and n < line]
        assert values, f"line {line}: the template {node.id} is not assigned a text before the Message"
        return _template(values[-1], assigned, line)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return _template(node.left, assigned, line) + _template(node.right, assigned, line)
    return ast.literal_eval(node)


def _messages_made(root: Path, skip: tuple[Path, ...] = ()) -> dict[str, str]:
    """key -> English template of every ``Message("key", template, ...)`` under ``root``."""
    made = {}
    for path, tree in _modules(root):
        if path.is_relative_to(APP / "ui" / "messages") or any(path.is_relative_to(s) for s in skip):
            continue
        assigned = sorted(
            (n.lineno, n.targets[0].id, n.value)
            for n in ast.walk(tree)
            if isinstance(n, ast.Assign) and len(n.targets) == 1 and isinstance(n.targets[0], ast.Name)
        )
        for call in _calls(tree):
            if _name(call) == "Message" and len(call.args) >= 2 and isinstance(call.args[0], ast.Constant):
                made[call.args[0].value] = _template(call.args[1], assigned, call.lineno)
    return made


def _lower_messages() -> dict[str, str]:
    return _messages_made(APP, skip=(APP / "ui",))


def test_every_key_said_has_a_text_in_every_language():
    missing = {key: where for key, where in _used_keys().items() if key not in STRINGS["en"]}
    assert not missing, f"keys without a text in app/ui/messages: {missing}"
    assert set(STRINGS) == set(LANGUAGES)
    for lang, texts in STRINGS.items():
        assert set(texts) == set(STRINGS["en"]), f"{lang}: {sorted(set(STRINGS['en']) ^ set(texts))}"


def _fields(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


def test_every_language_fills_the_same_fields():
    for key, english in STRINGS["en"].items():
        for lang in LANGUAGES:
            assert _fields(STRINGS[lang][key]) == _fields(english), f"{lang} {key}"


def test_lower_layer_messages_have_their_english_text_and_translations():
    made = {**_lower_messages(), **_messages_made(APP / "ui")}
    assert {"ref.err.short", "ref.note.trimmed", "text.note.unreadable", "queue.full", "path.outside"} <= set(
        made
    )
    assert {"list.issue.fields", "edit.not_adjacent", "place.outside_data", "pitch.range"} <= set(made)
    for key, template in made.items():
        assert key in STRINGS["en"], f"{key}: add it to app/ui/messages (every language)"
        assert STRINGS["en"][key] == template, f"{key}: the English table differs from the layer's template"


def test_a_message_is_its_english_text_and_keeps_its_key():
    note = Message("ref.note.trimmed", STRINGS["en"]["ref.note.trimmed"], seconds=12.34, start=1.0, end=9.5)
    assert note == "The reference clip is 12.3 s long; its best span between pauses, 1.0-9.5 s, was used."
    assert pickle.loads(pickle.dumps(note)).key == "ref.note.trimmed"
    assert (
        render(note, "ja")
        == "参照音声は 12.3 秒です。無音で区切られた最適な区間（1.0〜9.5 秒）を使いました。"
    )
    assert "参考音频长 12.3 秒" in render(note, "zh")
    with pytest.raises(AttributeError):
        note.key = "other"  # type: ignore[misc]
    with pytest.raises(KeyError):
        Message("k", "{missing} field")


def test_nested_messages_and_upload_paths_are_rendered_for_the_reader():
    what = Message("ref.what.extra", "An extra reference clip")
    clipped = Message("ref.note.clipped", STRINGS["en"]["ref.note.clipped"], what=what, clipped=0.25)
    assert render(clipped, "ko").startswith("추가 참조 음성이(가) 클리핑되었습니다(샘플의 25.0%")
    from gradio.utils import get_upload_folder

    upload = str(Path(get_upload_folder()) / "abc123" / "my voice.wav")
    short = Message("ref.err.short", STRINGS["en"]["ref.err.short"], name=upload, seconds=1.2, low=3, high=10)
    assert render(short, "zh_TW").startswith("my voice.wav 長 1.2 秒")
    assert upload in short  # the API and logs keep the full text
    err = error_from(ValueError(short), [clipped])
    assert (
        isinstance(err, gr.Error)
        and "my voice.wav is 1.2 s long" in err.message
        and "Note: An extra" in err.message
    )


@pytest.mark.parametrize(
    ("header", "lang"),
    [
        ("zh-TW,zh;q=0.9,en;q=0.8", "zh_TW"),
        ("zh-CN,zh;q=0.9", "zh"),
        ("zh-Hant-HK", "zh_TW"),
        ("ja-JP,ja;q=0.9,en-US;q=0.8", "ja"),
        ("fr-FR,ko;q=0.5,en;q=0.4", "ko"),
        ("en;q=0.2,ja;q=0.9", "ja"),
        ("fr, de", "en"),
        ("", "en"),
        ("*;q=garbage", "en"),
    ],
)
def test_the_browser_language_picks_the_table(header, lang):
    assert language_of(header) == lang


@given(st.text(max_size=60))
def test_any_accept_language_header_gives_a_supported_language(header):
    assert language_of(header) in LANGUAGES


class _Request:
    def __init__(self, **headers: str) -> None:
        self.headers = headers


@pytest.mark.parametrize(
    ("cookie", "accept", "lang"),
    [
        ("studio_lang=ja", "en-US,en;q=0.9", "ja"),  # the footer's switch beats the browser's language
        ("other=1; studio_lang=zh-TW; x=y", "ko-KR", "zh_TW"),
        ("studio_lang=zh-Hant-HK", "", "zh_TW"),
        ('bad"cookie; studio_lang=ko', "en", "ko"),  # another app's unreadable cookie does not hide it
        ("studio_lang=de", "ja-JP", "ja"),  # a locale the app does not speak: the browser's
        ("", "zh-CN", "zh"),
        ("studio_lang=", "", "en"),
    ],
)
def test_the_page_language_cookie_picks_the_table(cookie, accept, lang):
    from gradio.context import LocalContext

    token = LocalContext.request.set(_Request(cookie=cookie, **{"accept-language": accept}))
    try:
        assert messages.current_language() == lang
    finally:
        LocalContext.request.reset(token)


def test_the_api_server_offers_every_ui_language():
    from app.api.server import UI_LANGUAGES

    assert UI_LANGUAGES == LANGUAGES  # python -m app.api --lang ja serves the page at /ui in Japanese


def test_outside_an_event_messages_are_english():
    assert messages.current_language() == "en"
    assert say("tts.status.segment", done=2, total=5) == "Segment 2 of 5 done…"
    assert say("tts.status.segment", "zh", done=2, total=5) == "第 2/5 段已完成…"
    assert re.search(r"\d", say("svc.tr.eta", "ja", minutes=2.0))


def test_help_lines_reach_the_controls_in_every_language(tmp_path):
    from app.settings import Settings
    from app.ui.app import app_texts, build_app
    from app.ui.help import PREFIX, label_key
    from app.ui.help import STRINGS as HELP

    assert set(HELP) == set(LANGUAGES)
    for lang, texts in HELP.items():
        assert set(texts) == set(HELP["en"]), lang
    labels = set(app_texts())
    stale = [k for k in HELP["en"] if k != "help.tts.params_note" and k[len(PREFIX) :] not in labels]
    assert not stale, f"help for labels that no longer exist: {stale}"
    demo = build_app(Settings(home=tmp_path))
    helped = {
        label_key(b): b.info.key for b in demo.blocks.values() if getattr(b, "info", None) and label_key(b)
    }
    for control in ("tts.top_k", "tts.temperature", "train.text_lr", "svc.ds.encoder", "svc.cv.transpose"):
        assert helped.get(control) == f"help.{control}"
    assert len(helped) >= 50


def test_a_failed_synthesis_clears_its_status_line(tmp_path):
    """After an error the info line is emptied (no stale "Loading models…" under the toast)."""
    from app.settings import Settings
    from app.ui.app import build_app
    from app.ui.tabs.tts import clear_status

    demo = build_app(Settings(home=tmp_path))
    info = next(b for b in demo.blocks.values() if getattr(b, "elem_id", None) == "tts-info")
    run = next(f for f in demo.fns.values() if f.api_name == "tts")
    cleanup = [f for f in demo.fns.values() if getattr(f.fn, "__name__", "") == "clear_status"]
    assert len(cleanup) == 1 and [o._id for o in cleanup[0].outputs] == [info._id]
    assert cleanup[0].trigger_only_on_failure and cleanup[0].trigger_after == run._id
    assert clear_status() == ""


@pytest.mark.parametrize(
    ("changes", "english", "field"),
    [
        ({"temperature": 9.0}, "temperature must be between 0 and 5, got 9", "temperature"),
        (
            {"repetition_penalty": 0.0},
            "repetition_penalty must be between 0.01 and 5, got 0 (1.0 disables it)",
            "repetition_penalty",
        ),
        ({"text": " \n"}, "the text is empty: enter something to read", "text"),
        ({"top_k": 0}, "top_k must be at least 1, got 0", "top_k"),
        ({"sample_steps": 8.5}, "sample_steps must be a whole number, got 8.5", "sample_steps"),
        (
            {"text_language": "klingon"},
            "text_language: unknown language mode 'klingon': use one of all_zh, en, all_ja, all_ko, "
            "all_yue, zh, ja, ko, yue, auto, auto_yue (or all_en)",
            "text_language",
        ),
    ],
)
def test_a_tts_request_refusal_keeps_its_english_and_reads_in_every_language(changes, english, field):
    """The API's text and field stay as they were; the page (its error helper, a zh reader) translates."""
    from gradio.context import LocalContext

    from app.infer import TTSInputError, TTSRequest
    from app.ui.tabs.tts import _error

    with pytest.raises(TTSInputError) as refused:
        TTSRequest(**{"text": "hello", "reference": "a.wav", **changes})
    said = refused.value.args[0]
    assert str(refused.value) == english and refused.value.field == field and isinstance(said, Message)
    shown = {lang: render(said, lang) for lang in LANGUAGES}
    assert shown["en"] == english
    assert all(shown[lang] != english for lang in LANGUAGES if lang != "en"), shown
    token = LocalContext.request.set(_Request(cookie="studio_lang=zh"))
    try:
        assert _error(refused.value).message == shown["zh"].replace("'", "&#x27;")
    finally:
        LocalContext.request.reset(token)
    if field == "temperature":
        assert shown["zh"] == "温度（temperature） 必须在 0 到 5 之间，当前为 9"


def test_missing_models_and_bad_sources_read_in_every_language(tmp_path):
    """A model refusal keeps the download command; a subtitle's bad time is translated inside its cue's."""
    from app.infer import PipelineSpec
    from app.infer.loading import load_hubert
    from app.infer.longform import SourceError, parse_source
    from app.infer.request import ModelLoadError

    spec = PipelineSpec("g.ckpt", "s.pth", tmp_path / "hubert", tmp_path / "bert")
    with pytest.raises(ModelLoadError) as missing:
        load_hubert(spec, torch.device("cpu"), torch.float32)
    with pytest.raises(SourceError) as bad_time:
        parse_source("1\n00:00:01,000 --> 00:61:00,000\nhello\n", "srt", "talk.srt")
    assert (
        str(bad_time.value) == "talk.srt: cue 1 ('1'): '00:61:00,000': minutes and seconds must be below 60"
    )
    for lang in LANGUAGES:
        model, source = render(missing.value.args[0], lang), render(bad_time.value.args[0], lang)
        assert "chinese-hubert-base" in model and str(tmp_path / "hubert") in model
        assert "talk.srt" in source and "00:61:00,000" in source
        if lang != "en":
            assert model != str(missing.value) and source != str(bad_time.value)
            assert "must be below 60" not in source  # the nested refusal is translated too


def test_unreadable_text_is_refused_in_the_readers_language():
    """The text stage's refusal (a script no model reads) names the text and the languages read, translated."""
    from app.infer import TTSInputError
    from app.infer.stages.text import TextStage

    stage = TextStage("v2", 1024, lambda: None)
    with pytest.raises(TTSInputError) as refused:
        stage.segments("Привет, как дела?", "zh", "cut5")
    said = refused.value.args[0]
    assert refused.value.field == "text" and said.key == "tts.text.foreign_script"
    assert str(said).startswith("text 'Привет, как дела?' cannot be read as zh: its letters (")
    assert "(they read Chinese, English, Japanese, Korean and Cantonese)" in said
    zh = render(said, "zh")
    assert zh.startswith("文本 'Привет, как дела?' 无法按 zh 朗读") and "中文、英语、日语、韩语和粤语" in zh
    for lang in LANGUAGES[1:]:
        assert "Привет" in render(said, lang) and "cannot be read" not in render(said, lang)


def test_long_form_refusals_read_in_every_language():
    """A job's options and a missing voice: the English the API gives, translated for the page."""
    from app.infer.longform import FitOptions, JobOptions, JobStateError

    with pytest.raises(JobStateError) as takes:
        JobOptions(takes=0)
    with pytest.raises(ValueError) as speed:
        FitOptions(max_speed=9.0)
    assert str(takes.value) == "takes must be between 1 and 8, got 0"
    assert str(speed.value) == "max_speed must be between 1 and 4, got 9"
    assert render(takes.value.args[0], "zh") == "每行的版本数必须在 1 到 8 之间，当前为 0"
    for lang in LANGUAGES[1:]:
        for refused, value in ((takes.value, "8"), (speed.value, "9")):
            shown = render(refused.args[0], lang)
            assert shown != str(refused) and value in shown


def test_preset_refusals_read_in_every_language(tmp_path):
    """A missing preset as the long-form tab meets it (inside its voice's refusal), translated."""
    from app.infer.longform import parse_source
    from app.paths import Layout
    from app.services.longform import LongformService, VoiceError

    script = parse_source("bob|Hello there.\n", "script", "talk.txt")
    with pytest.raises(VoiceError) as refused:
        LongformService.script_voices(Layout(tmp_path), script, "alice", device="cpu")
    assert str(refused.value) == "voice (default): no voice preset named 'alice' (known: none saved yet)"
    assert (
        render(refused.value.args[0], "zh") == "默认音色：没有名为 'alice' 的音色预设（还没有保存任何预设）"
    )
    for lang in LANGUAGES[1:]:
        assert "none saved" not in render(refused.value.args[0], lang)


def test_an_unreadable_reference_reads_in_every_language():
    """The audio reader's detail, inside the reference check's refusal, is translated with it."""
    from app.audio.io import AudioError, load_audio
    from app.infer.reference import ReferenceAudioError, load_clip

    with pytest.raises(ReferenceAudioError) as refused:
        load_clip(b"not audio at all, just text " * 10)
    with pytest.raises(AudioError) as missing:
        load_audio("/nonexistent/voice.wav", 16000)
    assert str(refused.value).startswith("uploaded reference clip: not a readable audio file (")
    assert str(missing.value) == "/nonexistent/voice.wav: file not found"
    assert render(refused.value.args[0], "zh").startswith("上传的参考音频：不是可读取的音频文件（")
    assert render(missing.value.args[0], "ja") == "/nonexistent/voice.wav：ファイルが見つかりません"
    for lang in LANGUAGES[1:]:
        assert "not a readable" not in render(refused.value.args[0], lang)
