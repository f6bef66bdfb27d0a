"""The Label tab's clean-up panel with UVR's VR files: engine from the name, models table rows."""

from __future__ import annotations

from app.data.preprocess.vr import model_path
from app.models.upstream.uvr_vr import ASPP
from app.ui.tabs.label_cleanup import SEPARATION_CHOICES, models_table, pipeline_parts
from tests.data.preprocess.tiny_vr import tiny_vr


def test_vr_names_pick_the_vr_engine_and_vr_clean_up_models():
    assert {"HP2_all_vocals.pth", "HP3_all_vocals.pth"} <= set(SEPARATION_CHOICES)
    separation, cleanup = pipeline_parts(
        "HP3_all_vocals.pth", 1, 0.25, True, "HP5_only_main_vocal.pth", True, "VR-DeEchoAggressive.pth",
        False, "spectral-gate", 0.5,
    )  # fmt: skip
    assert (separation.engine, separation.model) == ("vr", "HP3_all_vocals.pth")
    assert cleanup.steps == ("karaoke", "dereverb")
    assert (cleanup.karaoke, cleanup.dereverb) == ("HP5_only_main_vocal.pth", "VR-DeEchoAggressive.pth")
    assert (
        pipeline_parts("htdemucs", 1, 0.25, False, "", False, "", False, "spectral-gate", 0.5)[0].engine
        == "demucs"
    )


def test_models_table_marks_vr_files_and_names_their_download(tmp_path):
    tiny_vr(model_path("HP5_only_main_vocal.pth", tmp_path), ASPP, 0.5)
    table = models_table(tmp_path)
    assert "| ✓ | `HP5_only_main_vocal.pth` (uvr5_weights/) |  |" in table
    assert (
        "| ✗ | `VR-DeEchoNormal.pth` (uvr5_weights/) | `python tools/download_models.py uvr-vr-deecho-normal` |"
        in table
    )
