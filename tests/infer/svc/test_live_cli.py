"""``python -m app.infer.svc_live``: file mode, the device callback driven directly, a stand-in sound device."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import soundfile as sf
import soxr
import torch

from app.infer.svc import live_cli
from app.infer.svc.live import LiveConverter, LiveOptions
from app.infer.svc.pipeline import SVCPipeline
from tests.svc_data import SR, melody
from tests.synth import silence


@pytest.fixture(scope="module")
def song():
    return np.concatenate([silence(0.2, SR), melody([220, 262, 247], 0.4, seed=7), silence(0.2, SR)])


def _common(svc_trained) -> list[str]:
    return ["-m", str(svc_trained.model), "-s", "alto", "--pretrained", str(svc_trained.pretrained),
            "--device", "cpu", "--block", "0.256", "--context", "0.5", "-ns", "0"]  # fmt: skip


def test_file_mode_converts_block_by_block_to_the_input_length(svc_trained, song, tmp_path, capsys):
    torch.set_num_threads(1)
    src, dst = tmp_path / "in.wav", tmp_path / "out.wav"
    sf.write(src, song, SR)
    assert (
        live_cli.main([*_common(svc_trained), "-t", "2", "--input-file", str(src), "--output-file", str(dst)])
        == 0
    )
    assert capsys.readouterr().out.strip() == str(dst)
    out, sr = sf.read(dst)
    assert sr == SR and len(out) == len(song) and np.abs(out).max() > 0.01


def test_the_device_callback_plays_what_the_converter_made(svc_trained, song):
    pipeline = SVCPipeline(svc_trained.pretrained, device="cpu")
    options = LiveOptions(model=svc_trained.model, block_seconds=0.256, context_seconds=0.5, noise_scale=0.0)
    loop = live_cli.AudioLoop(LiveConverter(pipeline, options))
    reference = LiveConverter(pipeline, options)
    frames = loop.converter.geometry.block
    played, expected = [], []
    for i in range(0, len(song) - frames + 1, frames):
        outdata = np.full((frames, 1), np.nan, np.float32)
        loop.callback(song[i : i + frames, None], outdata, frames, None, None)
        played.append(outdata[:, 0].copy())
        assert loop.step(timeout=1.0)
        expected.append(reference.feed(song[i : i + frames]))
    played = np.concatenate(played)
    np.testing.assert_array_equal(played[:frames], 0)  # nothing converted yet: silence, not garbage
    np.testing.assert_allclose(played[frames:], np.concatenate(expected)[: len(played) - frames], atol=1e-6)
    assert loop.underruns == 0 and not loop.step(timeout=0.01)


class _FakeSounddevice:
    """A sound card that plays ``song`` at 48 kHz into the callback in real time and records the output."""

    PortAudioError = RuntimeError

    def __init__(self, song: np.ndarray) -> None:
        self.input = soxr.resample(song, SR, 48000).astype(np.float32)
        self.recorded: list[np.ndarray] = []

    def query_devices(self, device=None, kind=None):
        return {"default_samplerate": 48000.0, "name": "fake"}

    def Stream(self, *, device, samplerate, blocksize, channels, dtype, callback):
        fake = self

        class _Stream:
            def __enter__(self):
                self.stop = threading.Event()
                self.thread = threading.Thread(target=self.run)
                self.thread.start()

            def run(self):
                i = 0
                while not self.stop.is_set():
                    chunk = fake.input[i : i + blocksize]
                    chunk = np.pad(chunk, (0, blocksize - len(chunk)))[:, None]
                    out = np.zeros((blocksize, channels), np.float32)
                    callback(chunk, out, blocksize, None, None)
                    fake.recorded.append(out[:, 0].copy())
                    i += blocksize
                    time.sleep(blocksize / samplerate)

            def __exit__(self, *exc):
                self.stop.set()
                self.thread.join()

        assert samplerate == 48000 and channels == 1 and dtype == "float32"
        return _Stream()


def test_devices_mode_runs_the_stream_at_the_device_rate(svc_trained, song, monkeypatch, caplog):
    import sys

    fake = _FakeSounddevice(song)
    monkeypatch.setitem(sys.modules, "sounddevice", fake)
    caplog.set_level("INFO")
    assert live_cli.main([*_common(svc_trained), "--seconds", "2.5", "-i", "0", "-o", "1"]) == 0
    recorded = np.concatenate(fake.recorded)
    assert len(recorded) >= 48000 and np.abs(recorded).max() > 0.01
    assert "latency 0.316 s + processing" in caplog.text and "blocks of 0.256 s" in caplog.text


def test_list_devices_and_missing_arguments(monkeypatch, capsys, svc_trained, tmp_path):
    import sys

    class Devices:
        PortAudioError = RuntimeError

        @staticmethod
        def query_devices():
            return [
                {
                    "name": "USB mic",
                    "max_input_channels": 1,
                    "max_output_channels": 0,
                    "default_samplerate": 48000.0,
                }
            ]

    monkeypatch.setitem(sys.modules, "sounddevice", Devices)
    assert live_cli.main(["--list-devices"]) == 0
    assert "0 USB mic (in 1, out 0, 48000 Hz)" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        live_cli.main([])
    assert "-m/--model is required" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        live_cli.main(["-m", "x.pth", "--input-file", "a.wav"])
    code = live_cli.main([*_common(svc_trained), "--block", "9", "--input-file", str(tmp_path / "a.wav"),
                          "--output-file", str(tmp_path / "b.wav")])  # fmt: skip
    assert code == 2 and "block length 9 s is out of range" in capsys.readouterr().err
