"""Model listing for the TTS tab: base and fine-tuned files, upstream folders, missing-model messages."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from app.infer import ModelLoadError
from app.paths import Layout
from app.services.weights import list_weights, pipeline_spec


def _touch(path: Path, mtime: float | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return path


def _encoders(layout: Layout) -> None:
    for folder in ("chinese-hubert-base", "chinese-roberta-wwm-ext-large"):
        _touch(layout.pretrained / folder / "config.json")
        _touch(layout.pretrained / folder / "model.safetensors")


def test_empty_data_root_names_every_missing_model(tmp_path):
    layout = Layout(tmp_path).ensure()
    listing = list_weights(layout)
    assert listing.gpt == () and listing.sovits == () and not listing.ready
    msg = listing.message
    assert msg.startswith("No GPT and SoVITS model found")
    for needed in (
        "chinese-hubert-base",
        "chinese-roberta-wwm-ext-large",
        "gsv-v2final-pretrained/s2G2333k.pth",
        "s1bert25hz-5kh-longer-epoch=12-step=369668.ckpt",
        "python tools/download_models.py gpt-sovits-v2",
        "python tools/download_models.py chinese-hubert-base",
    ):
        assert needed in msg, needed


def test_fine_tuned_and_base_files_are_listed(tmp_path):
    layout = Layout(tmp_path).ensure()
    _encoders(layout)
    old = _touch(layout.gpt_weights / "voice-e5.ckpt", 1_000)
    new = _touch(layout.gpt_weights / "sub" / "voice-e15.ckpt", 2_000)
    upstream = _touch(tmp_path / "GPT_weights_v2" / "community-e10.ckpt", 1_500)
    _touch(layout.gpt_weights / ".hidden.ckpt")
    _touch(layout.gpt_weights / "notes.txt")
    sov = _touch(tmp_path / "SoVITS_weights_v2" / "community_e8_s100.pth")
    base_gpt = _touch(
        layout.pretrained / "gsv-v2final-pretrained" / "s1bert25hz-5kh-longer-epoch=12-step=369668.ckpt"
    )
    base_g = _touch(layout.pretrained / "gsv-v2final-pretrained" / "s2G2333k.pth")
    _touch(layout.pretrained / "gsv-v2final-pretrained" / "s2D2333k.pth")
    listing = list_weights(layout)
    assert [w.path for w in listing.gpt] == [
        new,
        upstream,
        old,
        base_gpt,
    ]  # fine-tuned newest first, base last
    assert [w.label for w in listing.gpt][:2] == [
        "GPT_weights/sub/voice-e15.ckpt",
        "GPT_weights_v2/community-e10.ckpt",
    ]
    assert listing.gpt[-1].base and listing.gpt[-1].label.startswith("base v2: ")
    assert [w.path for w in listing.sovits] == [sov, base_g]  # the discriminator is not offered
    assert listing.ready and listing.message == ""


def test_missing_encoder_is_reported_but_listing_works(tmp_path):
    layout = Layout(tmp_path).ensure()
    _encoders(layout)
    (layout.pretrained / "chinese-roberta-wwm-ext-large" / "model.safetensors").unlink()
    _touch(layout.gpt_weights / "a.ckpt")
    _touch(layout.sovits_weights / "a.pth")
    listing = list_weights(layout)
    assert listing.ready and "chinese-roberta-wwm-ext-large" in listing.message
    assert "chinese-hubert-base (" not in listing.message


def test_pipeline_spec_resolves_inside_the_data_root_only(tmp_path):
    layout = Layout(tmp_path).ensure()
    gpt = _touch(layout.gpt_weights / "a.ckpt")
    sov = _touch(layout.sovits_weights / "a.pth")
    spec = pipeline_spec(layout, "GPT_weights/a.ckpt", str(sov), device="cpu", precision="fast")
    assert spec.gpt_path == gpt.resolve() and spec.sovits_path == sov.resolve() and spec.precision == "fast"
    assert spec.hubert_dir == layout.pretrained / "chinese-hubert-base"
    outside = _touch(tmp_path.parent / f"{tmp_path.name}-outside.ckpt")
    with pytest.raises(ModelLoadError, match="outside the data folder"):
        pipeline_spec(layout, outside, sov)
    with pytest.raises(ModelLoadError, match=r"GPT model .*missing\.ckpt not found"):
        pipeline_spec(layout, "GPT_weights/missing.ckpt", sov)
    with pytest.raises(ModelLoadError, match="no SoVITS model chosen"):
        pipeline_spec(layout, gpt, "")
    with pytest.raises(ModelLoadError, match="unknown precision"):
        pipeline_spec(layout, gpt, sov, precision="fp16")


def test_pro_base_models_are_offered_without_training(tmp_path):
    """Upstream's "infer with the v2Pro / v2ProPlus base model" entries: s2Gv2Pro*.pth and s1v3.ckpt."""
    layout = Layout(tmp_path).ensure()
    _encoders(layout)
    s1v3 = _touch(layout.pretrained / "s1v3.ckpt")
    pro = _touch(layout.pretrained / "v2Pro" / "s2Gv2Pro.pth")
    plus = _touch(layout.pretrained / "v2Pro" / "s2Gv2ProPlus.pth")
    _touch(layout.pretrained / "v2Pro" / "s2Dv2ProPlus.pth")
    listing = list_weights(layout)
    assert [(w.path, w.label) for w in listing.sovits] == [
        (pro, "base v2Pro: s2Gv2Pro.pth"),
        (plus, "base v2ProPlus: s2Gv2ProPlus.pth"),
    ]
    assert [w.path for w in listing.gpt] == [s1v3] and listing.gpt[0].label.startswith("base v2Pro")
    spec = pipeline_spec(layout, "pretrained_models/s1v3.ckpt", str(plus), device="cpu")
    assert spec.sv_path == layout.pretrained / "sv" / "pretrained_eres2netv2w24s4ep4.ckpt"


def test_v3_v4_base_models_are_offered(tmp_path):
    """s2Gv3.pth / gsv-v4-pretrained/s2Gv4.pth (with s1v3.ckpt) are base entries; vocoders are not."""
    layout = Layout(tmp_path).ensure()
    _encoders(layout)
    _touch(layout.pretrained / "s1v3.ckpt")
    v3 = _touch(layout.pretrained / "s2Gv3.pth")
    v4 = _touch(layout.pretrained / "gsv-v4-pretrained" / "s2Gv4.pth")
    _touch(layout.pretrained / "gsv-v4-pretrained" / "vocoder.pth")
    listing = list_weights(layout)
    assert [(w.path, w.label) for w in listing.sovits] == [
        (v4, "base v4: s2Gv4.pth"),
        (v3, "base v3: s2Gv3.pth"),
    ]


def test_flow_matching_version_tells_v3_v4_files_from_their_first_bytes(tmp_path, upstream_fixtures):
    from app.services.weights import flow_matching_version

    layout = Layout(tmp_path).ensure()
    for lora in sorted(upstream_fixtures.glob("sovits_v*_lora*.pth")):
        copy = layout.sovits_weights / lora.name
        copy.write_bytes(lora.read_bytes())
        assert flow_matching_version(layout, copy) == ("v3" if "_v3_" in lora.name else "v4")
    v2 = layout.sovits_weights / "v2.pth"
    v2.write_bytes((upstream_fixtures / "sovits_v2_tiny.pth").read_bytes())
    assert flow_matching_version(layout, v2) is None
    assert flow_matching_version(layout, "SoVITS_weights/missing.pth") is None
    assert (
        flow_matching_version(layout, "/etc/passwd") is None and flow_matching_version(layout, None) is None
    )
