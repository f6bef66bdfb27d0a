"""v2Pro / v2ProPlus in the TTS pipeline: the speaker embedding joins the timbre, as upstream's
inference computes it (level rule on the 32 kHz clip, torchaudio's 32 -> 16 kHz resampler, Kaldi
fbank, ERes2NetV2), cached with the clip, averaged over extra references; clear errors when the
speaker model is missing, corrupt or of the wrong width."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import soundfile as sf
import torch

from app.audio.resample import sinc_resample
from app.infer import ModelLoadError, TTSPipeline, TTSRequest
from app.models.encoders.sv import SV_FILE, SpeakerEncoder
from app.models.sovits.reference import normalize_reference
from tests.infer.tiny import PRO_SOVITS_NAME, build_pro_home, spec_for, voice, write_sv


@pytest.fixture(scope="module")
def pro_home(tmp_path_factory: pytest.TempPathFactory):
    return build_pro_home(tmp_path_factory.mktemp("pro_home"))


@pytest.fixture(scope="module")
def pro(pro_home) -> TTSPipeline:
    return TTSPipeline.load(spec_for(pro_home, sovits=PRO_SOVITS_NAME))


def test_pro_model_loads_with_its_speaker_model(pro, pro_home):
    assert pro.version == "v2ProPlus" and pro.speaker is not None
    assert pro.speaker.path == pro_home / "pretrained_models" / SV_FILE
    assert pro.speaker.dim == pro.sovits.config.sv_dim


def test_embedding_is_upstreams_chain_on_the_levelled_32k_clip(pro, tmp_path):
    """Level rule first (a clip peaking at 1.6 is divided by 1.6), then 32 -> 16 kHz, then the model."""
    rng = np.random.default_rng(0)
    wav32 = (1.6 * np.sin(np.arange(32000 * 3) / 7.0) * rng.uniform(0.2, 1.0, 32000 * 3)).astype(np.float32)
    spec, embedding = pro.timbre_inputs(wav32)
    levelled = normalize_reference(torch.from_numpy(wav32)[None])
    assert levelled.abs().max() <= 1.0
    expected = pro.speaker.embed_16k(sinc_resample(levelled, 32000, 16000))
    torch.testing.assert_close(embedding, expected, rtol=0, atol=0)
    assert spec.shape[:2] == (1, 1025)
    # The embedding changes the timbre: another speaker vector gives another ge.
    other = pro.timbre([spec], [torch.randn_like(embedding)])
    assert not torch.allclose(pro.timbre([spec], [embedding]).ge, other.ge)


def test_spectrogram_alone_runs_no_speaker_model(pro, monkeypatch):
    """The spectrogram stage gives timbre_inputs' spectrogram without computing the embedding."""
    wav32 = (0.5 * np.sin(np.arange(32000 * 2) / 9.0)).astype(np.float32)
    expected, _ = pro.timbre_inputs(wav32)
    monkeypatch.setattr(
        SpeakerEncoder, "embed_32k", lambda *_: pytest.fail("speaker model run for a spectrogram")
    )
    torch.testing.assert_close(pro.spectrogram(wav32), expected, rtol=0, atol=0)


def test_synthesis_caches_the_embedding_with_the_clip(pro, pro_home, ref_wav, monkeypatch):
    calls = []
    real = SpeakerEncoder.embed_32k

    def counting(self, wav):
        calls.append(wav.shape)
        return real(self, wav)

    monkeypatch.setattr(SpeakerEncoder, "embed_32k", counting)
    pro.clear_cache()
    request = TTSRequest(text="Pro voices speak.", text_language="en", reference=str(ref_wav), seed=3)
    first = pro.synthesize(request)
    second = pro.synthesize(request)
    assert len(calls) == 1, "the reference's speaker embedding is computed once per clip"
    assert second.reference.cached
    np.testing.assert_array_equal(first.audio, second.audio)
    assert np.abs(first.audio).max() > 100


def test_extra_references_average_timbres_with_their_own_embeddings(pro, ref_wav, tmp_path):
    extra = voice(tmp_path / "extra.wav", 4.0)
    louder, _ = sf.read(extra, dtype="float32")
    sf.write(tmp_path / "extra2.wav", louder[::-1].copy(), 32000)
    pro.clear_cache()
    clip = pro.reference_features(str(ref_wav), need_tokens=False)[1]
    spec_x, emb_x = pro._extra_reference(str(tmp_path / "extra2.wav"))
    assert emb_x is not None and not torch.equal(emb_x, clip.sv_embedding)
    both = pro.timbre([clip.spectrogram, spec_x], [clip.sv_embedding, emb_x])
    one = pro.timbre([clip.spectrogram], [clip.sv_embedding])
    other = pro.timbre([spec_x], [emb_x])
    torch.testing.assert_close(both.ge, (one.ge + other.ge) / 2)
    request = TTSRequest(
        text="Two clips.",
        text_language="en",
        reference=str(ref_wav),
        extra_references=(str(tmp_path / "extra2.wav"),),
        seed=1,
    )
    assert len(pro.synthesize(request).audio) > 0


def test_timbre_refuses_missing_embeddings(pro, ref_wav):
    spec, emb = pro.timbre_inputs(np.zeros(32000 * 3, np.float32) + 0.01)
    with pytest.raises(ValueError, match="one speaker embedding per reference"):
        pro.timbre([spec, spec], [emb])
    with pytest.raises(ValueError, match="one speaker embedding per reference"):
        pro.timbre([spec], [None])


def test_fast_precision_and_streaming(pro_home, ref_wav):
    fast = TTSPipeline.load(spec_for(pro_home, precision="fast", sovits=PRO_SOVITS_NAME))
    request = TTSRequest(text="Streaming a pro voice.", text_language="en", reference=str(ref_wav), seed=2)
    chunks = list(fast.stream(request, token_chunks=True))
    result = chunks[-1].result
    assert result is not None and len(result.audio) > 0
    streamed = np.concatenate([c.audio for c in chunks])
    assert len(streamed) == len(result.audio)


def test_fast_speaker_model_runs_in_the_plans_dtype_close_to_float32(pro, pro_home):
    """fast: the speaker model in the precision plan's dtype (bf16 where it is native), its
    embedding within a small angle of the float32 model's."""
    fast = TTSPipeline.load(spec_for(pro_home, precision="fast", sovits=PRO_SOVITS_NAME))
    assert fast.speaker is not None and fast.speaker.dtype == fast.precision.speaker
    assert pro.speaker.dtype == pro.precision.speaker == torch.float32
    rng = np.random.default_rng(3)
    wav32 = (0.5 * np.sin(np.arange(32000 * 3) / 9.0) * rng.uniform(0.2, 1.0, 32000 * 3)).astype(np.float32)
    (_, low), (_, exact) = fast.timbre_inputs(wav32), pro.timbre_inputs(wav32)
    assert low.dtype == exact.dtype == torch.float32
    assert torch.nn.functional.cosine_similarity(low, exact).item() > 0.999


def test_missing_speaker_model_names_the_file_and_the_command(pro_home, tmp_path):
    spec = dataclasses.replace(spec_for(pro_home, sovits=PRO_SOVITS_NAME), sv_path=tmp_path / "none.ckpt")
    with pytest.raises(ModelLoadError) as err:
        TTSPipeline.load(spec)
    message = str(err.value)
    assert "v2ProPlus" in message and "none.ckpt" in message
    assert "download_models.py sv-eres2netv2" in message


def test_corrupt_or_foreign_speaker_model_is_named(pro_home, tmp_path):
    spec = spec_for(pro_home, sovits=PRO_SOVITS_NAME)
    broken = tmp_path / "broken.ckpt"
    broken.write_bytes(b"PK\x03\x04 not a zip")
    with pytest.raises(ModelLoadError, match=r"speaker-verification model: .*broken.ckpt"):
        TTSPipeline.load(dataclasses.replace(spec, sv_path=broken))
    with pytest.raises(ModelLoadError, match=r"speaker-verification model: .*tiny-e2.ckpt"):
        TTSPipeline.load(dataclasses.replace(spec, sv_path=spec.gpt_path))


def test_speaker_model_of_another_width_is_refused(pro_home, tmp_path):
    from app.models.encoders.sv import ERes2NetV2, SVConfig

    wide = tmp_path / "wide.ckpt"
    torch.save(
        ERes2NetV2(
            SVConfig(m_channels=4, base_width=32, scale=2, expansion=4, num_blocks=(1, 1, 1, 1))
        ).state_dict(),
        wide,
    )
    spec = dataclasses.replace(spec_for(pro_home, sovits=PRO_SOVITS_NAME), sv_path=wide)
    with pytest.raises(ModelLoadError, match=r"1280-wide speaker embeddings but .* expects 640"):
        TTSPipeline.load(spec)


def test_v2_models_never_load_the_speaker_model(tiny_home, tmp_path):
    write_sv(tmp_path / "sv.ckpt")
    pipe = TTSPipeline.load(dataclasses.replace(spec_for(tiny_home), sv_path=tmp_path / "missing.ckpt"))
    assert pipe.speaker is None
