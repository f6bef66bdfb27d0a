"""SVC training: a real job from scratch, 4.1 checkpoint files, stop + resume, base G_0, export."""

from __future__ import annotations

import math
import shutil

import numpy as np
import pytest
import torch

from app import config_io
from app.models.upstream.svc.checkpoint import load_svc, read_discriminator, read_svc
from app.paths import SvcExperiment
from app.runconfig import SvcRunConfig
from app.runstatus import read_metrics, read_status
from app.services.jobs import JobManager
from app.train.svc.trainer import lr_at, prune, train, training_checkpoints
from tests.svc_data import TINY_D, run_training_job, tiny_template


def test_job_trains_from_scratch_and_losses_fall(svc_trained) -> None:
    job = svc_trained.job
    assert job.state == "done" and job.record.returncode == 0, svc_trained.log
    assert "training from scratch" in svc_trained.log  # the clear warning without G_0.pth
    rows = read_metrics(svc_trained.experiment.models / "metrics.jsonl")
    assert [r["step"] for r in rows] == list(range(1, svc_trained.steps + 1))
    assert {"loss_d", "loss_g", "adv", "fm", "mel", "kl", "lf0"} <= set(rows[0])
    assert all(math.isfinite(v) for r in rows for k, v in r.items() if k not in ("step", "epoch", "time"))
    for name in ("loss_g", "mel", "kl"):
        first = np.mean([r[name] for r in rows[:5]])
        last = np.mean([r[name] for r in rows[-5:]])
        assert last < 0.9 * first, f"{name}: first steps {first:.2f}, last steps {last:.2f}"
    status = read_status(svc_trained.experiment.models / "status.json")
    assert (
        status.state == "done"
        and status.step == svc_trained.steps
        and status.total_steps == svc_trained.steps
    )
    assert list((svc_trained.experiment.models / "tensorboard").glob("events.*"))


def test_checkpoints_are_41_files_and_the_newest_are_kept(svc_trained) -> None:
    models = svc_trained.experiment.models
    steps = svc_trained.steps
    assert [p.name for p in training_checkpoints(models, "G")] == [f"G_{steps // 2}.pth", f"G_{steps}.pth"]
    raw = torch.load(models / f"G_{steps}.pth", map_location="cpu", weights_only=True)
    assert set(raw) == {"model", "iteration", "optimizer", "learning_rate"}  # 4.1 save_checkpoint
    assert raw["learning_rate"] == pytest.approx(1e-4) and raw["iteration"] >= 1
    assert any(k.startswith("enc_q.") for k in raw["model"]) and raw["optimizer"]["state"]
    d = read_discriminator(models / f"D_{steps}.pth")
    assert d.optimizer is not None and any(k.startswith("discriminators.5.") for k in d.state_dict)
    assert (models / "config.json").is_file() and (models / "pitch_report.json").is_file()
    run = config_io.load(SvcRunConfig, svc_trained.run_yaml)
    assert run.max_steps == steps and run.experiment == svc_trained.experiment.root


def test_export_is_a_compressed_inference_file(svc_trained) -> None:
    release = svc_trained.experiment.models / "release" / f"exp_{svc_trained.steps}.pth"
    file = read_svc(release)
    assert file.compressed and file.iteration == 0
    full = read_svc(svc_trained.model)
    assert release.stat().st_size < 0.8 * svc_trained.model.stat().st_size
    for key, value in file.state_dict.items():
        torch.testing.assert_close(value, full.state_dict[key])
    assert load_svc(release).model.cfg.n_speakers == 2


def _tiny_run(tree: SvcExperiment, **fields) -> SvcRunConfig:
    """A run of ``tree`` as the tests train it: one thread, a line per step, the narrow discriminator."""
    return SvcRunConfig(
        **{
            "experiment": tree.root,
            "log_every": 1,
            "cpu_threads": 1,
            "discriminator_width_divisor": TINY_D,
            **fields,
        }
    )


def _copy_dataset(source: SvcExperiment, target: SvcExperiment) -> SvcExperiment:
    for part in ("dataset", "filelists", "configs"):
        shutil.copytree(source.root / part, target.root / part)
    target.ensure()
    return target


@pytest.mark.slow
def test_stop_saves_and_resume_continues_from_the_saved_step(svc_trained, tmp_path) -> None:
    tree = _copy_dataset(svc_trained.experiment, SvcExperiment(tmp_path / "exp"))
    jobs = JobManager(tmp_path / "jobs")
    run = _tiny_run(tree, max_steps=500, save_every=1000, export=False)
    from app.runconfig import SVC_MODULE, save_svc_run
    from app.services.jobs import JobSpec

    view = jobs.submit(JobSpec(module=SVC_MODULE, config=save_svc_run(run), kind="svc"))
    deadline = 300
    while deadline > 0:
        status = read_status(tree.models / "status.json")
        if status is not None and status.step >= 3:
            break
        jobs.wait(view.id, timeout=1)
        deadline -= 1
    stopped = jobs.stop(view.id)
    assert stopped.state == "stopped", jobs.tail(view.id)
    saved = training_checkpoints(tree.models, "G")
    assert len(saved) == 1
    step = int(saved[0].stem.split("_")[1])
    assert step >= 3 and read_status(tree.models / "status.json").step == step
    assert (tree.models / f"D_{step}.pth").is_file()

    resumed = run_training_job(
        jobs,
        _tiny_run(tree, max_steps=step + 2, export=False),
    )
    log = jobs.tail(resumed.id)
    assert resumed.state == "done", log
    assert f"resuming from {tree.models / f'G_{step}.pth'}: step {step}" in log
    steps = [r["step"] for r in read_metrics(tree.models / "metrics.jsonl")]
    assert steps == [*range(1, step + 1), step + 1, step + 2]
    assert (tree.models / f"G_{step + 2}.pth").is_file()


def test_base_g0_is_the_start_when_present(svc_trained, tmp_path, caplog) -> None:
    tree = _copy_dataset(svc_trained.experiment, SvcExperiment(tmp_path / "exp"))
    shutil.copyfile(svc_trained.model, tree.models / "G_0.pth")
    shutil.copyfile(svc_trained.experiment.models / f"D_{svc_trained.steps}.pth", tree.models / "D_0.pth")
    caplog.set_level("INFO")
    train(_tiny_run(tree, max_steps=1, export=False, tensorboard=False))
    assert "starting from base model" in caplog.text
    base = read_svc(tree.models / "G_0.pth").state_dict
    after = read_svc(tree.models / "G_1.pth").state_dict
    # One AdamW step at lr 1e-4 moves each weight by about 1e-4: the run started from the base.
    assert max(float((after[k] - base[k]).abs().max()) for k in base) < 1e-3
    assert (tree.models / "G_0.pth").is_file()  # a base is never pruned


@pytest.mark.parametrize("divisor", [1, 2 * TINY_D])
def test_a_base_discriminator_of_another_width_is_refused_with_what_to_do(
    svc_trained, tmp_path, divisor
) -> None:
    """A D file narrower (divisor 1: 4.1's width) or wider than the run builds would leave the
    discriminator random: refused, naming the divisor and what to set."""
    tree = _copy_dataset(svc_trained.experiment, SvcExperiment(tmp_path / "exp"))
    shutil.copyfile(svc_trained.model, tree.models / "G_0.pth")
    shutil.copyfile(svc_trained.experiment.models / f"D_{svc_trained.steps}.pth", tree.models / "D_0.pth")
    run = _tiny_run(tree, max_steps=1, export=False, tensorboard=False, discriminator_width_divisor=divisor)
    with pytest.raises(ValueError, match=r"D_0\.pth holds a discriminator of another width") as caught:
        train(run)
    assert f"discriminator_width_divisor {divisor} builds" in str(caught.value)
    assert "1 for so-vits-svc" in str(caught.value)
    assert not (tree.models / "G_1.pth").exists()


@pytest.mark.parametrize("divisor", [0, -1, 1.5, True, "8"])
def test_discriminator_width_divisor_must_be_a_whole_number(divisor) -> None:
    with pytest.raises(ValueError, match="discriminator_width_divisor must be a whole number >= 1"):
        SvcRunConfig(experiment="x", discriminator_width_divisor=divisor)


def test_learning_rate_schedule_is_41s() -> None:
    cfg = tiny_template()
    assert lr_at(1, cfg, 1e-4) == pytest.approx(1e-4)
    assert lr_at(3, cfg, 1e-4) == pytest.approx(1e-4 * 0.999875**2)
    cfg.train.warmup_epochs = 4
    assert lr_at(2, cfg, 1e-4) == pytest.approx(0.5e-4)


def test_prune_keeps_the_newest_pairs_and_the_base(tmp_path) -> None:
    for step in (0, 5, 10, 15):
        for prefix in ("G", "D"):
            (tmp_path / f"{prefix}_{step}.pth").write_bytes(b"x")
    prune(tmp_path, keep=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "D_0.pth", "D_10.pth", "D_15.pth", "G_0.pth", "G_10.pth", "G_15.pth",
    ]  # fmt: skip


@pytest.mark.slow
def test_torchrun_ddp_on_two_cpu_processes(svc_trained, tmp_path) -> None:
    import subprocess
    import sys

    from app.runconfig import save_svc_run

    tree = _copy_dataset(svc_trained.experiment, SvcExperiment(tmp_path / "exp"))
    run_yaml = save_svc_run(_tiny_run(tree, max_steps=2, batch_size=2, export=False))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "app.train.svc", "--config", str(run_yaml)]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "rank 1 of 2 (gloo)" in done.stderr
    assert read_status(tree.models / "status.json").state == "done"
    assert [r["step"] for r in read_metrics(tree.models / "metrics.jsonl")] == [1, 2]  # rank 0 writes alone
    assert (tree.models / "G_2.pth").is_file()


def test_cli_refuses_an_experiment_without_preprocessing(tmp_path, capsys) -> None:
    from app.train.svc.trainer import main

    assert main(["--experiment", str(tmp_path / "nothing")]) == 2
    assert "run the SVC preprocessing first" in capsys.readouterr().err
    bad = tmp_path / "run.yaml"
    bad.write_text("experiment: x\nmax_steps: many\n")
    assert main(["--config", str(bad)]) == 2
    assert "max_steps" in capsys.readouterr().err


def test_volume_embedding_end_to_end(svc_trained, tmp_path) -> None:
    """vol_embedding: .vol.npy features, 4.1's volume augmentation in training, volume at conversion."""
    from app.data.preprocess.svc.features import SvcPreprocessOptions, preprocess_svc
    from app.infer.svc.pipeline import SVCPipeline
    from app.infer.svc.request import SvcRequest
    from app.models.upstream.svc.features import feature_paths, read_volume

    tree = SvcExperiment(tmp_path / "exp")
    shutil.copytree(svc_trained.experiment.raw / "alto", tree.raw / "alto")
    options = SvcPreprocessOptions(
        pretrained_root=svc_trained.pretrained, f0_method="pm", vol_embedding=True, template=tiny_template()
    )
    report = preprocess_svc(tree, options)
    clip = tree.dataset / "alto" / "phrase0.wav"
    volume = read_volume(feature_paths(clip)["volume"])
    assert report.speakers == {"alto": 0} and volume.max() > 0.1
    train(_tiny_run(tree, max_steps=2, tensorboard=False))
    model = load_svc(tree.models / "G_2.pth").model
    assert model.cfg.vol_embedding and "emb_vol.weight" in model.state_dict()
    loud = SVCPipeline(svc_trained.pretrained).convert(SvcRequest(audio=clip, model=tree.models / "G_2.pth"))
    assert np.isfinite(loud.audio).all() and np.abs(loud.audio).max() > 0.01
