"""so-vits-svc 4.1 feature files: what 4.1 writes reads here, what we write reads as 4.1 reads it."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from app.models.upstream.safe_pickle import UnsafePickleError
from app.models.upstream.svc import features as sf


def test_feature_paths_follow_41_names(tmp_path) -> None:
    paths = sf.feature_paths(tmp_path / "spk" / "a.wav")
    assert paths["content"].name == "a.wav.soft.pt"
    assert paths["f0"].name == "a.wav.f0.npy"
    assert paths["volume"].name == "a.wav.vol.npy"
    assert paths["spec"].name == "a.spec.pt"  # 4.1 replaces .wav for the spectrogram


def test_f0_written_here_reads_like_41_and_holds_no_pickle(tmp_path) -> None:
    f0 = np.array([110.0, 220.5, 0.0, 330.0], dtype=np.float32)
    uv = np.array([1, 1, 0, 1], dtype=np.float32)
    path = sf.write_f0(tmp_path / "a.wav.f0.npy", f0, uv)
    # 4.1 data_utils: f0, uv = np.load(path, allow_pickle=True)
    f0_41, uv_41 = np.load(path, allow_pickle=True)
    np.testing.assert_array_equal(np.array(f0_41, dtype=float), f0)
    np.testing.assert_array_equal(np.array(uv_41, dtype=float), uv)
    np.load(path, allow_pickle=False)  # no pickle inside
    got_f0, got_uv = sf.read_f0(path)
    np.testing.assert_array_equal(got_f0, f0)
    np.testing.assert_array_equal(got_uv, uv)


def test_f0_pickled_by_41_is_read(tmp_path) -> None:
    f0 = np.linspace(100, 200, 7)
    uv = (np.arange(7) % 2).astype(float)
    path = tmp_path / "b.wav.f0.npy"
    np.save(path, np.asanyarray((f0, uv), dtype=object))  # exactly 4.1's write
    got_f0, got_uv = sf.read_f0(path)
    np.testing.assert_allclose(got_f0, f0, rtol=1e-6)
    np.testing.assert_array_equal(got_uv, uv)
    assert got_f0.dtype == np.float32


def test_f0_pickle_naming_another_global_is_refused_without_running_it(tmp_path) -> None:
    class Boom:
        def __reduce__(self):
            return (print, ("owned",))

    path = tmp_path / "evil.wav.f0.npy"
    np.save(path, np.array([Boom(), Boom()], dtype=object))  # pickles a call to print
    with pytest.raises(UnsafePickleError, match=r"builtins\.print"):
        sf.read_f0(path)


def test_broken_f0_file_names_the_file(tmp_path) -> None:
    path = tmp_path / "c.wav.f0.npy"
    path.write_bytes(b"not numpy")
    with pytest.raises(sf.FeatureFileError, match=r"c\.wav\.f0\.npy"):
        sf.read_f0(path)
    with pytest.raises(sf.FeatureFileError, match="missing f0"):
        sf.read_f0(tmp_path / "absent.wav.f0.npy")


def test_content_and_spec_round_trip_in_41_shapes(tmp_path) -> None:
    c = torch.randn(12, 30)
    path = sf.write_content(tmp_path / "a.wav.soft.pt", c)
    raw = torch.load(path, weights_only=True)  # what 4.1's loader gets
    assert raw.shape == (1, 12, 30)
    torch.testing.assert_close(sf.read_content(path), c)
    spec = torch.rand(65, 40)
    torch.testing.assert_close(sf.read_spec(sf.write_spec(tmp_path / "a.spec.pt", spec)), spec)
    vol = np.random.rand(40).astype(np.float32)
    np.testing.assert_array_equal(sf.read_volume(sf.write_volume(tmp_path / "a.wav.vol.npy", vol)), vol)
    torch.save({"not": "a tensor"}, tmp_path / "bad.soft.pt")
    with pytest.raises(sf.FeatureFileError, match="expected a tensor"):
        sf.read_content(tmp_path / "bad.soft.pt")


def test_cluster_file_round_trip_and_41_layout(tmp_path) -> None:
    centers = {"alto": np.random.rand(5, 12).astype(np.float32), "bass": np.random.rand(3, 12)}
    path = sf.write_cluster(tmp_path / sf.CLUSTER_FILE, centers)
    raw = torch.load(path, weights_only=False)  # 4.1's cluster.get_cluster_model reads it like this
    assert set(raw) == {"alto", "bass"}
    assert raw["alto"]["n_features_in_"] == 12 and isinstance(raw["alto"]["cluster_centers_"], np.ndarray)
    back = sf.read_cluster(path)
    np.testing.assert_array_equal(back["alto"], centers["alto"])
    assert back["bass"].dtype == np.float32 and back["bass"].shape == (3, 12)


def test_cluster_file_with_foreign_objects_is_refused(tmp_path) -> None:
    path = tmp_path / "evil.pt"
    torch.save({"spk": {"cluster_centers_": np.zeros((2, 2)), "x": pickle.PickleError}}, path)
    with pytest.raises(UnsafePickleError):
        sf.read_cluster(path)
    torch.save({"spk": {"n_features_in_": 2}}, tmp_path / "empty.pt")
    with pytest.raises(sf.FeatureFileError, match="no 'cluster_centers_'"):
        sf.read_cluster(tmp_path / "empty.pt")
