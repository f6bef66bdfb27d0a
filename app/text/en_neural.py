"""Neural spelling-to-ARPAbet fallback for English words missing from every lexicon.

The network is g2p_en's GRU encoder-decoder; its weights ship inside the ``g2p_en`` wheel as
``checkpoint20.npz``. We read that file directly instead of importing ``g2p_en``: importing it
runs ``nltk.download`` at module level, which reaches for the network. The arithmetic below
follows g2p_en's numpy inference step for step (same dtypes, same operation order), so the
greedy decode picks the same phones.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

# Input alphabet and output phone set, in the checkpoint's index order.
GRAPHEMES = ("<pad>", "<unk>", "</s>", *"abcdefghijklmnopqrstuvwxyz")
PHONEMES = (
    "<pad>", "<unk>", "<s>", "</s>",
    "AA0", "AA1", "AA2", "AE0", "AE1", "AE2", "AH0", "AH1", "AH2", "AO0", "AO1", "AO2",
    "AW0", "AW1", "AW2", "AY0", "AY1", "AY2", "B", "CH", "D", "DH",
    "EH0", "EH1", "EH2", "ER0", "ER1", "ER2", "EY0", "EY1", "EY2", "F", "G", "HH",
    "IH0", "IH1", "IH2", "IY0", "IY1", "IY2", "JH", "K", "L", "M", "N", "NG", "OW0", "OW1",
    "OW2", "OY0", "OY1", "OY2", "P", "R", "S", "SH", "T", "TH",
    "UH0", "UH1", "UH2", "UW", "UW0", "UW1", "UW2", "V", "W", "Y", "Z", "ZH",
)  # fmt: skip
_G2IDX = {g: i for i, g in enumerate(GRAPHEMES)}
_UNK = _G2IDX["<unk>"]
_START, _END = 2, 3  # decoder <s> and </s> ids
MAX_PHONES = 20  # g2p_en decodes at most 20 steps


class NeuralG2PUnavailable(RuntimeError):
    """The g2p_en checkpoint could not be found or read."""


@dataclass(frozen=True)
class _Gru:
    """One GRU layer's parameters, PyTorch layout: gates stacked as [reset; update; new]."""

    w_ih: np.ndarray  # (3H, E)
    w_hh: np.ndarray  # (3H, H)
    b_ih: np.ndarray  # (3H,)
    b_hh: np.ndarray  # (3H,)

    def step(self, x: np.ndarray, h: np.ndarray) -> np.ndarray:
        """x (1, E), h (1, H) -> new h (1, H)."""
        gi = np.matmul(x, self.w_ih.T) + self.b_ih  # (1, 3H)
        gh = np.matmul(h, self.w_hh.T) + self.b_hh  # (1, 3H)
        cut = gi.shape[-1] * 2 // 3
        rz = 1 / (1 + np.exp(-(gi[:, :cut] + gh[:, :cut])))  # sigmoid of reset and update gates
        r, z = np.split(rz, 2, -1)
        n = np.tanh(gi[:, cut:] + r * gh[:, cut:])
        return (1 - z) * n + z * h


@dataclass(frozen=True)
class NeuralG2P:
    """Greedy GRU seq2seq from lower-case letters to ARPAbet phones."""

    enc_emb: np.ndarray  # (len(GRAPHEMES), E)
    encoder: _Gru
    dec_emb: np.ndarray  # (len(PHONEMES), E)
    decoder: _Gru
    fc_w: np.ndarray  # (len(PHONEMES), H)
    fc_b: np.ndarray  # (len(PHONEMES),)

    def __call__(self, word: str) -> list[str]:
        """Phones for ``word``; characters other than a-z are read as ``<unk>``."""
        ids = [_G2IDX.get(c, _UNK) for c in word] + [_G2IDX["</s>"]]
        x = np.take(self.enc_emb, np.expand_dims(ids, 0), axis=0)  # (1, T, E)
        h = np.zeros((1, self.encoder.w_hh.shape[-1]), np.float32)  # (1, H)
        # Mirror g2p_en: every encoder state is written into a float32 buffer and the last one
        # is read back, which rounds it to float32 before decoding.
        states = np.zeros((1, len(ids), h.shape[-1]), np.float32)
        for t in range(len(ids)):
            h = self.encoder.step(x[:, t, :], h)
            states[:, t, :] = h
        h = states[:, -1, :]

        dec = np.take(self.dec_emb, [_START], axis=0)  # (1, E)
        out: list[str] = []
        for _ in range(MAX_PHONES):
            h = self.decoder.step(dec, h)
            pred = int((np.matmul(h, self.fc_w.T) + self.fc_b).argmax())
            if pred == _END:
                break
            out.append(PHONEMES[pred] if pred < len(PHONEMES) else "<unk>")
            dec = np.take(self.dec_emb, [pred], axis=0)
        return out


def checkpoint_path() -> Path:
    """Location of g2p_en's bundled ``checkpoint20.npz``, found without importing g2p_en."""
    spec = importlib.util.find_spec("g2p_en")
    if spec is None or not spec.submodule_search_locations:
        raise NeuralG2PUnavailable(
            "the g2p_en package is not installed; it ships the English OOV model "
            "(pip install g2p-en==2.1.0, see requirements.txt)"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "checkpoint20.npz"
    if not path.is_file():
        raise NeuralG2PUnavailable(f"{path} is missing; reinstall g2p-en")
    return path


@lru_cache(maxsize=1)
def load() -> NeuralG2P:
    """The OOV model, loaded once."""
    path = checkpoint_path()
    try:
        with np.load(path) as v:
            return NeuralG2P(
                enc_emb=v["enc_emb"],
                encoder=_Gru(v["enc_w_ih"], v["enc_w_hh"], v["enc_b_ih"], v["enc_b_hh"]),
                dec_emb=v["dec_emb"],
                decoder=_Gru(v["dec_w_ih"], v["dec_w_hh"], v["dec_b_ih"], v["dec_b_hh"]),
                fc_w=v["fc_w"],
                fc_b=v["fc_b"],
            )
    except (OSError, KeyError, ValueError) as exc:
        raise NeuralG2PUnavailable(f"cannot read the English OOV model {path}: {exc}") from exc
