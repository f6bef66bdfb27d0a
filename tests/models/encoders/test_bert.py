"""BERT phone features on a tiny random RoBERTa-style BERT saved to a temp folder (no download)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from app.models.encoders.bert import BertFeaturizer, BertModelMissing, BertOptions
from app.text import text_to_phones

CHARS = "你好欢迎来到我们的节目今天天气很错,.!?"


@pytest.fixture(scope="module")
def bert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from transformers import BertConfig, BertForMaskedLM, BertTokenizer

    folder = tmp_path_factory.mktemp("roberta-tiny")
    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *dict.fromkeys(CHARS)]
    BertTokenizer(vocab={t: i for i, t in enumerate(tokens)}).save_pretrained(folder)
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(tokens),
        hidden_size=32,
        num_hidden_layers=4,
        num_attention_heads=2,
        intermediate_size=64,
    )
    BertForMaskedLM(config).eval().save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def featurizer(bert_dir: Path) -> BertFeaturizer:
    return BertFeaturizer(BertOptions(bert_dir, batch_size=2))


def upstream_reference(folder: Path, text: str, word2ph: list[int]) -> torch.Tensor:
    """Upstream's get_bert_feature: tokenizer(text), hidden_states[-3], drop CLS/SEP, repeat."""
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    model = AutoModelForMaskedLM.from_pretrained(str(folder), local_files_only=True).eval()
    with torch.no_grad():
        res = model(**tok(text, return_tensors="pt"), output_hidden_states=True)
    hidden = res["hidden_states"][-3][0][1:-1]
    return torch.cat([hidden[i].repeat(n, 1) for i, n in enumerate(word2ph)]).T


def test_matches_upstream_computation(featurizer: BertFeaturizer, bert_dir: Path) -> None:
    text, word2ph = "你好,欢迎!", [2, 2, 1, 2, 2, 1]
    got = featurizer.phone_features(text, word2ph)
    assert got.shape == (32, 10) and got.dtype == torch.float32
    torch.testing.assert_close(got, upstream_reference(bert_dir, text, word2ph), atol=1e-5, rtol=1e-5)
    assert torch.equal(got[:, 0], got[:, 1]) and not torch.equal(got[:, 1], got[:, 2])  # repeated per phone


def test_batch_equals_one_by_one(featurizer: BertFeaturizer) -> None:
    items = [("你好.", [2, 2, 1]), ("今天天气很好,我们来到节目!", [2] * 6 + [1] + [2] * 6 + [1]), ("错", [2])]
    batch = featurizer.phone_features_batch(items)
    for (text, w2p), feats in zip(items, batch, strict=True):
        torch.testing.assert_close(feats, featurizer.phone_features(text, w2p), atol=1e-5, rtol=1e-5)


def test_zeros_for_non_chinese_segments(featurizer: BertFeaturizer) -> None:
    r = text_to_phones("这个happy的节目。", "zh", "v2")
    feats = featurizer.text_features(r)
    assert feats.shape == (32, len(r.phones))
    col = 0
    for seg in r.segments:
        block = feats[:, col : col + len(seg.phones)]
        assert bool((block == 0).all()) == (seg.lang != "zh"), seg
        col += len(seg.phones)
    both = featurizer.text_features_batch([r, text_to_phones("你好，欢迎。", "all_zh", "v2")])
    torch.testing.assert_close(both[0], feats, atol=1e-5, rtol=1e-5)


def test_bad_input_and_missing_model(featurizer: BertFeaturizer, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="word2ph has 1 entries for 2 characters"):
        featurizer.phone_features("你好", [2])
    with pytest.raises(ValueError, match="longer than BERT's 510"):
        featurizer.phone_features("好" * 511, [2] * 511)
    with pytest.raises(BertModelMissing, match="chinese-roberta-wwm-ext-large"):
        BertFeaturizer(BertOptions(tmp_path / "nothing"))
