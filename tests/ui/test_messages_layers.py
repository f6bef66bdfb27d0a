"""Messages of lower layers the pages reach, in every language: names (``app.paths``), the text to read
(``app.text``: language modes, ``{written|reading}`` overrides), the dataset pipeline, the trainers'
events in a run's status file, and the title of an untitled long-form chapter."""

from __future__ import annotations

import ast
import json

import pytest

from app.messages import Message
from app.ui.i18n import LANGUAGES
from app.ui.messages import render
from tests.ui.test_messages import APP, _calls, _modules, _raw_text


def _refusal(call, *args, **kwargs) -> Message:
    with pytest.raises((ValueError, FileNotFoundError, RuntimeError)) as refused:
        call(*args, **kwargs)
    said = refused.value.args[0]
    assert isinstance(said, Message), f"{call.__name__}: {said!r} is not a Message"
    return said


def _reads_in_every_language(said: Message, *kept: str) -> None:
    """English as the API says it; another text in each other language, with the values kept."""
    shown = {lang: render(said, lang) for lang in LANGUAGES}
    assert shown["en"] == str(said)
    for lang, text in shown.items():
        assert all(value in text for value in kept), (lang, text)
        if lang != "en":
            assert text != str(said), (lang, text)


def test_names_and_texts_to_read_are_refused_in_the_readers_language(tmp_path):
    from app.data.preprocess.pipeline import build_dataset
    from app.paths import safe_name
    from app.text.frontend import LanguageMode, check_mode, text_to_phones
    from app.text.overrides import resolve

    (tmp_path / "empty").mkdir()
    cases = [
        (_refusal(safe_name, "a/b"), ("a/b",)),
        (_refusal(safe_name, "x" * 300), ("300", "200")),
        (_refusal(resolve, "重庆", "chong2 qing9", "v2"), ("{重庆|chong2 qing9}", "qing9")),
        (_refusal(resolve, "重庆", "chong2", "v2"), ("{重庆|chong2}", "pinyin")),
        (_refusal(resolve, "係", "hai6", "v1", yue=True), ("{係|hai6}",)),
        (_refusal(resolve, "GIF", "", "v2"), ("{GIF|}",)),
        (_refusal(resolve, "啊", "=ZZ9", "v2"), ("{啊|=ZZ9}", "ZZ9")),
        (_refusal(check_mode, "all_ko", "v1"), ("'all_ko'", "v1")),
        (_refusal(LanguageMode.parse, "klingon"), ("'klingon'",)),
        (_refusal(text_to_phones, " \n ", "zh", "v2"), ()),
        (_refusal(build_dataset, tmp_path / "nope", "spk", tmp_path, tmp_path), ("nope",)),
        (_refusal(build_dataset, tmp_path / "empty", "spk", tmp_path, tmp_path), ("empty",)),
    ]
    for said, kept in cases:
        _reads_in_every_language(said, *kept)
    assert str(cases[0][0]).startswith("invalid name 'a/b'")  # the API's text is unchanged


def test_data_preparation_refusals_read_in_every_language(tmp_path):
    """The slicer's settings (Dataset and Label tabs), a formatted experiment's files (Train tab),
    an SVC dataset's uploads (SVC tab)."""
    from app.audio.slicer import SlicerOptions
    from app.data.experiment import read_name2text
    from app.data.preprocess.svc.dataset import add_raw_files, raw_speakers
    from app.paths import SvcExperiment

    (tmp_path / "notes.txt").write_text("x", encoding="utf-8")
    cases = [
        (_refusal(SlicerOptions, min_length_ms=100, min_interval_ms=300), ("100", "300")),
        (_refusal(SlicerOptions, peak=2.0), ("2.0",)),
        (_refusal(SlicerOptions, max_sil_kept_ms=5, hop_ms=10), ("5", "10")),
        (_refusal(read_name2text, tmp_path / "2-name2text.txt"), ("2-name2text.txt",)),
        (
            _refusal(add_raw_files, SvcExperiment(tmp_path / "svc"), "spk", [tmp_path / "notes.txt"]),
            ("notes.txt",),
        ),
        (_refusal(raw_speakers, tmp_path / "absent"), ("absent",)),
    ]
    for said, kept in cases:
        _reads_in_every_language(said, *kept)
    from app import config_io

    (tmp_path / "run.yaml").write_text("step: [1\n", encoding="utf-8")
    (tmp_path / "odd.yaml").write_text("min_length_ms: 100\nspeed: 2\n", encoding="utf-8")
    for name, kept in (("run.yaml", "YAML"), ("odd.yaml", "speed")):
        _reads_in_every_language(_refusal(config_io.load, SlicerOptions, tmp_path / name), name, kept)


def test_a_bad_override_reaches_the_tts_page_translated():
    """The text stage nests the override's refusal in its own (the field named), both translated."""
    from app.infer.stages.text import TextStage

    with pytest.raises(ValueError) as refused:
        TextStage(text_version="v2", bert_dim=1024, bert=lambda: None).read("{重庆|chong2}", "zh")
    said = refused.value.args[0]
    shown = render(said, "zh")
    assert shown.startswith("文本") and "{重庆|chong2}" in shown and "音节" in shown
    assert "syllable" not in shown


def test_training_events_keep_their_key_through_the_status_file(tmp_path):
    from app.runstatus import RunStatus, read_status, write_status
    from app.train.common import TrainSession

    session = TrainSession(tmp_path / "run", stage="gpt", tensorboard=False)
    session.message(Message("train.note.saved", "saved {file}", file="G_100.pth"))
    said = read_status(tmp_path / "run" / "status.json").message
    assert isinstance(said, Message) and said == "saved G_100.pth"
    _reads_in_every_language(said, "G_100.pth")
    session.stopped()
    stopped = read_status(tmp_path / "run" / "status.json")
    assert stopped.state == "stopped" and stopped.message.key == "train.note.stopped"
    # A status file whose text no longer matches its record (edited by hand), or one without a
    # record (written before), gives its text as it is.
    path = tmp_path / "status.json"
    write_status(path, RunStatus(message=Message("train.note.finished", "finished")))
    data = json.loads(path.read_text(encoding="utf-8"))
    data["message"] = "finished by hand"
    path.write_text(json.dumps(data), encoding="utf-8")
    assert not isinstance(read_status(path).message, Message)
    del data["message_said"]
    path.write_text(json.dumps(data), encoding="utf-8")
    assert read_status(path).message == "finished by hand"


def test_transcription_and_clean_up_refusals_read_in_every_language(tmp_path):
    """The Label tab's ASR options, engines and clip folders, and its clean-up steps."""
    from app.data.preprocess.asr_base import TranscribeOptions
    from app.data.preprocess.cleanup import CleanupOptions
    from app.data.preprocess.transcribe import open_engine, transcribe_folder

    (tmp_path / "clips").mkdir()
    cases = [
        (_refusal(TranscribeOptions, beam_size=40), ("40",)),
        (_refusal(TranscribeOptions, language="xx"), ("'xx'",)),
        (_refusal(open_engine, TranscribeOptions(engine="nope"), tmp_path), ("'nope'",)),
        (_refusal(transcribe_folder, tmp_path / "absent", tmp_path, tmp_path), ("absent",)),
        (_refusal(transcribe_folder, tmp_path / "clips", tmp_path, tmp_path), ("clips",)),
        (
            _refusal(
                transcribe_folder, tmp_path / "clips", tmp_path, tmp_path, TranscribeOptions(speaker="a|b")
            ),
            ("'a|b'",),
        ),
        (
            _refusal(
                transcribe_folder, tmp_path / "clips", tmp_path, tmp_path, TranscribeOptions(speaker="a/b")
            ),
            ("a/b",),
        ),
        (_refusal(CleanupOptions, denoiser="loud"), ("'loud'",)),
    ]
    for said, kept in cases:
        _reads_in_every_language(said, *kept)


def test_separation_refusals_read_in_every_language(tmp_path):
    """The Label tab's vocal separation: options, engines, and models not installed (the most common
    refusal on a first run), kept translatable through the separators' own error classes."""
    from app.data.preprocess.separate import (
        MDX_SEPARATION_MODELS,
        VR_SEPARATION_MODELS,
        MissingModelError,
        SeparateOptions,
        load_demucs_separator,
        load_mdx_separator,
        load_vr_separator,
        separate_files,
    )

    cases = [
        (_refusal(SeparateOptions, overlap=1.5), ("1.5",)),
        (
            _refusal(separate_files, tmp_path, tmp_path / "out", tmp_path, SeparateOptions(engine="nope")),
            ("'nope'",),
        ),
        (
            _refusal(load_mdx_separator, SeparateOptions(engine="mdx", model="other.onnx"), tmp_path),
            ("'other.onnx'",),
        ),
    ]
    for load, model in (
        (load_demucs_separator, "htdemucs"),
        (load_mdx_separator, MDX_SEPARATION_MODELS[0]),
        (load_vr_separator, VR_SEPARATION_MODELS[0]),
    ):
        with pytest.raises(MissingModelError) as missing:
            load(SeparateOptions(model=model), tmp_path)
        assert isinstance(missing.value.args[0], Message), load.__name__
        cases.append((missing.value.args[0], (model, "download_models.py")))
    for said, kept in cases:
        _reads_in_every_language(said, *kept)


def test_a_wrong_gpt_file_is_refused_in_the_readers_language(tmp_path):
    """A SoVITS file, an empty file, plain bytes or no file in the GPT slot: named, and said in the
    reader's language (the TTS tab shows it inside its "GPT model: ..." line)."""
    from app.models.upstream.gpt import GPTFileError, read_gpt_file

    (tmp_path / "empty.ckpt").write_bytes(b"")
    (tmp_path / "sovits.ckpt").write_bytes(b"04" + b"\0" * 64)
    (tmp_path / "text.ckpt").write_bytes(b"hello, not a model")
    for name in ("empty.ckpt", "sovits.ckpt", "text.ckpt", "absent.ckpt"):
        with pytest.raises(GPTFileError) as refused:
            read_gpt_file(tmp_path / name)
        _reads_in_every_language(refused.value.args[0], name)
        if name == "sovits.ckpt":
            assert "SoVITS モデル" in render(refused.value.args[0], "ja")


def test_a_wrong_sovits_file_is_refused_in_the_readers_language(tmp_path):
    """An empty file, plain bytes, a broken zip, a folder or no file in the SoVITS slot."""
    from app.models.upstream.safe_pickle import CheckpointError
    from app.models.upstream.sovits import read_sovits

    (tmp_path / "empty.pth").write_bytes(b"")
    (tmp_path / "text.pth").write_bytes(b"hello, not a model")
    (tmp_path / "broken.pth").write_bytes(b"PK\x03\x04" + b"\0" * 64)
    (tmp_path / "folder.pth").mkdir()
    for name in ("empty.pth", "text.pth", "broken.pth", "folder.pth", "absent.pth"):
        with pytest.raises(CheckpointError) as refused:
            read_sovits(tmp_path / name)
        _reads_in_every_language(refused.value.args[0], name)
    assert "SoVITS 生成器" in render(_refusal(read_sovits, tmp_path / "text.pth"), "zh")
    from app.models.upstream.sovits_lora import read_lora

    (tmp_path / "lora.pth").write_bytes(b"PK\x03\x04" + b"\0" * 64)
    _reads_in_every_language(_refusal(read_lora, tmp_path / "lora.pth"), "lora.pth")
    from app.models.upstream.sv import read_sv
    from app.models.upstream.vocoder import read_bigvgan, read_v4_vocoder

    _reads_in_every_language(_refusal(read_v4_vocoder, tmp_path / "vocoder.pth"), "vocoder.pth")
    _reads_in_every_language(_refusal(read_bigvgan, tmp_path / "bigvgan"), "bigvgan")
    _reads_in_every_language(_refusal(read_sv, tmp_path / "sv.ckpt"), "sv.ckpt", "download_models.py")


def test_svc_model_files_and_preprocessing_are_refused_in_the_readers_language(tmp_path):
    """The SVC tab: a GPT-SoVITS file or plain bytes in the SVC slot, no config.json, no recordings."""
    from app.data.preprocess.svc.features import SvcPreprocessOptions, check_requirements, preprocess_svc
    from app.models.upstream.safe_pickle import CheckpointError
    from app.models.upstream.svc.checkpoint import read_config, read_svc
    from app.paths import SvcExperiment

    (tmp_path / "G_1.pth").write_bytes(b"04" + b"\0" * 64)  # a GPT-SoVITS SoVITS file's header
    (tmp_path / "G_2.pth").write_bytes(b"hello, not a model")
    for name in ("G_1.pth", "G_2.pth"):
        with pytest.raises(CheckpointError) as refused:
            read_svc(tmp_path / name)
        _reads_in_every_language(refused.value.args[0], name)
    _reads_in_every_language(_refusal(read_config, tmp_path / "config.json"), "config.json")
    experiment = SvcExperiment(tmp_path / "svc" / "voice").ensure()
    _reads_in_every_language(
        _refusal(preprocess_svc, experiment, SvcPreprocessOptions(pretrained_root=tmp_path))
    )
    rmvpe = SvcPreprocessOptions(pretrained_root=tmp_path, f0_method="rmvpe")
    _reads_in_every_language(_refusal(check_requirements, rmvpe), "rmvpe.pt", "download_models.py rmvpe")


def test_a_failed_long_form_job_keeps_its_error_translatable():
    """job.json keeps the error's key beside its English text, so the Long-form tab words it in its
    reader's language; a file whose text no longer matches its record gives the text as it is."""
    from app.infer.longform.sources import KINDS
    from app.infer.longform.state import JobOptions, JobState, from_json, to_json
    from app.paths import safe_name

    said = _refusal(safe_name, "a/b")
    state = JobState(kind=KINDS[0], options=JobOptions(), voices=(), lines=(), state="failed", error=said)
    error = from_json(to_json(state)).error
    assert isinstance(error, Message) and error == str(said)  # the API's status says the English
    _reads_in_every_language(error, "a/b")
    data = json.loads(to_json(state))
    data["error"] = "edited by hand"
    assert from_json(json.dumps(data)).error == "edited by hand"


def test_pitch_tracking_refusals_read_in_every_language():
    """SVC conversion and preprocessing: a clip too short for pm, NaN samples, an unknown method."""
    import numpy as np

    from app.audio.pitch import extract

    short = np.zeros(800, dtype=np.float32)
    _reads_in_every_language(_refusal(extract, short, 16000, hop=160, method="pm"), "0.050")
    _reads_in_every_language(_refusal(extract, np.full(3200, np.nan, dtype=np.float32), 16000, hop=160))
    _reads_in_every_language(_refusal(extract, short, 16000, hop=160, method="guess"), "'guess'")


# Calls that put an event into a run's status file -> the position of its text.
EVENTS = {"message": 0, "done": 0, "stopped": 0, "finish": 1}


def _raw_events(tree: ast.AST) -> list[int]:
    """Lines where a trainer or the formatting run reports an event as literal text or an f-string."""
    return [
        call.lineno
        for call in _calls(tree)
        if isinstance(call.func, ast.Attribute)
        and call.func.attr in EVENTS
        and len(call.args) > EVENTS[call.func.attr]
        and _raw_text(call.args[EVENTS[call.func.attr]])
    ]


def test_trainers_report_their_events_as_messages():
    runs = [*_modules(APP / "train"), *_modules(APP / "data" / "preprocess")]
    bad = [f"{p.relative_to(APP.parent)}:{n}" for p, tree in runs for n in _raw_events(tree)]
    assert not bad, "report a run's events with a Message (app/ui/messages/runs.py):\n" + "\n".join(bad)
    caught = ast.parse(
        's.message(f"saved {p}")\ns.done("finished")\ns.stopped(Message("k", "t"))\ns.done()\n'
        's.finish("failed", "formatting failed")\ns.finish("done", DONE)'
    )
    assert _raw_events(caught) == [1, 2, 5]


def test_an_untitled_chapter_is_named_in_the_readers_language():
    from app.infer.longform import parse_source
    from app.ui.tabs.longform import _titled
    from tests.infer.longform.test_sources import _epub

    # _epub's spine reads its second chapter first: "Named" is chapter 1, the untitled one chapter 2.
    script = parse_source(_epub(["<p>Untitled.</p>", "<h1>Named</h1><p>Text.</p>"]), "epub")
    chapters = [line.chapter for line in script.lines]
    assert chapters == ["Named", "Named", "Chapter 2"]  # the API, the CLI and job files: English
    assert [line.chapter for line in _titled(script, "zh").lines] == ["Named", "Named", "第 2 章"]
    titled = _titled(script, "ja")
    assert [line.text for line in titled.lines] == [line.text for line in script.lines]
    assert not any(isinstance(line.chapter, Message) for line in titled.lines)  # saved as written


def test_a_message_may_have_fields_named_key_and_template():
    """The key and template are positional only: a layer's template may name a weight's key."""
    said = Message(
        "lorafile.err.base_lacks", "{path}: adapts {key} ({template})", path="a.pth", key="k", template="t"
    )
    assert said == "a.pth: adapts k (t)" and said.key == "lorafile.err.base_lacks"
    assert dict(said.params) == {"path": "a.pth", "key": "k", "template": "t"}


def test_the_download_catalog_describes_its_models_in_every_language(tmp_path):
    """Every asset's description is a Message with a text in each language; the "not installed"
    text around it (missing files, folder, how to fetch) is translated, file names and URLs kept."""
    from app.assets import all_assets, asset_status, get, missing_message

    for asset in all_assets():
        assert isinstance(asset.description, Message), asset.id
        shown = {lang: render(asset.description, lang) for lang in LANGUAGES}
        assert shown["en"] == str(asset.description)
        assert all(text != shown["en"] for lang, text in shown.items() if lang != "en"), asset.id
    statuses = [asset_status(get(i), tmp_path) for i in ("rmvpe", "g2pw", "content-vec-best", "fcpe")]
    said = missing_message(statuses, command="fetch")
    assert str(said).startswith(
        "rmvpe (RMVPE pitch estimator; used by SVC: f0 extraction (rmvpe)) is incomplete."
    )
    kept = ("rmvpe.pt", "G2PWModel.zip", "https://huggingface.co/lj1995/VoiceConversionWebUI", "fetch rmvpe")
    _reads_in_every_language(said, *kept, str(tmp_path / "content-vec-best"))
    for lang in LANGUAGES[1:]:
        shown = render(said, lang)
        assert not any(
            words in shown for words in ("is incomplete", "by hand", "missing:", "pitch estimator")
        )


def test_no_voice_model_at_all_is_said_in_the_readers_language(tmp_path):
    """The TTS tab's refusal when no GPT/SoVITS model is there, with the missing base models under it."""
    from app.paths import Layout
    from app.services.weights import list_weights

    said = list_weights(Layout(tmp_path, tmp_path / "pretrained_models").ensure()).message
    assert isinstance(said, Message) and said.startswith(
        "No GPT and SoVITS model found: put fine-tuned files"
    )
    _reads_in_every_language(said, "GPT_weights/", "SoVITS_weights/", "chinese-hubert-base", "s2G2333k.pth")
    assert "(below)." in said and "is incomplete" in said
    for lang in LANGUAGES[1:]:
        assert not any(words in render(said, lang) for words in ("model found", "is incomplete", "GPT and"))


def test_a_wrong_vocoder_file_is_refused_in_the_readers_language(tmp_path):
    """Another model's file, a truncated file and a broken config in the v4/v3 vocoder slots: the
    sentence, the file kinds nested in it and the config's own refusal are all translated."""
    import torch

    from app.models.upstream.vocoder import load_vocoder, read_bigvgan_config, read_v4_vocoder
    from app.models.vocoders.hifigan import HiFiGANVocoderConfig

    torch.save({"model.ar_text_embedding.weight": torch.zeros(2, 2)}, tmp_path / "gpt.pth")
    torch.save({"conv_pre.weight": torch.zeros(2, 2)}, tmp_path / "flat.pth")
    (tmp_path / "short.pth").write_bytes(b"PK")
    config = {
        "num_mels": 4,
        "upsample_rates": [2],
        "upsample_kernel_sizes": [4],
        "upsample_initial_channel": 8,
        "resblock": "1",
        "resblock_kernel_sizes": [3],
        "resblock_dilation_sizes": [[1]],
        "activation": "snakebeta",
        "snake_logscale": True,
        "sampling_rate": 100,
        "hop_size": 3,
    }
    (tmp_path / "hop.json").write_text(json.dumps(config), encoding="utf-8")
    (tmp_path / "hifigan.json").write_text(json.dumps({"resblock": "1"}), encoding="utf-8")
    (tmp_path / "bad.json").write_text("{", encoding="utf-8")
    gpt = _refusal(read_v4_vocoder, tmp_path / "gpt.pth")
    assert gpt.endswith(
        "this is a GPT-SoVITS GPT (s1) model's weights, expected the GPT-SoVITS v4 vocoder "
        "(gsv-v4-pretrained/vocoder.pth, a bare state dict without weight norm)"
    )
    cases = [
        (gpt, ("gpt.pth", "s1", "vocoder.pth")),
        (_refusal(read_v4_vocoder, tmp_path / "flat.pth"), ("flat.pth", "'conv_pre.weight'")),
        (_refusal(read_v4_vocoder, tmp_path / "short.pth"), ("short.pth", "2")),
        (_refusal(read_bigvgan_config, tmp_path / "hop.json"), ("hop.json", "hop_size 3", "[2]")),
        (
            _refusal(read_bigvgan_config, tmp_path / "hifigan.json"),
            ("hifigan.json", "HiFi-GAN", "'activation'"),
        ),
        (_refusal(read_bigvgan_config, tmp_path / "bad.json"), ("bad.json", "config.json")),
        (_refusal(HiFiGANVocoderConfig, resblock="3"), ("'3'",)),
        (_refusal(load_vocoder, "v2", tmp_path), ("'v2'",)),
    ]
    for said, kept in cases:
        _reads_in_every_language(said, *kept)
    for lang in LANGUAGES[1:]:  # the nested parts too
        assert "model's weights" not in render(gpt, lang) and "bare state dict" not in render(gpt, lang)
        assert "differs from" not in render(cases[3][0], lang)


def test_a_wrong_speaker_verification_file_is_refused_in_the_readers_language(tmp_path):
    """Another model's file, a file without ERes2NetV2's first layers, one whose layers do not add up."""
    import torch

    from app.models.upstream.sv import read_sv

    torch.save({"enc_p.proj.weight": torch.zeros(2)}, tmp_path / "sovits.ckpt")
    torch.save({"other.weight": torch.zeros(2)}, tmp_path / "odd.ckpt")
    state = {"conv1.weight": torch.zeros(4, 1, 3, 3), "layer1.0.conv3.weight": torch.zeros(6, 1, 1, 1)}
    state["layer1.0.convs.0.weight"] = torch.zeros(2, 2, 3, 3)
    torch.save(state, tmp_path / "layers.ckpt")
    sovits = _refusal(read_sv, tmp_path / "sovits.ckpt")
    assert sovits.endswith(
        "this is a GPT-SoVITS SoVITS (s2) model's weights, expected the ERes2NetV2 speaker-verification "
        "weights (pretrained_eres2netv2w24s4ep4.ckpt, a bare state dict)"
    )
    layers = _refusal(read_sv, tmp_path / "layers.ckpt")
    assert layers.endswith("layer1 outputs 6 channels, not a multiple of m_channels 4")
    for said, kept in ((sovits, ("sovits.ckpt", "s2")), (layers, ("layers.ckpt", "6", "m_channels 4"))):
        _reads_in_every_language(said, *kept)
    _reads_in_every_language(_refusal(read_sv, tmp_path / "odd.ckpt"), "odd.ckpt", "'conv1.weight'")
    for lang in LANGUAGES[1:]:
        assert "not a multiple" not in render(layers, lang) and "bare state dict" not in render(sovits, lang)


def test_a_roformer_config_or_checkpoint_that_does_not_fit_is_refused_in_the_readers_language(tmp_path):
    """The .yaml published with a RoFormer checkpoint: unreadable, a section or setting wrong; and a
    checkpoint that is not a state dict. The nested config refusal is translated too."""
    import torch

    from app.models.upstream.roformer import load_model, read_config

    (tmp_path / "bad.yaml").write_text("model: [1\n", encoding="utf-8")
    (tmp_path / "nomodel.yaml").write_text("audio: {}\ntraining: {}\n", encoding="utf-8")
    (tmp_path / "odd.yaml").write_text("model: {wings: 2}\naudio: {}\ntraining: {}\n", encoding="utf-8")
    bands = "model: {dim: 8, depth: 1, freqs_per_bands: [2, 2], stft_n_fft: 8}\naudio: {}\ntraining: {}\n"
    (tmp_path / "bands_roformer.yaml").write_text(bands, encoding="utf-8")
    torch.save([1, 2], tmp_path / "list.ckpt")
    cases = [
        (_refusal(read_config, tmp_path / "bad.yaml"), ("bad.yaml",)),
        (_refusal(read_config, tmp_path / "nomodel.yaml"), ("nomodel.yaml", "'model:'")),
        (_refusal(read_config, tmp_path / "odd.yaml"), ("odd.yaml", "wings")),
        (_refusal(read_config, tmp_path / "bands_roformer.yaml"), ("bands_roformer.yaml", "4", "5")),
        (_refusal(load_model, tmp_path / "list.ckpt", None), ("list.ckpt",)),
    ]
    for said, kept in cases:
        _reads_in_every_language(said, *kept)
    assert cases[3][0].endswith("freqs_per_bands sum to 4, the STFT has 5 bins")
    for lang in LANGUAGES[1:]:
        assert "the STFT has" not in render(cases[3][0], lang)


def test_a_uvr_vr_file_that_does_not_fit_is_refused_in_the_readers_language(tmp_path):
    """A UVR VR-architecture file of the other network kind, or without its output layer."""
    import torch

    from app.models.upstream.uvr_vr import ASPP, CASCADED, load_vr_net

    torch.save({"x.weight": torch.zeros(2)}, tmp_path / "odd.pth")
    torch.save({"stg2_bridge.conv.0.weight": torch.zeros(2)}, tmp_path / "aspp.pth")
    other = _refusal(load_vr_net, tmp_path / "odd.pth", ASPP, 1024)
    assert other.endswith(
        "this is not a UVR VR-architecture network, expected a aspp network for this file name"
    )
    cases = [
        (other, ("odd.pth", "aspp")),
        (_refusal(load_vr_net, tmp_path / "aspp.pth", CASCADED, 1024), ("aspp.pth", "cascaded")),
    ]
    for said, kept in cases:
        _reads_in_every_language(said, *kept)
    for lang in LANGUAGES[1:]:
        assert "network" not in render(other, lang)


def test_broken_svc_feature_files_are_refused_in_the_readers_language(tmp_path):
    """Per-clip feature files of the SVC preprocessing: missing, of the wrong shape or kind, and a
    cluster model that is not one; the file kind named in the sentence is translated too."""
    import numpy as np
    import torch

    from app.models.upstream.svc.features import read_cluster, read_content, read_f0, read_spec, read_volume

    torch.save(torch.zeros(2, 2, 2, 2), tmp_path / "a.soft.pt")
    torch.save({"x": 1}, tmp_path / "b.spec.pt")
    np.save(tmp_path / "c.f0.npy", np.zeros((2, 3, 1), dtype=np.float32))
    torch.save({"spk": {"n": 1}}, tmp_path / "kmeans_10000.pt")
    missing = _refusal(read_content, tmp_path / "absent.soft.pt")
    assert missing.endswith("absent.soft.pt: missing content features; run the SVC preprocessing again")
    cases = [
        (missing, ("absent.soft.pt",)),
        (_refusal(read_content, tmp_path / "a.soft.pt"), ("a.soft.pt", "(2, 2, 2, 2)")),
        (_refusal(read_spec, tmp_path / "b.spec.pt"), ("b.spec.pt",)),
        (_refusal(read_volume, tmp_path / "absent.vol.npy"), ("absent.vol.npy",)),
        (_refusal(read_f0, tmp_path / "c.f0.npy"), ("c.f0.npy",)),
        (_refusal(read_cluster, tmp_path / "kmeans_10000.pt"), ("kmeans_10000.pt", "'spk'")),
        (_refusal(read_cluster, tmp_path / "none.pt"), ("none.pt",)),
    ]
    for said, kept in cases:
        _reads_in_every_language(said, *kept)
    for lang in LANGUAGES[1:]:
        assert "content features" not in render(missing, lang)


def test_content_encoder_refusals_read_in_every_language(tmp_path):
    """An encoder folder without its model, an encoder no SVC model uses, a silent or too loud
    training clip, the BERT folder missing."""
    import numpy as np

    from app.models.encoders.bert import BertFeaturizer, BertOptions
    from app.models.encoders.content import encoder_folder, load_content_encoder
    from app.models.encoders.hubert import HubertEncoder, training_input

    (tmp_path / "empty").mkdir()
    cases = [
        (
            _refusal(load_content_encoder, "vec768l12", tmp_path / "empty"),
            ("empty", "vec768l12", "config.json"),
        ),
        (_refusal(load_content_encoder, "whisper-ppg", tmp_path), ("'whisper-ppg'", "vec768l12")),
        (_refusal(encoder_folder, "whisper-ppg", tmp_path), ("'whisper-ppg'",)),
        (_refusal(HubertEncoder, tmp_path / "empty"), ("empty", "chinese-hubert-base")),
        (_refusal(training_input, np.zeros(400, dtype=np.float32)), ()),
        (_refusal(training_input, np.full(400, 3.0, dtype=np.float32)), ("3.00", "2.2")),
        (_refusal(BertFeaturizer, BertOptions(model_dir=tmp_path / "empty")), ("empty", "chinese-roberta")),
    ]
    for said, kept in cases:
        _reads_in_every_language(said, *kept)


def test_run_config_refusals_read_in_every_language(tmp_path):
    """A training run's settings that do not go together (the Train and SVC tabs' run.yaml)."""
    from app.runconfig import SoVITSRunConfig, SvcRunConfig, run_folder

    base = {"exp_name": "x", "exp_dir": tmp_path, "weights_dir": tmp_path, "pretrained_g": None}
    unused = _refusal(
        SoVITSRunConfig, **base, pretrained_d=tmp_path / "D.pth", version="v4", text_low_lr_rate=0.1
    )
    assert str(unused).startswith(
        "v4 LoRA training does not use pretrained_d (v3/v4 train without a discriminator), "
    )
    cases = [
        (unused, ("v4", "pretrained_d", "text_low_lr_rate")),
        (
            _refusal(SoVITSRunConfig, **base, pretrained_d=None, version="v2", lora_rank=4),
            ("v2", "lora_rank"),
        ),
        (_refusal(SoVITSRunConfig, **base, pretrained_d=None, version="v4", lora_rank=0), ("0",)),
        (_refusal(SvcRunConfig, experiment=tmp_path, precision="fp8"), ("'fp8'",)),
        (_refusal(run_folder, "svc", "v2"), ("'svc'",)),
    ]
    for said, kept in cases:
        _reads_in_every_language(said, *kept)
    for lang in LANGUAGES[1:]:
        assert "discriminator" not in render(unused, lang) and "frozen" not in render(unused, lang)


def test_an_svc_config_that_does_not_fit_is_refused_in_the_readers_language():
    """A so-vits-svc config.json without its sections, with bad speaker ids or an unsupported vocoder."""
    from app.models.svc.config import SvcConfig

    cases = [
        (_refusal(SvcConfig.from_json, [], "x/config.json"), ("x/config.json",)),
        (_refusal(SvcConfig.from_json, {"data": {}}, "x/config.json"), ("'model'",)),
        (_refusal(SvcConfig.from_json, {"data": {}, "model": {}, "spk": {"a": "b"}}), ("'spk'",)),
    ]
    for said, kept in cases:
        _reads_in_every_language(said, *kept)


def test_a_broken_hubert_weights_file_is_refused_in_the_readers_language(tmp_path):
    """A HuBERT folder whose model.safetensors is cut short: the loader's sentence and the file
    reader's reason nested in it are both translated."""
    from app.models.encoders.hubert import HubertEncoder

    folder = tmp_path / "chinese-hubert-base"
    folder.mkdir()
    (folder / "config.json").write_text('{"model_type": "hubert"}', encoding="utf-8")
    (folder / "model.safetensors").write_bytes(b"\xff" * 16)
    said = _refusal(HubertEncoder, folder)
    _reads_in_every_language(said, "model.safetensors")
    assert "not a safetensors file" in said
    for lang in LANGUAGES[1:]:
        assert "not a safetensors file" not in render(said, lang)


def test_svc_synthesis_refusals_read_in_every_language():
    """Content features of another encoder's width, a speaker the model lacks, no uv."""
    import torch

    from app.models.svc.synthesizer import SvcSynthesizer
    from tests.models.svc.tiny import tiny_config

    model = SvcSynthesizer(tiny_config().synthesizer()).eval()
    f0, uv = torch.full((1, 8), 200.0), torch.ones(1, 8)
    cases = [
        (_refusal(model.infer, torch.zeros(1, 5, 8), f0, uv, sid=0), ("5", "12")),
        (_refusal(model.infer, torch.zeros(1, 12, 8), f0, uv, sid=99), ("[99]",)),
        (_refusal(model.infer, torch.zeros(1, 12, 8), f0, None, sid=0), ("uv",)),
    ]
    for said, kept in cases:
        _reads_in_every_language(said, *kept)


def test_library_reasons_are_worded_in_plain_words_with_the_library_text_as_detail(tmp_path):
    """A RoFormer config lacking a required setting, a VR file whose LSTM does not fit its band
    parameters, a HuBERT config.json that is not JSON and a pytorch_model.bin that is not one: each
    is said in a sentence of its own in every language; the library's text only trails as a detail."""
    import torch

    from app.models.encoders.hubert_net import load_hubert_net
    from app.models.upstream.roformer import read_config
    from app.models.upstream.uvr_vr import CASCADED, load_vr_net

    lacking = "model: {depth: 1, freqs_per_bands: [2, 3], stft_n_fft: 8}\naudio: {}\ntraining: {}\n"
    (tmp_path / "lacking_roformer.yaml").write_text(lacking, encoding="utf-8")
    roformer = _refusal(read_config, tmp_path / "lacking_roformer.yaml")
    assert "the model section lacks required settings: dim (detail: " in roformer
    state = {
        "out.weight": torch.zeros(2, 8, 1, 1),
        "stg3_full_band_net.lstm_dec2.dense.0.weight": torch.zeros(3, 4),
    }
    torch.save(state, tmp_path / "vr.pth")
    vr = _refusal(load_vr_net, tmp_path / "vr.pth", CASCADED, 1024)
    assert "does not fit the band parameters" in vr and "its LSTM reads 3 bins" in vr
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "config.json").write_text("{model_type", encoding="utf-8")
    (tmp_path / "torn").mkdir()
    (tmp_path / "torn" / "config.json").write_text('{"model_type": "hubert"}', encoding="utf-8")
    (tmp_path / "torn" / "pytorch_model.bin").write_bytes(b"\x00" * 32)
    hubert = []
    for folder in ("broken", "torn"):
        with pytest.raises(OSError) as refused:
            load_hubert_net(tmp_path / folder)
        hubert.append(refused.value.args[0])
    assert "not valid JSON" in hubert[0] and "not a readable PyTorch weights file" in hubert[1]
    for said, kept in [(roformer, ("lacking_roformer.yaml", "dim")), (vr, ("vr.pth", "3", "256"))]:
        _reads_in_every_language(said, *kept)
    for said, name in zip(hubert, ("config.json", "pytorch_model.bin"), strict=True):
        assert isinstance(said, Message)
        _reads_in_every_language(said, name, said.params["detail"])
    for lang in LANGUAGES[1:]:
        assert "lacks required" not in render(roformer, lang) and "LSTM reads" not in render(vr, lang)
        assert "missing 1 required" in render(roformer, lang)  # Python's own words, as the detail


def test_svc_training_refusals_reach_the_status_file_translatable(tmp_path):
    """A clip of a speaker config.json does not know is refused with a Message; a training session
    that ends on such a refusal keeps its key in the status file, so the SVC tab words it."""
    from app.runstatus import read_status
    from app.train.common import TrainSession
    from app.train.svc.data import SvcDataError, SvcDataset
    from tests.models.svc.tiny import tiny_config

    config = tiny_config()
    with pytest.raises(SvcDataError) as refused, TrainSession(tmp_path, stage="svc", tensorboard=False):
        SvcDataset([tmp_path / "nobody" / "a.wav"], config)
    said = refused.value.args[0]
    assert isinstance(said, Message) and "speaker folder 'nobody' is not in" in said
    _reads_in_every_language(said, "a.wav", "'nobody'")
    shown = read_status(tmp_path / "status.json").last_error
    assert shown.key == said.key and shown == said
    for lang in LANGUAGES[1:]:
        assert "is not in config.json" not in render(shown, lang)
