"""TTSRequest validation: every bad value gets a message naming the field and the allowed range."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app.infer import PipelineSpec, TTSInputError, TTSRequest


def test_defaults_are_upstreams_and_normalised():
    r = TTSRequest(text="hi", reference="a.wav", text_language="ALL_ZH", split_method="punctuation", seed=-1)
    assert (r.top_k, r.top_p, r.temperature, r.repetition_penalty) == (15, 1.0, 1.0, 1.35)
    assert (r.speed, r.pause_seconds, r.batch_size) == (1.0, 0.3, 1)
    assert r.text_language == "all_zh" and r.split_method == "cut5" and r.seed is None
    assert not r.uses_prompt
    assert TTSRequest(text="hi", reference="a.wav", prompt_text="  x ").uses_prompt
    assert not TTSRequest(text="hi", reference="a.wav", prompt_text="x", reference_free=True).uses_prompt


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"text": "  \n"}, "text is empty"),
        ({"text_language": "klingon"}, "text_language: unknown language mode 'klingon'"),
        ({"prompt_language": "xx"}, "prompt_language: unknown language mode"),
        ({"split_method": "cut9"}, "unknown text split method 'cut9'"),
        ({"top_k": 0}, "top_k must be at least 1"),
        ({"top_p": 0.0}, r"top_p must be in \(0, 1\]"),
        ({"temperature": -1.0}, "temperature must be between 0 and 5"),
        ({"speed": 10.0}, "speed must be between 0.25 and 4"),
        ({"pause_seconds": -0.1}, "pause_seconds must be between 0 and 10"),
        ({"batch_size": 0}, "batch_size must be between 1 and 64"),
        ({"seed": 2**40}, "seed must be between 0 and"),
        ({"reference": 3}, "reference must be a file path or the bytes"),
        ({"extra_references": ("a.wav",) * 17}, "at most 16 extra reference clips"),
    ],
)
def test_bad_values_are_refused_with_the_reason(changes, message):
    fields = {"text": "hello", "reference": "a.wav", **changes}
    with pytest.raises(TTSInputError, match=message):
        TTSRequest(**fields)


def test_parameters_are_json_and_name_the_references():
    r = TTSRequest(text="hi", reference=b"\x00" * 10, extra_references=("b.wav", Path("c.wav")), seed=7)
    params = json.loads(json.dumps(r.parameters()))
    assert params["reference"] == "<10 bytes>" and params["extra_references"] == ["b.wav", "c.wav"]
    assert (
        params["seed"] == 7 and params["text"] == "hi" and set(params) == set(TTSRequest.__dataclass_fields__)
    )


def test_spec_paths_and_precision():
    spec = PipelineSpec("g.ckpt", "s.pth", "h", "b")
    assert spec.gpt_path == Path("g.ckpt") and spec.precision == "fp32"
    with pytest.raises(TTSInputError, match="unknown precision 'half'"):
        PipelineSpec("g.ckpt", "s.pth", "h", "b", precision="half")
