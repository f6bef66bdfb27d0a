"""Model choice: names resolve to listed weight files only; files are checked with the safe readers."""

from __future__ import annotations

import itertools
import os
import pickle
import threading
from pathlib import Path

import pytest

from app import config_io
from app.infer.request import ModelLoadError
from app.paths import Layout, PathOutsideRoot
from app.services.model_choice import (
    ModelChoice,
    ModelChoiceStore,
    inspect_weight,
    relative_name,
    resolve_weight,
)
from tests.infer.tiny import write_gpt_file, write_sovits_file


@pytest.fixture(scope="module")
def layout(tmp_path_factory):
    home = tmp_path_factory.mktemp("choice_home")
    layout = Layout(home).ensure()
    write_gpt_file(layout.gpt_weights / "a-e1.ckpt")
    write_gpt_file(layout.gpt_weights / "sub" / "b-e2.ckpt", seed=3)
    write_sovits_file(layout.sovits_weights / "a_e1_s1.pth")
    # An upstream-style base model in pretrained_models/ (named as the v2 asset names it).
    base = layout.pretrained / "gsv-v2final-pretrained"
    write_gpt_file(base / "s1bert25hz-5kh-longer-epoch=12-step=369668.ckpt")
    return layout


def test_relative_paths_bare_names_and_upstream_paths_resolve(layout):
    gpt = layout.gpt_weights / "a-e1.ckpt"
    assert resolve_weight(layout, "gpt", "GPT_weights/a-e1.ckpt") == gpt.resolve()
    assert resolve_weight(layout, "gpt", "a-e1.ckpt") == gpt.resolve()  # bare file name
    assert resolve_weight(layout, "gpt", str(gpt)) == gpt.resolve()  # absolute, inside
    upstream = (
        "GPT_SoVITS/pretrained_models/gsv-v2final-pretrained/s1bert25hz-5kh-longer-epoch=12-step=369668.ckpt"
    )
    assert resolve_weight(layout, "gpt", upstream).parent.name == "gsv-v2final-pretrained"
    assert resolve_weight(layout, "sovits", "SoVITS_weights/a_e1_s1.pth").name == "a_e1_s1.pth"
    assert relative_name(gpt, layout) == "GPT_weights/a-e1.ckpt"


@pytest.mark.parametrize("value", ["/etc/passwd", "../outside.ckpt", "GPT_weights/../../x.ckpt"])
def test_paths_leaving_the_data_root_are_refused(layout, value):
    with pytest.raises(PathOutsideRoot):
        resolve_weight(layout, "gpt", value)


def test_unlisted_files_are_refused_even_inside_the_root(layout):
    stray = layout.output / "stray.ckpt"
    stray.write_bytes(b"x")
    with pytest.raises(ModelLoadError, match="not one of the available GPT models"):
        resolve_weight(layout, "gpt", "output/stray.ckpt")
    # A SoVITS file is not a GPT model, and the reverse.
    with pytest.raises(ModelLoadError, match=r"GPT_weights/a-e1\.ckpt"):
        resolve_weight(layout, "gpt", "SoVITS_weights/a_e1_s1.pth")
    with pytest.raises(ModelLoadError):
        resolve_weight(layout, "sovits", "GPT_weights/a-e1.ckpt")
    with pytest.raises(ModelLoadError, match="no GPT model named"):
        resolve_weight(layout, "gpt", "  ")


def test_a_link_out_of_the_root_is_refused(layout, tmp_path):
    outside = tmp_path / "evil.ckpt"
    write_gpt_file(outside)
    link = layout.gpt_weights / "link.ckpt"
    os.symlink(outside, link)
    try:
        with pytest.raises(PathOutsideRoot):
            resolve_weight(layout, "gpt", "GPT_weights/link.ckpt")
    finally:
        link.unlink()


def test_inspect_reads_versions_and_refuses_bad_files(layout, tmp_path):
    assert inspect_weight(layout.gpt_weights / "a-e1.ckpt", "gpt").version == "v2"
    assert inspect_weight(layout.sovits_weights / "a_e1_s1.pth", "sovits").version == "v2"
    with pytest.raises(ModelLoadError):
        inspect_weight(layout.sovits_weights / "a_e1_s1.pth", "gpt")
    with pytest.raises(ModelLoadError):
        inspect_weight(layout.gpt_weights / "a-e1.ckpt", "sovits")
    evil = tmp_path / "evil.ckpt"

    class Boom:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    evil.write_bytes(pickle.dumps({"weight": Boom(), "config": {}}))
    with pytest.raises(ModelLoadError):
        inspect_weight(evil, "gpt")


def test_store_persists_the_choice_and_falls_back_to_the_first_listed(layout):
    store = ModelChoiceStore(layout)
    store.path.unlink(missing_ok=True)
    gpt, sovits = store.current()
    assert gpt.suffix == ".ckpt" and sovits.name == "a_e1_s1.pth"
    chosen = layout.gpt_weights / "sub" / "b-e2.ckpt"
    assert store.set("gpt", chosen) == ModelChoice(gpt="GPT_weights/sub/b-e2.ckpt", sovits="")
    # Another process (replica) on the same root sees the choice.
    assert ModelChoiceStore(layout).current()[0] == chosen.resolve()
    # A chosen file that disappeared falls back instead of failing every request.
    store.path.write_text('{"gpt": "GPT_weights/gone.ckpt", "sovits": ""}')
    assert store.current()[0].suffix == ".ckpt"
    store.path.unlink()


def test_replicas_setting_both_kinds_at_once_lose_neither(layout, monkeypatch):
    """Each write keeps the other kind as the previous write left it (read-modify-write in turns)."""
    written: list[ModelChoice] = []
    real_save = config_io.save

    def recording_save(obj, path):
        real_save(obj, path)
        threading.Event().wait(0.0005)  # widen the read-modify-write window
        written.append(obj)

    monkeypatch.setattr(config_io, "save", recording_save)
    ModelChoiceStore(layout).path.unlink(missing_ok=True)

    def choose(kind: str, folder: Path, suffix: str) -> None:
        store = ModelChoiceStore(layout)  # one per "replica": no shared state but the file
        for i in range(40):
            store.set(kind, folder / f"{kind}{i}{suffix}")

    threads = [
        threading.Thread(target=choose, args=("gpt", layout.gpt_weights, ".ckpt")),
        threading.Thread(target=choose, args=("sovits", layout.sovits_weights, ".pth")),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(written) == 80
    for before, after in itertools.pairwise([ModelChoice(), *written]):
        assert after.gpt == before.gpt or after.sovits == before.sovits, (before, after)
    final = ModelChoiceStore(layout).read()
    assert (final.gpt, final.sovits) == ("GPT_weights/gpt39.ckpt", "SoVITS_weights/sovits39.pth")
    ModelChoiceStore(layout).path.unlink()


def test_inspect_names_lora_voices_by_their_version(tmp_path, upstream_fixtures):
    for lora in sorted(upstream_fixtures.glob("sovits_v*_lora*.pth")):
        version = "v3" if "_v3_" in lora.name else "v4"
        assert inspect_weight(lora, "sovits").version == version
    broken = tmp_path / "broken.pth"
    broken.write_bytes(b"04" + b"\0" * 64)
    with pytest.raises(ModelLoadError, match=r"broken\.pth"):
        inspect_weight(broken, "sovits")
    with pytest.raises(ModelLoadError, match="cannot read the sovits model"):
        inspect_weight(tmp_path / "missing.pth", "sovits")
