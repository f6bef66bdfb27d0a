"""GPT (text-to-semantic) training data from a formatted experiment, with upstream's filters.

A clip of ``6-name2semantic.tsv`` is used when (upstream ``Text2SemanticDataset``):

- it has a row in ``2-name2text.txt``;
- it has at most ``max_sec * 25`` semantic tokens and at most ``max_sec * 25 / 2.5`` phones;
- it speaks between 3 and 25 phones per second (``phones / (tokens / 25)``), which drops clips
  whose transcript does not match the audio.

A dataset of fewer than ``min_items`` clips is repeated as for SoVITS. BERT features come from
``3-bert/<name>.pt`` (Chinese clips) and are zeros otherwise.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import Dataset

from app.data.experiment import ExperimentFiles, read_name2text, read_semantic
from app.models.gpt.config import BERT_DIM
from app.runconfig import text_version
from app.text.symbols import phones_to_ids
from app.train.sovits_data import TrainingDataError, repeat_small

log = logging.getLogger(__name__)

TOKENS_PER_SECOND = 25  # 25 Hz semantic tokens
MIN_PHONES_PER_SECOND = 3
MAX_PHONES_PER_SECOND = 25
MAX_PHONES_PER_TOKEN_SECOND = 2.5  # upstream: phones <= max_sec * 25 / 2.5


@dataclass(frozen=True)
class Pair:
    name: str
    phone_ids: tuple[int, ...]
    codes: tuple[int, ...]


class GPTDataset(Dataset):
    """Clips of one experiment; see the module docstring."""

    def __init__(self, exp_dir: Path, version: str, max_sec: float = 54.0, min_items: int = 100) -> None:
        self.files = ExperimentFiles(Path(exp_dir))
        files = self.files
        for path, step in ((files.name2text, "1a"), (files.semantic, "1c")):
            if not path.is_file():
                raise TrainingDataError(f"{path} is missing: format the dataset first (step {step})")
        rows = read_name2text(files.name2text)
        semantic = read_semantic(files.semantic)
        pairs: list[Pair] = []
        counts = {"no text row": 0, "too long": 0, "phones per second out of range": 0}
        for name, codes in semantic.items():
            row = rows.get(name)
            if row is None:
                counts["no text row"] += 1
                continue
            ids = tuple(phones_to_ids(row.phones, text_version(version)))
            if (
                len(codes) > max_sec * TOKENS_PER_SECOND
                or len(ids) > max_sec * TOKENS_PER_SECOND / MAX_PHONES_PER_TOKEN_SECOND
            ):
                counts["too long"] += 1
                continue
            rate = len(ids) / (len(codes) / TOKENS_PER_SECOND) if codes else float("inf")
            if not MIN_PHONES_PER_SECOND <= rate <= MAX_PHONES_PER_SECOND:
                counts["phones per second out of range"] += 1
                continue
            pairs.append(Pair(name, ids, tuple(codes)))
        self.left_out = counts
        if not pairs:
            raise TrainingDataError(
                f"{files.root}: no clip can be trained on ({', '.join(f'{v} {k}' for k, v in counts.items())}); "
                "format the dataset (1a and 1c) first"
            )
        self.unique = len(pairs)
        self.pairs = repeat_small(pairs, min_items)

    @property
    def durations(self) -> list[float]:
        return [len(p.codes) / TOKENS_PER_SECOND for p in self.pairs]

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """(phone ids (Tx,), semantic codes (Ty,), BERT (1024, Tx) or None)."""
        pair = self.pairs[index]
        bert = None
        path = self.files.bert(pair.name)
        if path.is_file():
            bert = torch.load(path, map_location="cpu", weights_only=True).float()
            if bert.shape[-1] != len(pair.phone_ids):
                raise TrainingDataError(
                    f"{path}: {bert.shape[-1]} BERT vectors for {len(pair.phone_ids)} phones; "
                    "delete it and rerun step 1a"
                )
        return (
            torch.tensor(pair.phone_ids, dtype=torch.long),
            torch.tensor(pair.codes, dtype=torch.long),
            bert,
        )


def collate(
    batch: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]], pad_code: int
) -> dict[str, torch.Tensor]:
    """Right-pad phones with 0, codes with ``pad_code`` (EOS, as upstream), BERT with zeros."""
    n = len(batch)
    max_x = max(b[0].shape[0] for b in batch)
    max_y = max(b[1].shape[0] for b in batch)
    phones = torch.zeros(n, max_x, dtype=torch.long)
    codes = torch.full((n, max_y), pad_code, dtype=torch.long)
    bert = torch.zeros(n, BERT_DIM, max_x)
    for i, (x, y, b) in enumerate(batch):
        phones[i, : x.shape[0]] = x
        codes[i, : y.shape[0]] = y
        if b is not None:
            bert[i, :, : b.shape[-1]] = b
    return {
        "phones": phones,
        "phone_lens": torch.tensor([b[0].shape[0] for b in batch]),
        "bert": bert,
        "codes": codes,
        "code_lens": torch.tensor([b[1].shape[0] for b in batch]),
    }
