"""v3/v4 flow-matching SoVITS on tiny random models: chunking, the T_min crop, speed, shapes,
the rotary maths and the config rules (upstream parity is in tests/test_upstream_parity_cfm.py)."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch

from app.models.nn.rotary import RotaryEmbedding, apply_rotary
from app.models.sovits.cfm_model import CfmPrompt, CfmSoVITS
from app.models.sovits.config import CFM_AUDIO, preset
from app.models.sovits.reference import denormalize_mel, normalize_mel
from tests.models.sovits.cfm_tiny import tiny_cfm_config, tiny_model


def _inputs(n_codes: int, n_phones: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(0, 1024, (1, 1, n_codes), generator=gen), torch.randint(
        1, 732, (1, n_phones), generator=gen
    )


def _spec(frames: int, seed: int) -> torch.Tensor:
    return torch.rand(1, 1025, frames, generator=torch.Generator().manual_seed(seed)) * 3


def _mel(frames: int, seed: int) -> torch.Tensor:
    return torch.rand(1, 100, frames, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def _recorded_noise(store: list[torch.Tensor]):
    def noise_fn(index: int, shape: tuple[int, int, int]) -> torch.Tensor:
        assert index == len(store)
        store.append(torch.randn(shape, generator=torch.Generator().manual_seed(100 + index)))
        return store[-1]

    return noise_fn


@pytest.mark.parametrize("version", ["v4", "v3"])
def test_frames_per_code_and_wns1_mask(version: str) -> None:
    model = tiny_model(version)
    codes, phones = _inputs(30, 12, seed=1)
    ge = model.timbre(_spec(20, seed=2))
    assert ge.shape == (1, 512, 1)
    fea = model.decode_encp(codes, phones, ge)
    # v4: 4 frames per code (100 Hz); v3: floor(2 * Tc * 1.875) (93.75 Hz), no masking.
    assert fea.shape == (1, 512, 120 if version == "v4" else math.floor(60 * 1.875))
    assert fea[..., -1].abs().sum() > 0
    # speed 1.25: the encoder gives int(60 / 1.25) + 1 = 49 frames, upsampled; wns1's mask length
    # is int(Tc * 4 / 1.25) + 1 = 97 (v4), so the 98th frame is zeroed, as upstream.
    fast = model.decode_encp(codes, phones, ge, speed=1.25)
    if version == "v4":
        assert fast.shape[-1] == 98
        assert torch.all(fast[..., 97:] == 0) and fast[..., 96].abs().sum() > 0
    else:
        assert fast.shape[-1] == math.floor(49 * 1.875)
        assert fast[..., -1].abs().sum() > 0  # int(30 * 3.875 / 1.25) + 1 = 94 > 91 frames: no mask


@pytest.mark.parametrize("version", ["v4", "v3"])
def test_prompt_keeps_the_last_frames_of_a_long_reference(version: str) -> None:
    model = tiny_model(version)
    audio = CFM_AUDIO[version]
    limit = audio.max_prompt_frames
    codes, phones = _inputs(200, 30, seed=3)  # > limit feature frames
    ge = model.timbre(_spec(40, seed=4))
    ref_mel = _mel(limit + 100, seed=5)
    prompt = model.prompt(codes, phones, ge, ref_mel)
    full = model.decode_encp(codes, phones, ge)
    t_min = min(ref_mel.shape[-1], full.shape[-1])
    assert t_min > limit and prompt.frames == limit
    # First T_min frames of both, then the last `limit` of those.
    assert torch.equal(prompt.mel, ref_mel[..., t_min - limit : t_min])
    assert torch.equal(prompt.fea, full[..., t_min - limit : t_min])
    assert model.chunk_frames(prompt) == audio.window_frames - limit
    # A short reference: T_min is the shorter of the two and nothing is cropped.
    short = model.prompt(codes[..., :10], phones, ge, ref_mel)
    assert short.frames == min(ref_mel.shape[-1], model.decode_encp(codes[..., :10], phones, ge).shape[-1])
    assert torch.equal(short.mel, ref_mel[..., : short.frames])


@pytest.mark.parametrize("version", ["v4", "v3"])
def test_long_segment_is_chunked_as_the_documented_recurrence(version: str) -> None:
    model = tiny_model(version)
    audio = CFM_AUDIO[version]
    ge = model.timbre(_spec(40, seed=6))
    ref_codes, ref_phones = _inputs(150, 25, seed=7)
    prompt = model.prompt(ref_codes, ref_phones, ge, _mel(audio.max_prompt_frames + 30, seed=8))
    t_min = prompt.frames
    assert t_min == audio.max_prompt_frames  # the crop applies
    chunk_len = audio.window_frames - t_min
    codes, phones = _inputs(300, 40, seed=9)
    noises: list[torch.Tensor] = []
    result = model.synthesize(codes, phones, prompt, sample_steps=2, noise_fn=_recorded_noise(noises))

    fea_todo = model.decode_encp(codes, phones, ge)
    total = fea_todo.shape[-1]
    sizes = [min(chunk_len, total - start) for start in range(0, total, chunk_len)]
    assert len(sizes) >= 3 and len(result.chunks) == len(noises) == len(sizes)
    assert result.chunk_frames == chunk_len
    assert torch.equal(result.fea, fea_todo)
    assert result.mel_norm.shape == result.mel.shape == (1, 100, total)
    torch.testing.assert_close(result.mel, denormalize_mel(result.mel_norm), rtol=0, atol=0)

    # Upstream's loop, step by step: prompt = last T_min generated frames, condition = last T_min
    # frames of the previous chunk's features.
    prompt_mel, fea_ref, pieces = prompt.mel, prompt.fea, []
    for i, size in enumerate(sizes):
        chunk = fea_todo[..., i * chunk_len : i * chunk_len + size]
        fea = torch.cat([fea_ref, chunk], dim=2)
        # v3 crops to 468 frames but chunks are 934 - 468 = 466 long: from the second chunk on its
        # prompt is the 466 frames a chunk has (upstream slices [-T_min:] of a shorter tensor).
        p = prompt_mel.shape[-1]
        assert p == (t_min if i == 0 else min(t_min, sizes[i - 1]))
        assert noises[i].shape == (1, 100, p + size) == result.chunks[i].shape
        with torch.inference_mode():
            out = model.cfm.sample(fea, prompt_mel, 2, noises[i])
        torch.testing.assert_close(result.chunks[i], out, rtol=0, atol=0)
        assert torch.all(out[..., :p] == 0)  # prompt frames are given, not generated
        generated = out[..., p:]
        pieces.append(generated)
        prompt_mel, fea_ref = generated[..., -t_min:], chunk[..., -t_min:]
    torch.testing.assert_close(result.mel_norm, torch.cat(pieces, dim=2), rtol=0, atol=0)


def test_generator_and_injected_noise() -> None:
    model = tiny_model("v4")
    ge = model.timbre(_spec(20, seed=10))
    codes, phones = _inputs(20, 10, seed=11)
    prompt = model.prompt(codes, phones, ge, _mel(60, seed=12))
    target, target_phones = _inputs(25, 12, seed=13)
    a = model.decode_mel(target, target_phones, prompt, 4, generator=torch.Generator().manual_seed(5))
    b = model.decode_mel(target, target_phones, prompt, 4, generator=torch.Generator().manual_seed(5))
    c = model.decode_mel(target, target_phones, prompt, 4, generator=torch.Generator().manual_seed(6))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.shape == (1, 100, 100) and torch.isfinite(a).all()
    same = model.decode_mel(
        target,
        target_phones,
        prompt,
        4,
        noise_fn=lambda i, shape: torch.randn(shape, generator=torch.Generator().manual_seed(5)),
    )
    assert torch.equal(a, same)
    with pytest.raises(ValueError, match=r"noise_fn gave \(1, 100, 3\) for chunk 0"):
        model.decode_mel(target, target_phones, prompt, 4, noise_fn=lambda i, shape: torch.zeros(1, 100, 3))


def test_bad_inputs_are_named() -> None:
    model = tiny_model("v4")
    ge = model.timbre(_spec(20, seed=14))
    codes, phones = _inputs(20, 10, seed=15)
    prompt = model.prompt(codes, phones, ge, _mel(60, seed=16))
    with pytest.raises(ValueError, match="codes must be"):
        model.decode_encp(codes[0], phones, ge)
    with pytest.raises(ValueError, match="one segment"):
        model.synthesize(codes.expand(1, 2, -1), phones, prompt, 4)
    with pytest.raises(ValueError, match="0 frames"):
        model.synthesize(codes[..., :0], phones, prompt, 4)
    with pytest.raises(ValueError, match="at least 1"):
        model.synthesize(codes, phones, prompt, 0)
    with pytest.raises(ValueError, match="longer reference"):
        model.prompt(codes, phones, ge, _mel(0, seed=17))


def test_mel_normalisation_round_trip() -> None:
    x = torch.linspace(-12, 2, 15)
    torch.testing.assert_close(normalize_mel(x), torch.linspace(-1, 1, 15))
    torch.testing.assert_close(denormalize_mel(normalize_mel(x)), x)


def test_reference_mel_frames() -> None:
    model = tiny_model("v4")
    hop = CFM_AUDIO["v4"].hop_length
    mel = model.reference_mel(0.1 * torch.randn(hop * 37, generator=torch.Generator().manual_seed(1)))
    assert mel.shape == (1, 100, 37)


def test_rotary_is_the_complex_rotation_of_adjacent_pairs_on_the_first_channels() -> None:
    rope = RotaryEmbedding(8)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, 5, 12, generator=gen)  # 12 channels, 8 rotated
    out = apply_rotary(x, rope(5))
    pairs = torch.view_as_complex(x[..., :8].reshape(2, 5, 4, 2).contiguous())
    angles = torch.arange(5).float()[:, None] * rope.inv_freq[None, :]  # (N, 4)
    expected = torch.view_as_real(pairs * torch.polar(torch.ones_like(angles), angles)).reshape(2, 5, 8)
    torch.testing.assert_close(out[..., :8], expected)
    assert torch.equal(out[..., 8:], x[..., 8:])
    # Longer tables: the last N positions are used (x-transformers' slicing).
    torch.testing.assert_close(apply_rotary(x, rope(7)), apply_rotary(x, rope(7)[:, -5:]))
    with pytest.raises(ValueError, match="even"):
        RotaryEmbedding(7)


def test_cfm_config_rules() -> None:
    full = preset("v4")
    assert full.is_cfm and full.cfm_audio.hop_length == 320 and full.n_symbols == 732
    assert (full.dit_dim, full.dit_depth, full.dit_heads, full.dit_dim_head) == (1024, 22, 16, 64)
    assert preset("v3").cfm_audio == CFM_AUDIO["v3"] and CFM_AUDIO["v3"].sampling_rate == 24000
    with pytest.raises(ValueError, match="v3/v4 only"):
        _ = preset("v2").cfm_audio
    with pytest.raises(ValueError, match="dit_depth=0"):
        replace(full, dit_depth=0)
    with pytest.raises(ValueError, match="even"):
        replace(full, dit_dim_head=15)
    with pytest.raises(ValueError, match="multiple of 16"):
        replace(full, dit_dim=40)
    with pytest.raises(ValueError, match="VITS decoder"):
        CfmSoVITS(preset("v2"))
    prompt = CfmPrompt(ge=torch.zeros(1, 512, 1), fea=torch.zeros(1, 512, 7), mel=torch.zeros(1, 100, 7))
    assert prompt.frames == 7


def test_linear_mel_is_training_only() -> None:
    with torch.device("meta"):
        model = CfmSoVITS(tiny_cfm_config("v4"))
    assert "linear_mel.weight" in model.state_dict()
    assert not any(k.startswith("linear_mel.") for k in tiny_model("v4").state_dict())
