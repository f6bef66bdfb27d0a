"""bshall's HuBERT-Soft file converted to transformers gives the same soft units as bshall's network."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from app.models.encoders.content import load_content_encoder, missing_encoder_message
from app.models.upstream import hubert_soft
from app.models.upstream.safe_pickle import CheckpointError

pytestmark = pytest.mark.filterwarnings("ignore:.*torch.nn.utils.weight_norm.*is deprecated:FutureWarning")

HIDDEN, HEADS, FFN, CONV, LAYERS, PROJ = 48, 12, 64, 16, 3, 8


class _BshallSoft(nn.Module):
    """bshall/hubert ``HubertSoft`` (release v0.1) at tiny width: names and maths of the original."""

    def __init__(self) -> None:
        super().__init__()
        fe = nn.Module()
        fe.conv0 = nn.Conv1d(1, CONV, 10, 5, bias=False)
        fe.norm0 = nn.GroupNorm(CONV, CONV)
        for i, k in enumerate((3, 3, 3, 3, 2, 2), start=1):
            setattr(fe, f"conv{i}", nn.Conv1d(CONV, CONV, k, 2, bias=False))
        self.feature_extractor = fe
        fp = nn.Module()
        fp.norm = nn.LayerNorm(CONV)
        fp.projection = nn.Linear(CONV, HIDDEN)
        self.feature_projection = fp
        pe = nn.Module()
        # The 2021 release was saved with the old weight norm: weight_g / weight_v in the file.
        pe.conv = torch.nn.utils.weight_norm(nn.Conv1d(HIDDEN, HIDDEN, 128, padding=64, groups=16), dim=2)
        self.positional_embedding = pe
        self.norm = nn.LayerNorm(HIDDEN)
        enc = nn.Module()
        enc.layers = nn.ModuleList(
            nn.TransformerEncoderLayer(HIDDEN, HEADS, FFN, dropout=0.1, activation="gelu", batch_first=True)
            for _ in range(LAYERS)
        )
        self.encoder = enc
        self.proj = nn.Linear(HIDDEN, PROJ)
        self.masked_spec_embed = nn.Parameter(torch.rand(HIDDEN))
        self.label_embedding = nn.Embedding(100, PROJ)

    def units(self, wav: torch.Tensor) -> torch.Tensor:
        """(1, 1, T) -> (1, N, PROJ)."""
        x = F.pad(wav, (40, 40))
        fe = self.feature_extractor
        x = F.gelu(fe.norm0(fe.conv0(x)))
        for i in range(1, 7):
            x = F.gelu(getattr(fe, f"conv{i}")(x))
        x = self.feature_projection.projection(self.feature_projection.norm(x.transpose(1, 2)))
        pos = self.positional_embedding.conv(x.transpose(1, 2))
        x = x + F.gelu(pos[:, :, :-1]).transpose(1, 2)
        x = self.norm(x)
        for layer in self.encoder.layers:
            x = layer(x)
        return self.proj(x)


@pytest.fixture(scope="module")
def bshall_file(tmp_path_factory) -> tuple[Path, _BshallSoft]:
    torch.manual_seed(0)
    model = _BshallSoft().eval()
    with torch.no_grad():  # GroupNorm/LayerNorm affine params away from 1/0, so a swap would show
        for m in model.modules():
            if isinstance(m, (nn.GroupNorm, nn.LayerNorm)):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
    path = tmp_path_factory.mktemp("bshall") / hubert_soft.SOURCE_FILE
    # As the release stores it: DDP-prefixed names under "hubert", plus training state.
    state = {f"module.{k}": v for k, v in model.state_dict().items()}
    torch.save({"hubert": state, "epoch": 3, "step": 25000}, path)
    return path, model


def test_converted_model_gives_bshalls_soft_units(bshall_file, tmp_path) -> None:
    path, reference = bshall_file
    assert "module.positional_embedding.conv.weight_g" in torch.load(path)["hubert"]
    pretrained = tmp_path / "pretrained_models"
    assert "hubert_soft" in missing_encoder_message("hubertsoft", pretrained)
    assert hubert_soft.main([str(path), str(pretrained / hubert_soft.TARGET_FOLDER)]) == 0
    assert missing_encoder_message("hubertsoft", pretrained) == ""

    encoder = load_content_encoder("hubertsoft", pretrained / hubert_soft.TARGET_FOLDER)
    wav = torch.randn(16000) * 0.1
    ours = encoder(wav)  # (1, PROJ, T)
    with torch.no_grad():
        theirs = reference.units(wav.view(1, 1, -1)).transpose(1, 2)
    assert ours.shape == theirs.shape == (1, PROJ, 50)
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-4)


def test_files_that_are_not_hubert_soft_are_refused(tmp_path) -> None:
    other = tmp_path / "other.pt"
    torch.save({"hubert": {"module.weight": torch.zeros(2)}}, other)
    with pytest.raises(CheckpointError, match="not a HuBERT-Soft checkpoint"):
        hubert_soft.convert(other, tmp_path / "out")

    class Payload:
        def __reduce__(self):  # would run a command if unpickled freely
            return (print, ("pwned",))

    evil = tmp_path / "evil.pt"
    evil.write_bytes(pickle.dumps({"hubert": Payload()}, protocol=2))
    with pytest.raises(CheckpointError):
        hubert_soft.convert(evil, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert hubert_soft.main([str(tmp_path / "absent.pt"), str(tmp_path / "out")]) == 2
