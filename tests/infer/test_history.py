"""History files: every parameter and the seed beside each wav; listing newest first."""

from __future__ import annotations

import json
import os
import time

import soundfile as sf

from app.infer import TTSRequest, history


def test_save_and_list(pipeline, ref_wav, tmp_path):
    folder = tmp_path / "tts"
    request = TTSRequest(text="History one.", text_language="en", reference=str(ref_wav), seed=None, top_k=7)
    result = pipeline.synthesize(request)
    entry = history.save(folder, request, result, pipeline.spec)
    record = json.loads(entry.meta.read_text("utf-8"))
    assert entry.wav.name.endswith(f"-{result.seed}.wav") and record["wav"] == entry.wav.name
    assert record["request"]["seed"] == result.seed and record["request"]["seed_requested"] is None
    assert record["request"]["top_k"] == 7 and record["request"]["reference"] == str(ref_wav)
    assert set(TTSRequest.__dataclass_fields__) <= set(record["request"])
    assert record["models"]["gpt"] == str(pipeline.spec.gpt_path) and record["models"]["precision"] == "fp32"
    assert record["tokens_per_segment"] == [int(t.numel()) for t in result.tokens]
    audio, sr = sf.read(entry.wav, dtype="int16")
    assert sr == 32000 and (audio == result.audio).all()

    second = history.save(folder, request, result)  # same second, same seed: a distinct name
    assert second.wav != entry.wav and second.wav.is_file()
    past = time.time() - 100
    os.utime(entry.meta, (past, past))
    (folder / "broken.json").write_text("{not json", "utf-8")
    (folder / "broken.wav").write_bytes(b"")
    listed = history.entries(folder)
    assert [e.wav for e in listed] == [second.wav, entry.wav]
    assert listed[0].text == "History one." and listed[0].seed == result.seed
    assert history.entries(tmp_path / "missing") == []
