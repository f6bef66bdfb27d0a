"""Multi-node training: two torchrun "nodes" of one process each, meeting on loopback (c10d, gloo).

Each node has its own copy of the experiment (nodes need not share a file system): both finish,
only the node of global rank 0 writes status, checkpoints and weights, and a second run resumes
on both nodes from the checkpoint that only rank 0's node holds.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from app import config_io
from app.runconfig import GPTRunConfig
from app.runstatus import read_status
from app.settings import distributed_env
from tests.tts_data import TINY_GPT

REPO = Path(__file__).resolve().parents[2]
RUN = "logs_s1_v2"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def node_config(node: Path, experiment: Path, epochs: int) -> Path:
    exp = node / "voice"
    if not exp.exists():
        shutil.copytree(experiment, exp)
    cfg = GPTRunConfig(
        exp_name="multi", exp_dir=exp, weights_dir=node / "GPT_weights", pretrained_s1=None, batch_size=2,
        epochs=epochs, save_every_epoch=1, log_interval=1, accumulate_batches=1, min_items_per_epoch=0,
        num_workers=0, model=dict(TINY_GPT), learning_rate=3e-3,
    )  # fmt: skip
    return config_io.save(cfg, exp / RUN / "run.yaml")


def train_on_two_nodes(nodes: list[Path], experiment: Path, epochs: int) -> list[str]:
    """Start both nodes at once (each a torchrun agent), wait for both; their logs."""
    endpoint = f"127.0.0.1:{free_port()}"
    run_id = uuid.uuid4().hex[:8]
    procs = []
    for node in nodes:
        argv = [
            sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc-per-node", "1",
            "--rdzv-backend", "c10d", "--rdzv-endpoint", endpoint, "--rdzv-id", run_id, "--local-addr", "127.0.0.1",
            "-m", "app.train.gpt", "--config", str(node_config(node, experiment, epochs)),
        ]  # fmt: skip
        procs.append(
            subprocess.Popen(argv, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        )
    logs = []
    for proc in procs:
        try:
            out, _ = proc.communicate(timeout=600)
        except subprocess.TimeoutExpired:
            for other in procs:
                other.kill()
            raise
        logs.append(out)
    # Every node's exit and log tail when one fails: one node's crash shows as the other's lost peer.
    tails = [
        f"node {i} (exit {p.returncode}):\n{log[-3000:]}"
        for i, (p, log) in enumerate(zip(procs, logs, strict=True))
    ]
    assert all(p.returncode == 0 for p in procs), "\n\n".join(tails)
    return logs


def test_torchrun_environment_gives_node_rank() -> None:
    env = distributed_env(
        {"RANK": "3", "LOCAL_RANK": "1", "WORLD_SIZE": "4", "GROUP_RANK": "1", "LOCAL_WORLD_SIZE": "2"}
    )
    assert (env.rank, env.local_rank, env.node_rank, env.nodes, env.enabled) == (3, 1, 1, 2, True)
    alone = distributed_env({})
    assert (alone.rank, alone.node_rank, alone.nodes, alone.enabled) == (0, 0, 1, False)


@pytest.mark.slow
def test_two_nodes_train_and_resume_with_rank_zero_writing(tmp_path, tts_experiment) -> None:
    nodes = [tmp_path / "node-a", tmp_path / "node-b"]
    logs = train_on_two_nodes(nodes, tts_experiment, epochs=1)
    joined = "\n".join(logs)
    assert "rank 0 of 2 (gloo), node 0 of 2" in joined and "rank 1 of 2 (gloo), node 1 of 2" in joined
    runs = [node / "voice" / RUN for node in nodes]
    writers = [run for run in runs if list(run.glob("resume_*.pt"))]
    assert len(writers) == 1, "exactly one node (global rank 0's) writes checkpoints"
    main_run = writers[0]
    other = next(run for run in runs if run is not main_run)
    main_node, other_node = main_run.parents[1], other.parents[1]
    assert not (other / "status.json").exists() and not (other / "metrics.jsonl").exists()
    assert not (other_node / "GPT_weights").exists() or not list((other_node / "GPT_weights").iterdir())
    first = read_status(main_run / "status.json")
    assert first.state == "done" and first.step > 0
    assert [p.name for p in (main_node / "GPT_weights").iterdir()] == [f"multi_e1_s{first.step}.ckpt"]

    # A second run of two epochs: rank 0 hands its checkpoint to the other node, which has none.
    logs = train_on_two_nodes(nodes, tts_experiment, epochs=2)
    status = read_status(main_run / "status.json")
    assert status.state == "done" and status.step == 2 * first.step
    assert f"resumed from resume_{first.step}.pt" in status.message or any(
        f"resumed from resume_{first.step}.pt" in log for log in logs
    )
    assert not list(other.glob("resume_*.pt"))
    assert sorted(p.name for p in (main_node / "GPT_weights").iterdir()) == sorted(
        [f"multi_e1_s{first.step}.ckpt", f"multi_e2_s{status.step}.ckpt"]
    )
