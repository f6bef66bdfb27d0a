"""``python -m app.infer.svc_live -m G_800.pth [-s speaker] [-t 12] [--input-device N] [--output-device M]``

Realtime conversion between sound devices (``sounddevice``, PortAudio) with
:class:`app.infer.svc.live.LiveConverter`; ``--list-devices`` lists them; ``--input-file`` /
``--output-file`` run the same block-by-block conversion on a file (no sound hardware needed).

The device callback only moves samples: input goes into a queue that a worker thread converts,
converted audio comes out of a FIFO (silence while it is empty, counted as an underrun).
"""

from __future__ import annotations

import argparse
import logging
import queue
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from app.audio.io import AudioError, load_audio, save_audio
from app.infer.request import PRECISIONS
from app.infer.svc.cli import add_voice_arguments
from app.infer.svc.live import LiveConverter, LiveOptions, convert_stream
from app.infer.svc.pipeline import SVCPipeline
from app.infer.svc.request import SvcInputError, SvcModelError

log = logging.getLogger(__name__)
REPORT_EVERY_S = 5.0


class SoundDeviceError(RuntimeError):
    """PortAudio could not open or query a sound device; the message names it."""


class AudioLoop:
    """The bridge between a device callback and the converter (module doc)."""

    def __init__(self, converter: LiveConverter) -> None:
        self.converter = converter
        self._in: queue.Queue[np.ndarray] = queue.Queue()
        self._out = np.zeros(0, dtype=np.float32)
        self._lock = threading.Lock()
        self.underruns = 0  # callbacks that found too little converted audio (after the first)
        self._started = False
        self.error: Exception | None = None

    def callback(
        self, indata: np.ndarray, outdata: np.ndarray, frames: int, time_info: object, status: object
    ) -> None:
        """sounddevice's stream callback: (frames, channels) in, (frames, channels) out."""
        self._in.put(np.asarray(indata, dtype=np.float32).mean(axis=1))
        with self._lock:
            take, self._out = self._out[:frames], self._out[frames:]
        if len(take) < frames:
            self.underruns += int(self._started)
            take = np.pad(take, (0, frames - len(take)))
        else:
            self._started = True
        outdata[:] = take[:, None]

    def step(self, timeout: float = 0.1) -> bool:
        """Convert what the callback queued (False when nothing came within ``timeout``)."""
        try:
            chunk = self._in.get(timeout=timeout)
        except queue.Empty:
            return False
        out = self.converter.feed(chunk)
        with self._lock:
            self._out = np.concatenate([self._out, out])
        return True

    def work(self, stop: threading.Event) -> None:
        """The worker thread's loop: convert until ``stop`` is set or conversion fails."""
        try:
            while not stop.is_set():
                self.step()
        except Exception as exc:  # reported by run_devices, which stops the stream
            self.error = exc
            stop.set()


def list_devices() -> str:
    """The sound devices PortAudio sees (index, name, in/out channels, default rate)."""
    import sounddevice as sd

    devices = sd.query_devices()
    if not len(devices):
        return "no sound devices found (PortAudio sees none)"
    lines = []
    for i, d in enumerate(devices):
        lines.append(
            f"{i:3d} {d['name']} (in {d['max_input_channels']}, out {d['max_output_channels']}, "
            f"{d['default_samplerate']:.0f} Hz)"
        )
    return "\n".join(lines)


def _device(value: str | None) -> int | str | None:
    return int(value) if value is not None and value.isdigit() else value


def run_devices(pipeline: SVCPipeline, options: LiveOptions, args: argparse.Namespace) -> int:
    """Convert from the input device to the output device until Ctrl+C or ``--seconds``."""
    import sounddevice as sd

    device = (_device(args.input_device), _device(args.output_device))
    try:
        rate = int(args.rate or sd.query_devices(device[0], "input")["default_samplerate"])
    except (sd.PortAudioError, ValueError) as exc:
        raise SoundDeviceError(f"input device {device[0] or '(default)'}: {exc}") from exc
    converter = LiveConverter(pipeline, options, input_rate=rate, output_rate=rate)
    loop, stop = AudioLoop(converter), threading.Event()
    worker = threading.Thread(target=loop.work, args=(stop,), name="svc-live", daemon=True)
    blocksize = round(converter.geometry.block / converter.sample_rate * rate)
    log.info(
        "latency %.3f s + processing; block %d samples at %d Hz", converter.latency_seconds, blocksize, rate
    )
    worker.start()
    t0 = last = time.monotonic()
    try:
        with sd.Stream(
            device=device,
            samplerate=rate,
            blocksize=blocksize,
            channels=1,
            dtype="float32",
            callback=loop.callback,
        ):
            while not stop.is_set() and (args.seconds is None or time.monotonic() - t0 < args.seconds):
                time.sleep(0.1)
                if time.monotonic() - last >= REPORT_EVERY_S:
                    last = time.monotonic()
                    log.info(_report(converter, loop.underruns))
    except KeyboardInterrupt:
        pass
    except sd.PortAudioError as exc:
        raise SoundDeviceError(f"devices {device}: {exc}") from exc
    finally:
        stop.set()
        worker.join(timeout=5)
    if loop.error is not None:
        raise loop.error
    log.info(_report(converter, loop.underruns))
    return 0


def _report(converter: LiveConverter, underruns: int) -> str:
    s = converter.stats
    return (
        f"{s.blocks} blocks of {s.block_seconds:.3f} s: processing mean {s.mean_seconds:.3f} s, max {s.max_seconds:.3f} s "
        f"(real-time factor {s.realtime_factor:.2f}); latency {s.latency_seconds:.3f} s + processing; underruns {underruns}"
    )


def run_file(pipeline: SVCPipeline, options: LiveOptions, args: argparse.Namespace) -> int:
    """Block-by-block conversion of ``--input-file`` into ``--output-file`` (as live, without devices)."""
    converter = LiveConverter(pipeline, options)
    wav = load_audio(args.input_file, converter.sample_rate)
    out = convert_stream(converter, wav)[converter.geometry.crossfade + converter.geometry.search :][
        : len(wav)
    ]
    save_audio(args.output_file, out, converter.sample_rate)
    log.info(_report(converter, 0))
    print(args.output_file)
    return 0


def _parser() -> argparse.ArgumentParser:
    d = LiveOptions(model=Path())
    p = argparse.ArgumentParser(
        prog="python -m app.infer.svc_live", description="Realtime voice conversion between sound devices."
    )
    p.add_argument("--list-devices", action="store_true", help="list sound devices and exit")
    add_voice_arguments(p, d, model_required=False)  # --list-devices needs no model
    p.add_argument("-cr", "--cluster-ratio", type=float, default=0.0)
    p.add_argument("-cm", "--cluster-model", type=Path)
    p.add_argument(
        "--precision", default=d.precision, choices=PRECISIONS, help="fp32 or fast (default %(default)s)"
    )
    p.add_argument(
        "--block", type=float, default=d.block_seconds, help="block length, s (default %(default)s)"
    )
    p.add_argument(
        "--context", type=float, default=d.context_seconds, help="lookback per block, s (default %(default)s)"
    )
    p.add_argument(
        "--crossfade", type=float, default=d.crossfade_seconds, help="cross-fade, s (default %(default)s)"
    )
    p.add_argument(
        "--search", type=float, default=d.search_seconds, help="SOLA search range, s (default %(default)s)"
    )
    p.add_argument(
        "--silence-db", type=float, default=d.silence_db, help="blocks quieter than this come out silent"
    )
    p.add_argument("-i", "--input-device", help="input device index or name (default: the system's)")
    p.add_argument("-o", "--output-device", help="output device index or name (default: the system's)")
    p.add_argument("--rate", type=int, help="device sample rate (default: the input device's)")
    p.add_argument("--seconds", type=float, help="stop after this long (default: until Ctrl+C)")
    p.add_argument("--input-file", type=Path, help="convert this file block by block instead of a device")
    p.add_argument("--output-file", type=Path, help="with --input-file: where the result goes")
    p.add_argument("--pretrained", type=Path, help="pretrained_models folder (default from STUDIO_HOME)")
    p.add_argument("--device", default="auto", help="torch device (auto, cpu, cuda)")
    return p


def _options(args: argparse.Namespace) -> LiveOptions:
    mix = tuple((name, float(weight)) for name, _, weight in (item.partition("=") for item in args.mix or ()))
    return LiveOptions(
        model=args.model, config=args.config, speaker=args.speaker, mix=mix, transpose=args.transpose,
        f0_method=args.f0, auto_f0=args.auto_f0, noise_scale=args.noise_scale, seed=args.seed,
        cluster_ratio=args.cluster_ratio, cluster_model=args.cluster_model, precision=args.precision,
        block_seconds=args.block, context_seconds=args.context, crossfade_seconds=args.crossfade,
        search_seconds=args.search, silence_db=args.silence_db,
    )  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    from app.settings import load_settings

    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.list_devices:
        print(list_devices())
        return 0
    if args.model is None:
        parser.error("-m/--model is required (a G_*.pth of a trained voice)")
    if (args.input_file is None) != (args.output_file is None):
        parser.error("--input-file and --output-file go together")
    settings = load_settings()
    try:
        options = _options(args)
        pipeline = SVCPipeline(
            args.pretrained or settings.pretrained,
            device=args.device if args.device != "auto" else settings.device,
        )
        if args.input_file is not None:
            return run_file(pipeline, options, args)
        return run_devices(pipeline, options, args)
    except (SvcInputError, SvcModelError, AudioError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (SoundDeviceError, OSError) as exc:  # OSError: no PortAudio library (Debian libportaudio2)
        print(f"error: sound device: {exc}; see --list-devices", file=sys.stderr)
        return 2
