"""A stand-in trainer for job tests: writes status like a real one, obeys SIGTERM."""

from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path

import yaml

from app.runstatus import RunStatus, append_metrics, write_status


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", type=Path, required=True)
    args = parser.parse_args()
    cfg = yaml.safe_load(args.config.read_text())
    status_path = args.config.parent / "status.json"
    stopping = False

    def on_term(signum, frame):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, on_term)
    steps = int(cfg["steps"])
    started = time.time()
    for step in range(1, steps + 1):
        if stopping:
            write_status(
                status_path, RunStatus(state="stopped", step=step - 1, total_steps=steps, started=started)
            )
            print("stopped cleanly", flush=True)
            return
        time.sleep(float(cfg.get("sleep", 0.05)))
        losses = {"loss": 1.0 / step}
        append_metrics(args.config.parent / "metrics.jsonl", step=step, epoch=1, losses=losses)
        write_status(
            status_path,
            RunStatus(state="running", step=step, total_steps=steps, losses=losses, started=started),
        )
        print(f"step {step}", flush=True)
    if cfg.get("fail"):
        write_status(status_path, RunStatus(state="failed", step=steps, last_error="boom", started=started))
        sys.exit(3)
    write_status(status_path, RunStatus(state="done", step=steps, total_steps=steps, started=started))


if __name__ == "__main__":
    main()
