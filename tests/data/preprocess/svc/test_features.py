"""SVC preprocessing on generated singing: 4.1 tree, skips, split, config, features, resume, CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from app.audio.pitch_range import read_report
from app.data.preprocess.svc.dataset import make_config, read_list
from app.data.preprocess.svc.features import SvcPreprocessError, SvcPreprocessOptions, preprocess_svc
from app.models.upstream.svc.checkpoint import read_config
from app.models.upstream.svc.features import feature_paths, read_content, read_f0, read_spec
from app.paths import SvcExperiment
from tests.svc_data import HOP, SR, make_raw_dataset, sung, tiny_hubert, tiny_template


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("pretrained")
    tiny_hubert(root / "content-vec-best")
    return root


@pytest.fixture(scope="module")
def prepared(tmp_path_factory, pretrained):
    exp = SvcExperiment(tmp_path_factory.mktemp("svc") / "exp")
    make_raw_dataset(exp.raw)
    events = []
    options = SvcPreprocessOptions(pretrained_root=pretrained, f0_method="pm", template=tiny_template())
    report = preprocess_svc(
        exp, options, progress=lambda stage, done, total: events.append((stage, done, total))
    )
    return exp, options, report, events


def test_tree_lists_and_config_follow_41(prepared) -> None:
    exp, _, report, events = prepared
    train = exp.train_list.read_text().splitlines()
    val = exp.val_list.read_text().splitlines()
    assert all(row.startswith("./dataset/44k/") and row.endswith(".wav") for row in train + val)
    by_speaker = {spk: [r for r in val if f"/{spk}/" in r] for spk in ("alto", "tenor")}
    assert {k: len(v) for k, v in by_speaker.items()} == {"alto": 2, "tenor": 2}
    assert not set(train) & set(val)
    assert len(train) + len(val) == 11  # 5 alto phrases + 4 tenor phrases + 2 spoken; 2 bad files dropped
    assert report.train == len(train) and report.val == len(val)
    config = read_config(exp.config)
    assert config.spk == {"alto": 0, "tenor": 1} and config.model.n_speakers == 2
    assert config.model.ssl_dim == 16  # the template's width, checked against the encoder
    assert read_list(exp.train_list, exp)[0].is_file()
    assert events[-1] == ("features", 11, 11) and ("clips", 13, 13) in events


def test_short_and_silent_files_are_skipped_with_a_reason(prepared) -> None:
    _, _, report, _ = prepared
    reasons = {s.source.name: s.reason for s in report.clips.skipped}
    assert set(reasons) == {"blip.wav", "mute.wav"}
    assert "too short" in reasons["blip.wav"] and "0.3" in reasons["blip.wav"]
    assert "silent" in reasons["mute.wav"]
    assert "skipped `blip.wav`" in report.summary()


def test_clips_are_resampled_trimmed_and_peak_normalised(prepared) -> None:
    exp, _, _, _ = prepared
    clip = exp.dataset / "alto" / "phrase0.wav"
    info = sf.info(clip)
    assert info.samplerate == SR and info.subtype == "PCM_16"
    wav, _ = sf.read(clip, dtype="float32")
    assert np.abs(wav).max() > 0.99  # 4.1's loudnorm: peak at full scale
    assert len(wav) < (0.4 + 4 * 0.6) * SR - 0.1 * SR  # leading/trailing silence trimmed
    spoken = exp.dataset / "tenor" / "spoken0.wav"
    assert spoken.is_file()  # espeak's 22.05 kHz wav was resampled into the tree


def test_feature_files_have_41_shapes_and_agree_in_length(prepared) -> None:
    exp, _, _, _ = prepared
    for clip in read_list(exp.val_list, exp):
        n = sf.info(clip).frames
        paths = feature_paths(clip)
        f0, _ = read_f0(paths["f0"])
        assert len(f0) == n // HOP
        c = torch.load(paths["content"], weights_only=True)
        assert c.shape[:2] == (1, 16) and abs(c.shape[2] - n / SR * 50) <= 2  # 50 frames/s
        spec = read_spec(paths["spec"])
        assert spec.shape == (257, len(f0))
        assert read_content(paths["content"]).shape == c.shape[1:]
        assert not paths["volume"].exists()  # no volume embedding in this config


def test_pitch_report_places_each_voice(prepared) -> None:
    exp, _, report, _ = prepared
    alto, tenor = report.pitch["alto"], report.pitch["tenor"]
    assert 240 < alto.median < 340  # the alto phrases sit on 220-392 Hz notes
    assert 120 < tenor.median < 200
    assert alto.p5 < alto.median < alto.p95
    assert read_report(exp.config.parent / "pitch_report.json")["alto"] == alto
    assert "alto: median" in report.summary()


def test_rerun_skips_done_work_and_fills_gaps(prepared) -> None:
    exp, options, _, _ = prepared
    victim = feature_paths(exp.dataset / "tenor" / "phrase1.wav")
    victim["f0"].unlink()
    kept = feature_paths(exp.dataset / "alto" / "phrase2.wav")["content"]
    before = kept.stat().st_mtime_ns
    report = preprocess_svc(exp, options)
    assert report.features_written == 1 and report.features_reused == 10
    assert report.clips.written == 0 and report.clips.reused == 11
    assert victim["f0"].is_file() and kept.stat().st_mtime_ns == before


def test_missing_encoder_names_the_download(tmp_path) -> None:
    exp = SvcExperiment(tmp_path / "exp")
    (exp.raw / "a").mkdir(parents=True)
    sf.write(exp.raw / "a" / "x.wav", sung(1.0, 220), SR)
    options = SvcPreprocessOptions(pretrained_root=tmp_path / "empty", f0_method="pm")
    with pytest.raises(SvcPreprocessError, match=r"download_models\.py content\-vec\-best"):
        preprocess_svc(exp, options)
    with pytest.raises(SvcPreprocessError, match=r"rmvpe\.pt"):
        preprocess_svc(exp, SvcPreprocessOptions(pretrained_root=tmp_path, f0_method="rmvpe"))


def test_width_mismatch_between_config_and_encoder_is_refused(tmp_path, pretrained) -> None:
    exp = SvcExperiment(tmp_path / "exp")
    (exp.raw / "a").mkdir(parents=True)
    sf.write(exp.raw / "a" / "x.wav", sung(1.0, 220), SR)
    options = SvcPreprocessOptions(
        pretrained_root=pretrained, f0_method="pm", template=tiny_template(ssl_dim=24)
    )
    with pytest.raises(SvcPreprocessError, match=r"16\-d features but config\.json has model\.ssl_dim = 24"):
        preprocess_svc(exp, options)


def test_default_config_uses_41_widths_per_encoder() -> None:
    c768 = make_config(["b", "a"])
    assert (c768.model.ssl_dim, c768.model.gin_channels, c768.model.filter_channels) == (768, 768, 768)
    assert c768.spk == {"a": 0, "b": 1} and c768.model.n_speakers == 2
    c256 = make_config(["a"], speech_encoder="vec256l9", vol_embedding=True)
    assert (c256.model.ssl_dim, c256.model.gin_channels, c256.model.filter_channels) == (256, 256, 768)
    assert c256.model.vol_embedding and c256.train.vol_aug
    data = c256.to_json()
    assert data["model"]["speech_encoder"] == "vec256l9" and data["train"]["vol_aug"] is True


@pytest.mark.slow
def test_cli_with_two_workers_matches_in_process_features(tmp_path, pretrained, prepared) -> None:
    exp_dir = tmp_path / "cli_exp"
    raw = tmp_path / "raw" / "alto"
    raw.mkdir(parents=True)
    src = prepared[0].raw / "alto"
    for name in ("phrase0.flac", "phrase1.flac", "phrase2.flac"):
        (raw / name).write_bytes((src / name).read_bytes())
    template = tmp_path / "template.json"
    template.write_text(json.dumps(tiny_template().to_json()))
    cmd = [
        sys.executable, "-m", "app.data.preprocess.svc.features", str(exp_dir), "--raw", str(raw.parent),
        "--pretrained", str(pretrained), "--f0", "pm", "--config-template", str(template), "--workers", "2",
    ]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "3** clips of 1 speaker(s)" in done.stdout
    ours = feature_paths(exp_dir / "dataset" / "44k" / "alto" / "phrase0.wav")
    reference = feature_paths(prepared[0].dataset / "alto" / "phrase0.wav")
    torch.testing.assert_close(read_content(ours["content"]), read_content(reference["content"]))
    np.testing.assert_array_equal(read_f0(ours["f0"])[0], read_f0(reference["f0"])[0])
    bad = subprocess.run(
        [sys.executable, "-m", "app.data.preprocess.svc.features", str(tmp_path / "none"), "--pretrained", str(pretrained)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert bad.returncode == 2 and "dataset_raw" in bad.stderr


def test_long_source_names_give_clips_whose_feature_files_fit(tmp_path) -> None:
    from app.data.preprocess.svc.dataset import prepare_clips

    raw = tmp_path / "raw"
    raw.mkdir()
    sources = [raw / ("語" * 83 + ".wav"), raw / ("語" * 83 + ".flac"), raw / "-x 'q' $(y).wav"]
    for source in sources:
        sf.write(source, sung(1.5, 220.0), SR)
    tree = SvcExperiment(tmp_path / "exp").ensure()
    result = prepare_clips({"singer": sources}, tree, SR)
    clips = result.clips["singer"]
    assert len(clips) == 3 and not result.skipped
    assert any(c.name == "-x 'q' $(y).wav" for c in clips)  # ordinary names stay 4.1's
    for clip in clips:
        for path in feature_paths(clip).values():
            assert len(path.name.encode()) <= 255
            path.write_bytes(b"x")
