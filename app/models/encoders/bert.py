"""Chinese BERT phone features: chinese-roberta-wwm-ext-large, one vector per phone.

What upstream GPT-SoVITS feeds its GPT next to the phone ids: for a Mandarin segment, the
hidden states of the third-to-last layer of chinese-roberta-wwm-ext-large (1024 wide), one
vector per character of the normalised text, repeated ``word2ph[i]`` times so there is one per
phone; every other segment (English, Japanese, Korean, Cantonese, raw overrides) gets zeros.

The model and tokenizer load with transformers from a local folder only (upstream's
``pretrained_models/chinese-roberta-wwm-ext-large``); nothing is downloaded. Several sentences
are run as one padded batch.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from app.messages import Message

if TYPE_CHECKING:
    from app.text.frontend import TextResult

log = logging.getLogger(__name__)

FEATURE_DIM = 1024  # hidden size of chinese-roberta-wwm-ext-large (the GPT's bert_proj input)
HIDDEN_LAYER = -3  # upstream takes hidden_states[-3]
MAX_CHARS = 510  # 512 positions minus [CLS] and [SEP]
BERT_LANGUAGE = "zh"  # the only language whose segments get BERT features
DEFAULT_FOLDER = "chinese-roberta-wwm-ext-large"


class BertModelMissing(FileNotFoundError):
    """The BERT folder is missing or incomplete."""


@dataclass(frozen=True)
class BertOptions:
    """How the BERT phone featurizer runs."""

    # Folder with config.json, the weights and the tokenizer files.
    model_dir: Path
    # Torch device string ("cpu", "cuda", "cuda:1").
    device: str = "cpu"
    # Weights and compute dtype; features are returned as float32 either way.
    dtype: torch.dtype = torch.float32
    # Sentences per forward pass.
    batch_size: int = 16


class BertFeaturizer:
    """Per-phone BERT features for Mandarin text (zeros for other languages)."""

    def __init__(self, options: BertOptions) -> None:
        folder = Path(options.model_dir)
        if not (folder / "config.json").is_file():
            template = (
                "no BERT model in {folder} (config.json missing): put chinese-roberta-wwm-ext-large "
                "there (e.g. copy pretrained_models/{default} from GPT-SoVITS)"
            )
            raise BertModelMissing(
                Message("bert.err.missing", template, folder=str(folder), default=DEFAULT_FOLDER)
            )
        from transformers import AutoModelForMaskedLM, AutoTokenizer  # lazy: heavy import

        self.options = options
        self.tokenizer: Any = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
        model = AutoModelForMaskedLM.from_pretrained(str(folder), local_files_only=True)
        self.model: Any = model.to(device=options.device, dtype=options.dtype).eval()
        hidden = int(self.model.config.hidden_size)
        if hidden != FEATURE_DIM:
            log.warning(
                "BERT in %s has hidden size %d, GPT-SoVITS models expect %d", folder, hidden, FEATURE_DIM
            )
        self.dim = hidden
        log.info("BERT phone features from %s on %s", folder, options.device)

    # ---- one character per token ---------------------------------------------------------------
    def _char_ids(self, text: str) -> list[int]:
        """Token ids of ``text``, exactly one per character (upstream's tokenizer gives one per
        Chinese character or mark; anything it would split or drop becomes [UNK] here)."""
        tok = self.tokenizer
        ids = []
        for ch in text:
            pieces = tok.tokenize(ch)
            ids.append(tok.convert_tokens_to_ids(pieces[0]) if len(pieces) == 1 else tok.unk_token_id)
        return ids

    @torch.no_grad()
    def _char_features(self, texts: Sequence[str]) -> list[torch.Tensor]:
        """Hidden states (layer -3) per character, (len(text), dim) float32 on CPU, per text."""
        tok = self.tokenizer
        out: list[torch.Tensor] = []
        for start in range(0, len(texts), self.options.batch_size):
            chunk = texts[start : start + self.options.batch_size]
            rows = [[tok.cls_token_id, *self._char_ids(t), tok.sep_token_id] for t in chunk]
            width = max(len(r) for r in rows)
            ids = torch.full((len(rows), width), tok.pad_token_id, dtype=torch.long)
            mask = torch.zeros((len(rows), width), dtype=torch.long)
            for i, r in enumerate(rows):
                ids[i, : len(r)] = torch.tensor(r)
                mask[i, : len(r)] = 1
            device = self.options.device
            hidden = self.model(
                input_ids=ids.to(device),
                attention_mask=mask.to(device),
                token_type_ids=torch.zeros_like(ids).to(device),
                output_hidden_states=True,
            ).hidden_states[HIDDEN_LAYER]  # (B, T, dim)
            for i, t in enumerate(chunk):
                out.append(hidden[i, 1 : 1 + len(t)].float().cpu())  # drop [CLS], [SEP], padding
        return out

    def phone_features_batch(self, items: Sequence[tuple[str, Sequence[int]]]) -> list[torch.Tensor]:
        """Features of several (norm_text, word2ph) pairs, each (dim, sum(word2ph)) float32."""
        for text, word2ph in items:
            if len(word2ph) != len(text):
                template = "word2ph has {entries} entries for {count} characters of {text!r}"
                raise ValueError(
                    Message("bert.err.word2ph", template, entries=len(word2ph), count=len(text), text=text)
                )
            if len(text) > MAX_CHARS:
                template = "text of {count} characters is longer than BERT's {limit}: split it first (app.text.split_text does)"
                raise ValueError(Message("bert.err.long", template, count=len(text), limit=MAX_CHARS))
        chars = self._char_features([text for text, _ in items])
        out = []
        for feats, (_, word2ph) in zip(chars, items, strict=True):
            counts = torch.as_tensor(list(word2ph), dtype=torch.long)
            out.append(torch.repeat_interleave(feats, counts, dim=0).T.contiguous())  # (dim, phones)
        return out

    def phone_features(self, text: str, word2ph: Sequence[int]) -> torch.Tensor:
        """(dim, sum(word2ph)) features of one normalised Mandarin text."""
        return self.phone_features_batch([(text, word2ph)])[0]

    def text_features_batch(self, results: Sequence[TextResult]) -> list[torch.Tensor]:
        """(dim, len(result.phones)) per frontend result: BERT for zh segments, zeros elsewhere.

        All zh segments of all results run through the model together.
        """
        wanted = [
            (s.norm_text, s.word2ph)
            for r in results
            for s in r.segments
            if s.lang == BERT_LANGUAGE and s.word2ph is not None and s.phones
        ]
        feats = iter(self.phone_features_batch(wanted))
        out = []
        for r in results:
            parts = []
            for s in r.segments:
                if s.lang == BERT_LANGUAGE and s.word2ph is not None and s.phones:
                    parts.append(next(feats))
                else:
                    parts.append(torch.zeros(self.dim, len(s.phones)))
            out.append(torch.cat(parts, dim=1) if parts else torch.zeros(self.dim, 0))
        return out

    def text_features(self, result: TextResult) -> torch.Tensor:
        """(dim, len(result.phones)) features of one frontend result."""
        return self.text_features_batch([result])[0]
