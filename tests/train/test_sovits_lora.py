"""v3/v4 SoVITS LoRA fine-tuning in-process: model and data, what trains, the loss, exports as
upstream writes them (read back, merged, full-size manifest), resume and stop."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from app import config_io
from app.data.experiment import ExperimentFiles, read_name2text, write_name2text
from app.models.checkpoint import read_checkpoint
from app.models.nn.lora import LoRALinear, lora_layers
from app.models.sovits.cfm_model import CfmSoVITS
from app.models.sovits.config import SoVITSConfig, preset
from app.models.sovits.reference import normalize_mel, reference_mel
from app.models.upstream.safe_pickle import CheckpointError
from app.models.upstream.sovits import build_cfm_sovits, read_sovits, write_sovits
from app.models.upstream.sovits_lora import lora_weights, merge_lora, read_lora, write_lora
from app.runconfig import SoVITSRunConfig
from app.runstatus import read_metrics, read_status
from app.settings import DistributedEnv
from app.train import sovits
from app.train.common import TrainSession
from app.train.sovits import SoVITSTrainError
from app.train.sovits_data import CfmDataset, collate_cfm
from app.train.sovits_lora import (
    adapt,
    build_model,
    lora_export_config,
    merged_state,
    optimizer,
    train_step,
    trained_tensors,
)

FIXTURES = Path(__file__).resolve().parents[2].parent / "shared" / "fixtures" / "upstream"
MANIFESTS = sorted(FIXTURES.glob("manifest_sovits_v*_lora_r*.json"))
RANK = 4
CPU = torch.device("cpu")


def run_config(tmp_path: Path, exp_dir: Path, pre, version: str = "v4", **changes) -> SoVITSRunConfig:
    cfg = SoVITSRunConfig(
        exp_name="lora", exp_dir=exp_dir, weights_dir=tmp_path / "SoVITS_weights",
        pretrained_g=pre.s2g_cfm[version], pretrained_d=None, version=version, batch_size=2, epochs=1,
        save_every_epoch=1, log_interval=1, min_items_per_epoch=0, num_workers=0, precision="fp32",
        lora_rank=RANK, learning_rate=1e-3,
    )  # fmt: skip
    return replace(cfg, **changes)


def small_experiment(tmp_path: Path, source: Path, clips: int) -> Path:
    """A copy of the formatted experiment keeping its first ``clips`` Piper clips (short epochs)."""
    exp_dir = tmp_path / "voice"
    shutil.copytree(source, exp_dir)
    files = ExperimentFiles(exp_dir)
    rows = [r for name, r in read_name2text(files.name2text).items() if name.startswith("piper_")]
    write_name2text(files.name2text, rows[:clips])
    return exp_dir


@pytest.mark.parametrize("manifest", MANIFESTS, ids=[m.stem for m in MANIFESTS])
def test_full_size_export_has_upstreams_keys_and_shapes(manifest: Path) -> None:
    expected = json.loads(manifest.read_text())
    version = "v3" if "_v3_" in manifest.name else "v4"
    rank = int(manifest.stem.rsplit("_r", 1)[1])
    with torch.device("meta"):
        model = adapt(CfmSoVITS(preset(version)), rank)
    weights = lora_weights(*trained_tensors(model))
    assert list(weights) == list(expected["keys"])  # names and upstream's state-dict order
    assert {k: list(v.shape) for k, v in weights.items()} == {
        k: v["shape"] for k, v in expected["keys"].items()
    }
    assert expected["n_tensors"] == len(weights) == 258 and sum(k.count(".lora_") for k in weights) == 176
    assert sum(v.numel() for v in weights.values()) == expected["n_params"]


def test_model_and_data_for_v4(tmp_path, tts_experiment, tts_pretrained) -> None:
    model, source = build_model(run_config(tmp_path, tts_experiment, tts_pretrained), None)
    assert source == str(tts_pretrained.s2g_cfm["v4"]) and model.config.version == "v4"
    base = read_sovits(tts_pretrained.s2g_cfm["v4"]).state_dict
    state = model.state_dict()
    for name, tensor in base.items():  # every base tensor loaded (adapted layers under base_layer)
        key = (
            name
            if name in state
            else name.replace(".weight", ".base_layer.weight").replace(".bias", ".base_layer.bias")
        )
        torch.testing.assert_close(state[key], tensor.float(), rtol=0, atol=0, msg=name)
    layers = lora_layers(model.cfm)
    depth = model.config.dit_depth
    assert len(layers) == 4 * depth and all(
        isinstance(m, LoRALinear) and m.scale == 1 for m in layers.values()
    )
    assert all(torch.count_nonzero(m.lora_B.weight) == 0 for m in layers.values())  # starts as the base
    trainable = {n.split(".")[0] for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {"ref_enc", "bridge", "wns1", "linear_mel", "cfm"}
    assert {n for n, p in model.cfm.named_parameters() if p.requires_grad} == {
        f"{layer}.lora_{x}.weight" for layer in layers for x in "AB"
    }
    model.train()
    assert not model.enc_p.training and model.cfm.training  # frozen parts stay in eval (no dropout)

    dataset = CfmDataset(tts_experiment, model.config, "v4", min_items=0)
    assert dataset.unique == 20
    _, spec, mel, _ = dataset[0]
    wav = dataset._read(dataset.clips[0])[2]
    audio = model.config.cfm_audio
    torch.testing.assert_close(mel, normalize_mel(reference_mel(wav, audio))[0])
    assert mel.shape == (100, wav.shape[1] // 320) and spec.shape[1] == wav.shape[1] // 640
    batch = collate_cfm([dataset[i] for i in range(3)])
    assert batch["mel"].shape[1] == 100 and batch["ssl"].shape[2] == batch["spec"].shape[2]
    assert batch["spec_lengths"].tolist() == sorted(batch["spec_lengths"].tolist(), reverse=True)


def test_v3_targets_are_24k_mels(tmp_path, tts_experiment, tts_pretrained) -> None:
    model, _ = build_model(run_config(tmp_path, tts_experiment, tts_pretrained, version="v3"), None)
    dataset = CfmDataset(tts_experiment, model.config, "v3", min_items=0)
    mel = dataset[0][2]
    seconds = dataset._read(dataset.clips[0])[2].shape[1] / 32000
    assert abs(mel.shape[1] - seconds * 24000 / 256) <= 1  # 93.75 frames per second
    loss = model.train()(*(collate_cfm([dataset[0], dataset[1]])[k] for k in KEYS))
    assert torch.isfinite(loss)


KEYS = ("ssl", "spec", "spec_lengths", "mel", "mel_lengths", "text", "text_lengths")


def fixed_loss(model: CfmSoVITS, batch: dict[str, torch.Tensor]) -> float:
    """The loss at fixed draws (times, noise, prompts, shortcut coin), dropout off, averaged."""
    model.eval()
    losses = []
    with torch.no_grad():
        for seed in range(6):
            torch.manual_seed(seed)
            losses.append(float(model(*(batch[k] for k in KEYS))))
    model.train()
    return sum(losses) / len(losses)


def test_loss_falls_and_only_trained_tensors_change(tmp_path, tts_experiment, tts_pretrained) -> None:
    torch.manual_seed(0)
    cfg = run_config(tmp_path, tts_experiment, tts_pretrained)
    model, _ = build_model(cfg, None)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    dataset = CfmDataset(tts_experiment, model.config, "v4", min_items=0)
    batch = collate_cfm([dataset[0], dataset[1]])
    start = fixed_loss(model, batch)
    optim = optimizer(model, cfg)
    scaler = torch.amp.GradScaler("cuda", enabled=False)
    for _ in range(20):
        losses = train_step(batch, model.train(), optim, scaler, CPU, "fp32", grad_checkpoint=True)
        assert set(losses) == {"cfm"} and torch.isfinite(torch.tensor(losses["cfm"]))
    end = fixed_loss(model, batch)
    assert end < 0.93 * start, (start, end)  # about 0.84 here after 20 steps

    after = model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all(k.split(".")[0] in ("bridge", "wns1") or ".lora_" in k for k in changed), changed
    assert any(".lora_A." in k for k in changed) and any(".lora_B." in k for k in changed)
    assert any(k.startswith("wns1.") for k in changed) and any(k.startswith("bridge.") for k in changed)
    # No loss reaches the reference encoder or linear_mel (upstream trains neither in practice).
    assert not any(
        k.startswith(("ref_enc.", "linear_mel.", "enc_p.", "ssl_proj.", "quantizer.")) for k in changed
    )

    # The export holds what training changed; read back and merged onto the base it is the trained model.
    target = write_lora(
        tmp_path / "lora_e1_s20_l4.pth", *trained_tensors(model), lora_export_config(model.config, cfg, tmp_path),
        rank=RANK, epoch=1, step=20,
    )  # fmt: skip
    assert target.read_bytes()[:2] == b"04"
    lora = read_lora(target)
    assert (lora.version, lora.rank, lora.info) == ("v4", RANK, "1epoch_20iteration")
    assert lora.hparams["train"]["lora_rank"] == "4" and lora.hparams["train"]["grad_ckpt"] is False
    assert lora.hparams["model"]["version"] == "v4" and lora.hparams["train"]["learning_rate"] == 1e-3
    base = read_sovits(tts_pretrained.s2g_cfm["v4"])
    merged = merge_lora(base.state_dict, lora, "the base")
    trained = merged_state(model)
    assert set(merged) == set(trained)
    for key, value in merged.items():
        torch.testing.assert_close(value.float(), trained[key].float(), rtol=2e-3, atol=2e-3, msg=key)
    # A model built from the merged weights predicts what the trained one predicts.
    built = build_cfm_sovits(merged, base.config)
    reference = build_cfm_sovits(trained, base.config)
    x = torch.randn(1, 30, 100)
    args = (x, torch.zeros_like(x), torch.randn(1, 30, 512), torch.tensor([0.3]), torch.tensor([0.0]))
    torch.testing.assert_close(
        built.cfm.estimator(*args), reference.cfm.estimator(*args), rtol=1e-2, atol=1e-2
    )


def test_write_lora_refuses_what_upstream_cannot_read(tmp_path, tts_pretrained) -> None:
    with torch.device("meta"):
        model = adapt(CfmSoVITS(read_sovits(tts_pretrained.s2g_cfm["v3"]).config), RANK)
    config = model.config
    adapters = {k: (torch.zeros(RANK, 8), torch.zeros(8, RANK)) for k in trained_tensors(model)[0]}
    with pytest.raises(ValueError, match="rank 5"):
        write_lora(tmp_path / "x.pth", adapters, {}, config, rank=5, epoch=1, step=1)
    with pytest.raises(ValueError, match="v3/v4"):
        write_lora(tmp_path / "x.pth", adapters, {}, preset("v2"), rank=RANK, epoch=1, step=1)
    with pytest.raises(ValueError, match="upstream adapts only"):
        write_lora(
            tmp_path / "x.pth",
            {"wns1.pre": adapters[next(iter(adapters))]},
            {},
            config,
            rank=RANK,
            epoch=1,
            step=1,
        )
    path = write_lora(tmp_path / "v3.pth", adapters, {}, config, rank=RANK, epoch=1, step=1)
    assert path.read_bytes()[:2] == b"03" and read_lora(path).version == "v3"
    assert not list(tmp_path.glob(".tmp-*"))
    with pytest.raises(CheckpointError, match="another base"):
        merge_lora(read_sovits(tts_pretrained.s2g_cfm["v3"]).state_dict, read_lora(path))


def test_fine_tune_stops_resumes_and_exports(tmp_path, tts_experiment, tts_pretrained) -> None:
    exp_dir = small_experiment(tmp_path, tts_experiment, clips=4)  # two steps per epoch
    cfg = run_config(tmp_path, exp_dir, tts_pretrained, epochs=2)
    run_dir = exp_dir / "logs_s2_v4"
    config_io.save(cfg, run_dir / "run.yaml")
    env = DistributedEnv()
    with TrainSession(run_dir, stage="sovits", env=env, tensorboard=False) as session:
        session.stop_requested = True  # as SIGTERM does: the run saves after its first step and stops
        sovits.train(cfg, run_dir, session, env)
    status = read_status(run_dir / "status.json")
    assert status.state == "stopped" and status.step == 1
    stopped = read_checkpoint(run_dir / "resume_1.pt", "sovits_lora")
    assert (stopped.epoch, stopped.extra["batches_done"], stopped.extra["lora_rank"]) == (0, 1, RANK)
    assert not cfg.weights_dir.exists()

    # Another rank cannot continue this run.
    other = replace(cfg, lora_rank=8)
    with pytest.raises(SoVITSTrainError, match="rank 4, this run asks for 8"):
        build_model(other, stopped)

    # The restart goes on from batch 2 of epoch 1 and exports after each epoch.
    assert sovits.main(["--config", str(run_dir / "run.yaml")]) == 0
    status = read_status(run_dir / "status.json")
    assert status.state == "done" and status.step == 4 and status.epoch == 2, status
    assert [r["step"] for r in read_metrics(run_dir / "metrics.jsonl")] == [1, 2, 3, 4]
    assert sorted(p.name for p in cfg.weights_dir.iterdir()) == ["lora_e1_s2_l4.pth", "lora_e2_s4_l4.pth"]
    final = read_lora(cfg.weights_dir / "lora_e2_s4_l4.pth")
    assert final.rank == RANK and final.hparams["train"]["pretrained_s2G"] == str(
        tts_pretrained.s2g_cfm["v4"]
    )
    assert final.hparams["train"]["epochs"] == 2 and final.hparams["data"]["exp_dir"] == str(exp_dir)
    last = read_checkpoint(run_dir / "resume_4.pt", "sovits_lora")
    model = adapt(CfmSoVITS(SoVITSConfig(**last.model_config)), RANK)
    model.load_state_dict(last.model)
    merged = merge_lora(read_sovits(tts_pretrained.s2g_cfm["v4"]).state_dict, final)
    for layer, (_, b) in final.adapters.items():
        key = f"{layer}.weight"
        torch.testing.assert_close(merged[key], merged_state(model)[key], rtol=2e-3, atol=2e-3)
        assert torch.count_nonzero(b) > 0  # the adapters trained


def test_lora_runs_refuse_what_they_would_ignore(tmp_path, tts_experiment, tts_pretrained) -> None:
    with pytest.raises(config_io.ConfigError, match="pretrained_d"):
        run_config(tmp_path, tts_experiment, tts_pretrained, pretrained_d=tmp_path / "s2D.pth")
    with pytest.raises(config_io.ConfigError, match="text_low_lr_rate"):
        run_config(tmp_path, tts_experiment, tts_pretrained, text_low_lr_rate=0.3)
    with pytest.raises(config_io.ConfigError, match="lora_rank must be"):
        run_config(tmp_path, tts_experiment, tts_pretrained, lora_rank=0)
    with pytest.raises(config_io.ConfigError, match="v3/v4"):
        replace(run_config(tmp_path, tts_experiment, tts_pretrained), version="v2")
    with pytest.raises(config_io.ConfigError, match="v3/v4"):
        SoVITSRunConfig("x", tmp_path, tmp_path, None, None, version="v2ProPlus", grad_checkpoint=True)
    assert run_config(tmp_path, tts_experiment, tts_pretrained, lora_rank=None).adapter_rank == 32
    missing = run_config(tmp_path, tts_experiment, tts_pretrained, pretrained_g=tmp_path / "s2Gv4.pth")
    with pytest.raises(SoVITSTrainError, match=r"download_models\.py gpt-sovits-v4"):
        build_model(missing, None)
    with pytest.raises(CheckpointError, match="v4 SoVITS model, expected v3"):
        build_model(run_config(tmp_path, tts_experiment, tts_pretrained, version="v3",
                               pretrained_g=tts_pretrained.s2g_cfm["v4"]), None)  # fmt: skip


def test_a_base_without_linear_mel_trains_and_its_export_merges(
    tmp_path, tts_experiment, tts_pretrained
) -> None:
    record = read_sovits(tts_pretrained.s2g_cfm["v4"])
    state = {k: v for k, v in record.state_dict.items() if not k.startswith("linear_mel.")}
    base = write_sovits(tmp_path / "s2Gv4.pth", state, record.config, 1, 1)  # e.g. an inference-only export
    cfg = run_config(tmp_path, tts_experiment, tts_pretrained, pretrained_g=base)
    model, _ = build_model(cfg, None)
    head = model.linear_mel.weight
    assert torch.isfinite(head).all() and head.abs().sum() > 0  # starts fresh, as upstream's
    export = write_lora(
        tmp_path / "x.pth", *trained_tensors(model), lora_export_config(model.config, cfg, tmp_path),
        rank=RANK, epoch=1, step=1,
    )  # fmt: skip
    merged = merge_lora(read_sovits(base).state_dict, read_lora(export))
    assert "linear_mel.weight" in merged  # the file's head is kept (build_cfm_sovits drops it)
    build_cfm_sovits(merged, record.config)
