"""app.settings: the one reader of the environment."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.paths import Layout
from app.settings import REPO_ROOT, load_settings


def test_defaults_and_studio_home(tmp_path):
    s = load_settings({})
    assert s.home == REPO_ROOT and s.pretrained == REPO_ROOT / "pretrained_models" and not s.offline
    moved = load_settings({"STUDIO_HOME": str(tmp_path)})
    layout = Layout(moved.home, moved.pretrained_dir)
    assert layout.output == tmp_path / "output" and layout.sovits_weights == tmp_path / "SoVITS_weights"
    assert load_settings({"STUDIO_PRETRAINED": str(tmp_path / "pm")}).pretrained == Path(tmp_path / "pm")


@pytest.mark.parametrize(
    ("env", "offline"),
    [({"HF_HUB_OFFLINE": "1"}, True), ({"STUDIO_OFFLINE": "true"}, True), ({"HF_HUB_OFFLINE": "0"}, False)],
)
def test_offline_flag(env, offline):
    assert load_settings(env).offline is offline


def test_bad_numbers_are_named():
    with pytest.raises(ValueError, match="STUDIO_MAX_UPLOAD_MB='lots' is not an integer"):
        load_settings({"STUDIO_MAX_UPLOAD_MB": "lots"})
