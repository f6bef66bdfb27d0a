"""Parity with upstream GPT-SoVITS v3/v4 (flow-matching SoVITS) on the fixtures in ``$UPSTREAM_FIXTURES``.

Files: ``sovits_v{4,3}_tiny.pth`` + ``sovits_v{4,3}_tiny_io.pt`` (README section "SoVITS v4 and v3
(CFM + vocoder)"), the LoRA exports ``sovits_v{4,3}_lora_tiny.pth`` + io merged onto their base
(section "LoRA-trained v4/v3 files"; the merged weights themselves are checked in
tests/models/upstream/test_sovits_lora.py) and ``manifest_sovits_v{3,4}.json``. Every size is
read from the files; the tolerances are the README's. The vocoder stage (``audio``) belongs to
the vocoder tests.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest
import torch

from app.audio.resample import prepare_sv_reference, sinc_resample
from app.models.sovits.cfm_model import CfmSoVITS
from app.models.sovits.config import preset
from app.models.sovits.reference import normalize_mel, reference_mel, reference_spectrogram
from app.models.upstream.sovits import build_cfm_sovits, cfm_config, load_cfm_sovits, read_sovits
from app.models.upstream.sovits_lora import merge_lora, read_lora

REPO_ROOT = Path(__file__).resolve().parent.parent

# README "Determinism and tolerances", v3/v4 with the recorded noise injected.
SPEC_RTOL_OF_MAX = 1e-5  # refer_spec
MEL_RAW_ATOL = 1e-4  # ref_mel_raw
FEATURE_ATOL = 1e-5  # ge, fea_ref_full, fea_todo
CFM_ATOL = 1e-4  # velocity_per_step, cfm_out_full, mel_norm
MEL_ATOL = 1e-3  # mel (de-normalisation multiplies by 7)
WAVE_ATOL = 1e-6  # resampled reference (as the speaker-model fixtures' waves)


def _fixture_dir() -> Path:
    """Same rule as the ``upstream_fixtures`` fixture, usable at collection time."""
    return Path(os.environ.get("UPSTREAM_FIXTURES") or REPO_ROOT.parent / "shared" / "fixtures" / "upstream")


def _cfm_stems() -> list[str]:
    """v3/v4 tiny checkpoints (base and LoRA exports) that have their io file."""
    folder = _fixture_dir()
    files = sorted(folder.glob("sovits_v[34]_tiny.pth")) + sorted(folder.glob("sovits_v[34]_lora*.pth"))
    return [p.stem for p in files if (folder / f"{p.stem}_io.pt").is_file()]


CFM_STEMS = _cfm_stems()
CFM_MANIFESTS = sorted(p.name for p in _fixture_dir().glob("manifest_sovits_v[34].json"))


@pytest.fixture(scope="module", params=CFM_STEMS or [None], ids=CFM_STEMS or ["<no v3/v4 fixtures>"])
def cfm_case(request: pytest.FixtureRequest, upstream_fixtures: Path):
    """(model ready for inference, record of the (base) file, io dict, the file's leading bytes),
    loaded once per module; a LoRA export is merged onto the base its io file names."""
    if request.param is None:
        pytest.fail(f"no sovits_v3_tiny.pth / sovits_v4_tiny.pth with its _io.pt in {upstream_fixtures}")
    path = upstream_fixtures / f"{request.param}.pth"
    io = torch.load(upstream_fixtures / f"{request.param}_io.pt", weights_only=True)
    if "base_checkpoint" in io["meta"]:
        lora = read_lora(path)
        record = read_sovits(upstream_fixtures / io["meta"]["base_checkpoint"], expect_version=lora.version)
        merged = merge_lora(record.state_dict, lora, record.path)
        return build_cfm_sovits(merged, record.config, source=f"{path} on its base"), record, io, path
    model, record = load_cfm_sovits(path)
    return model, record, io, path


def _runs(io: dict) -> list[str]:
    return sorted(io["runs"])


def _injected(io: dict):
    """noise_fn giving upstream's recorded starting noise of each chunk."""
    chunks = io["shared"]["chunks"]
    return lambda index, shape: chunks[index]["noise"]


def _close(ours: torch.Tensor, expected: torch.Tensor, atol: float, what: str) -> None:
    assert ours.shape == expected.shape, f"{what}: shape {tuple(ours.shape)} != {tuple(expected.shape)}"
    torch.testing.assert_close(ours, expected, rtol=0, atol=atol, msg=lambda m: f"{what}: {m}")


def test_version_and_sizes_read_from_the_file(cfm_case) -> None:
    _, record, io, path = cfm_case
    assert record.version == io["version"] == io["meta"]["model_version"]
    assert path.read_bytes()[:2].decode("ascii") == io["meta"]["file_head_bytes"]
    c = record.config
    dit, wns1 = io["meta"]["fixture_dit"], io["meta"]["fixture_wns1"]
    assert (c.dit_dim, c.dit_depth, c.dit_heads, c.dit_dim_head, c.dit_ff_mult, c.dit_conv_layers) == (
        dit["dim"],
        dit["depth"],
        dit["heads"],
        dit["dim_head"],
        dit["ff_mult"],
        dit["conv_layers"],
    )
    assert (c.wns1_hidden, c.wns1_layers) == (wns1["hidden_channels"], wns1["n_layers"])
    assert c.n_symbols == 732 and io["meta"]["symbol_version"] == "v2"


def test_reference_chain_from_the_decoded_file(cfm_case) -> None:
    """refer_spec (32 kHz, level rule) and the resampled wave the reference mel reads."""
    model, _, io, _ = cfm_case
    wav, sr = io["inputs"]["ref_wav_loaded"], int(io["inputs"]["ref_sr"])
    shared = io["shared"]
    wav32, _ = prepare_sv_reference(wav, sr)
    spec = reference_spectrogram(wav32)
    assert spec.shape == shared["refer_spec"].shape
    assert (spec - shared["refer_spec"]).abs().max() <= SPEC_RTOL_OF_MAX * shared["refer_spec"].abs().max()
    mono = wav.mean(0, keepdim=True) if wav.shape[0] > 1 else wav
    tgt = sinc_resample(mono, sr, model.config.cfm_audio.sampling_rate)
    _close(tgt, shared["ref_wav_tgt_sr"], WAVE_ATOL, "ref_wav_tgt_sr")


def test_reference_mel(cfm_case) -> None:
    model, _, io, _ = cfm_case
    shared = io["shared"]
    raw = reference_mel(shared["ref_wav_tgt_sr"], model.config.cfm_audio)
    _close(raw, shared["ref_mel_raw"], MEL_RAW_ATOL, "ref_mel_raw")
    _close(model.reference_mel(shared["ref_wav_tgt_sr"]), normalize_mel(shared["ref_mel_raw"]), 1e-5, "norm")


def test_timbre_features_and_prompt(cfm_case) -> None:
    model, _, io, _ = cfm_case
    inputs, shared = io["inputs"], io["shared"]
    ge = model.timbre(shared["refer_spec"])
    _close(ge, shared["ge"], FEATURE_ATOL, "ge")
    prompt_codes = inputs["prompt_codes"][None]  # (1, 1, Tc_ref): upstream's prompt.unsqueeze(0)
    fea_ref = model.decode_encp(prompt_codes, inputs["phones_ref"], shared["ge"])
    _close(fea_ref, shared["fea_ref_full"], FEATURE_ATOL, "fea_ref_full")
    prompt = model.prompt(
        prompt_codes, inputs["phones_ref"], shared["ge"], normalize_mel(shared["ref_mel_raw"])
    )
    assert prompt.frames == shared["T_min"]
    assert model.chunk_frames(prompt) == shared["chunk_len"]
    _close(prompt.mel, shared["ref_mel_norm_cropped"], CFM_ATOL, "ref_mel_norm_cropped")
    fea_todo = model.decode_encp(inputs["pred_semantic"], inputs["phones"], shared["ge"])
    _close(fea_todo, shared["fea_todo"], FEATURE_ATOL, "fea_todo")


def _upstream_prompt(model: CfmSoVITS, io: dict):
    """The prompt built from upstream's recorded intermediates (isolates the CFM stage)."""
    inputs, shared = io["inputs"], io["shared"]
    return model.prompt(
        inputs["prompt_codes"][None], inputs["phones_ref"], shared["ge"], shared["ref_mel_norm_cropped"]
    )


def test_velocity_of_every_step(cfm_case) -> None:
    """The DiT at each Euler step, fed upstream's own trajectory (noise + recorded velocities)."""
    model, _, io, _ = cfm_case
    shared = io["shared"]
    runs = [r for r in _runs(io) if "velocity_per_step" in io["runs"][r]["chunks"][0]]
    assert runs, "no run records velocity_per_step"
    for name in runs:
        run = io["runs"][name]
        steps = int(run["sample_steps"])
        velocities = run["chunks"][0]["velocity_per_step"]  # (steps, 1, N, 100)
        assert velocities.shape[0] == steps
        fea = torch.cat([shared["fea_ref_full"][..., : shared["T_min"]], shared["fea_todo"]], dim=2)
        prompt_mel = shared["ref_mel_norm_cropped"]
        p = prompt_mel.shape[-1]
        x = shared["chunks"][0]["noise"].clone()
        x[..., :p] = 0
        prompt_x = torch.zeros_like(x)
        prompt_x[..., :p] = prompt_mel
        d = 1 / steps
        dd = torch.full((1,), d)
        t = 0.0
        for step in range(steps):
            with torch.inference_mode():
                v = model.cfm.estimator(
                    x.transpose(1, 2), prompt_x.transpose(1, 2), fea.transpose(1, 2), torch.full((1,), t), dd
                )
            _close(v, velocities[step], CFM_ATOL, f"{name} velocity step {step}")
            x = x + d * velocities[step].transpose(1, 2)  # continue on upstream's trajectory
            t = t + d
            x[..., :p] = 0


@pytest.mark.parametrize("run", ["steps_4", "steps_8"])
def test_cfm_output_and_mel(cfm_case, run: str) -> None:
    model, _, io, _ = cfm_case
    if run not in io["runs"]:
        pytest.fail(f"run {run} missing from this fixture (has {_runs(io)})")
    expected = io["runs"][run]
    inputs = io["inputs"]
    result = model.synthesize(
        inputs["pred_semantic"],
        inputs["phones"],
        _upstream_prompt(model, io),
        int(expected["sample_steps"]),
        noise_fn=_injected(io),
    )
    assert len(result.chunks) == len(expected["chunks"]) == len(io["shared"]["chunks"])
    for i, (ours, theirs) in enumerate(zip(result.chunks, expected["chunks"], strict=True)):
        _close(ours, theirs["cfm_out_full"], CFM_ATOL, f"{run} chunk {i} cfm_out_full")
    _close(result.mel_norm, expected["mel_norm"], CFM_ATOL, f"{run} mel_norm")
    _close(result.mel, expected["mel"], MEL_ATOL, f"{run} mel")


def test_whole_segment_from_the_reference_file(cfm_case) -> None:
    """From the decoded reference file to the mel, nothing recorded fed in but inputs and noise."""
    model, _, io, _ = cfm_case
    inputs = io["inputs"]
    wav, sr = inputs["ref_wav_loaded"], int(inputs["ref_sr"])
    wav32, _ = prepare_sv_reference(wav, sr)
    ge = model.timbre(reference_spectrogram(wav32))
    mono = wav.mean(0, keepdim=True) if wav.shape[0] > 1 else wav
    ref_mel = model.reference_mel(sinc_resample(mono, sr, model.config.cfm_audio.sampling_rate))
    prompt = model.prompt(inputs["prompt_codes"][None], inputs["phones_ref"], ge, ref_mel)
    run = io["runs"][_runs(io)[0]]
    mel = model.decode_mel(
        inputs["pred_semantic"], inputs["phones"], prompt, int(run["sample_steps"]), noise_fn=_injected(io)
    )
    _close(mel, run["mel"], MEL_ATOL, "mel")


def test_default_noise_draws_what_upstream_drew(cfm_case) -> None:
    """After torch.manual_seed(seed) the global generator gives upstream's noise (no injection)."""
    model, _, io, _ = cfm_case
    run = io["runs"][_runs(io)[0]]
    torch.manual_seed(int(io["shared"]["seed"]))
    mel = model.decode_mel(
        io["inputs"]["pred_semantic"],
        io["inputs"]["phones"],
        _upstream_prompt(model, io),
        int(run["sample_steps"]),
    )
    _close(mel, run["mel"], MEL_ATOL, "mel")


@pytest.mark.parametrize("manifest_name", CFM_MANIFESTS or ["<none>"])
def test_full_size_keys_and_shapes_equal_the_manifest(upstream_fixtures: Path, manifest_name: str) -> None:
    path = upstream_fixtures / manifest_name
    if not path.is_file():
        pytest.fail(f"no manifest_sovits_v3.json / manifest_sovits_v4.json in {upstream_fixtures}")
    manifest = json.loads(path.read_text(encoding="utf-8"))
    version = manifest_name.removeprefix("manifest_sovits_").removesuffix(".json")
    config = preset(version)
    with torch.device("meta"):
        state = CfmSoVITS(config).state_dict()
    shapes = {k: list(v.shape) for k, v in state.items()}
    # Same keys, same order, same shapes as upstream's files; all stored as fp16.
    assert list(shapes) == list(manifest["keys"])
    assert shapes == {k: v["shape"] for k, v in manifest["keys"].items()}
    assert sum(math.prod(s) for s in shapes.values()) == manifest["n_params"]
    assert {v["dtype"] for v in manifest["keys"].values()} == {"float16"}
    assert manifest["config_structure"]["model"]["version"]["value"] == version
    literals = manifest["constructor_literals"]["DiT"]
    assert (config.dit_dim, config.dit_depth, config.dit_heads, config.dit_dim_head) == (
        literals["dim"],
        literals["depth"],
        literals["heads"],
        literals["dim_head"],
    )
    assert (config.dit_ff_mult, config.dit_conv_layers) == (literals["ff_mult"], literals["conv_layers"])
    # The sizes upstream hard-codes are recovered from the weights alone (no fixture_dit).
    meta_state = {k: torch.empty(v["shape"], device="meta") for k, v in manifest["keys"].items()}
    assert cfm_config(meta_state, None, version, manifest_name) == config
