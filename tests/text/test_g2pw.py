"""G2PW polyphone reader on a tiny hand-built ONNX model with upstream's inputs (no download).

The model reads the polyphonic character from the token *after* it, so the test also checks
that tokens, the query position and the context window are assembled correctly.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest

from app.text import chinese, g2pw
from app.text.cleaner import clean_text

# Polyphones of the model, keyed by Taiwan-traditional characters as G2PW's lists are.
POLYPHONES = [("行", "ㄏㄤ2"), ("行", "ㄒㄧㄥ2"), ("長", "ㄔㄤ2"), ("長", "ㄓㄤ3")]
BOPOMOFO = {"ㄏㄤ": "hang", "ㄒㄧㄥ": "xing", "ㄔㄤ": "chang", "ㄓㄤ": "zhang", "ㄋㄧ": "ni"}
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *"银銀行走长長大了你好很步,."]
# Next token -> label it votes for (labels sorted: ㄏㄤ2, ㄒㄧㄥ2, ㄓㄤ3, ㄔㄤ2).
VOTES = {"銀": 0, "走": 1, "大": 2, "步": 1}


def _onnx_model(path: Path) -> None:
    import onnx
    from onnx import TensorProto, helper

    n_labels = len({p for _, p in POLYPHONES})
    table = np.zeros((len(VOCAB), n_labels), np.float32)
    for tok, label in VOTES.items():
        table[VOCAB.index(tok), label] = 5.0
    ints = ["input_ids", "token_type_ids", "attention_mask"]
    inputs = [helper.make_tensor_value_info(n, TensorProto.INT64, ["B", "T"]) for n in ints]
    inputs += [
        helper.make_tensor_value_info("phoneme_mask", TensorProto.FLOAT, ["B", n_labels]),
        helper.make_tensor_value_info("char_ids", TensorProto.INT64, ["B"]),
        helper.make_tensor_value_info("position_ids", TensorProto.INT64, ["B"]),
    ]
    nodes = [
        helper.make_node("Add", ["position_ids", "one"], ["next_pos"]),
        helper.make_node("Unsqueeze", ["next_pos", "axis1"], ["next_pos_2d"]),
        helper.make_node("GatherElements", ["input_ids", "next_pos_2d"], ["next_tok"], axis=1),  # (B, 1)
        helper.make_node("Gather", ["votes", "next_tok"], ["logits_3d"]),  # (B, 1, L)
        helper.make_node("Squeeze", ["logits_3d", "axis1"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["soft"], axis=-1),
        helper.make_node("Mul", ["soft", "phoneme_mask"], ["probs"]),
    ]
    inits = [
        helper.make_tensor("one", TensorProto.INT64, [], [1]),
        helper.make_tensor("axis1", TensorProto.INT64, [1], [1]),
        helper.make_tensor("votes", TensorProto.FLOAT, list(table.shape), table.flatten().tolist()),
    ]
    out = helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["B", n_labels])
    graph = helper.make_graph(nodes, "tiny_g2pw", inputs, [out], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8  # what onnxruntime of any recent release reads
    onnx.save(model, path)


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from transformers import BertTokenizer

    root = tmp_path_factory.mktemp("pretrained")
    model = root / "G2PWModel"
    model.mkdir()
    _onnx_model(model / "g2pW.onnx")
    (model / "POLYPHONIC_CHARS.txt").write_text(
        "\n".join(f"{c}\t{p}" for c, p in POLYPHONES), encoding="utf-8"
    )
    (model / "MONOPHONIC_CHARS.txt").write_text("你\tㄋㄧ3\n", encoding="utf-8")
    (model / "bopomofo_to_pinyin_wo_tune_dict.json").write_text(json.dumps(BOPOMOFO), encoding="utf-8")
    (model / "config.py").write_text(
        "use_mask = True\nuse_char_phoneme = False\nbatch_size = 256\n", encoding="utf-8"
    )
    BertTokenizer(vocab={t: i for i, t in enumerate(VOCAB)}).save_pretrained(root / g2pw.TOKENIZER_FOLDER)
    return root


def test_find_model_logs_the_reader(
    pretrained: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="app.text.g2pw"):
        assert g2pw.find_model(pretrained) == pretrained / "G2PWModel"
        assert g2pw.find_model(tmp_path) is None
    assert "G2PW model in" in caplog.text and "pypinyin phrase dictionary" in caplog.text


def test_polyphones_come_from_the_model(pretrained: Path) -> None:
    model = pretrained / "G2PWModel"
    # 行 before 走 reads xing2, 长 before 大 reads zhang3, 你 from the monophone list.
    assert g2pw.predict("行走", model) == ["xing2", "zou3"]  # 走: not polyphonic, pypinyin reads it
    far = g2pw.predict("行步" + "很" * 30 + "长大", model)  # one context window spans both
    assert (far[0], far[-2]) == ("xing2", "zhang3") and len(far) == 34
    assert g2pw.predict("你长大了,", model)[:2] == ["ni3", "zhang3"]


def test_chinese_g2p_uses_the_model(pretrained: Path) -> None:
    model = pretrained / "G2PWModel"
    text = chinese.normalize("行走长大。", "v2")
    plain = chinese.g2p(text, "v2").phones
    with_model = chinese.g2p(text, "v2", g2pw_dir=model).phones
    assert with_model[:2] == ("x", "ing2") and with_model[4:6] == ("zh", "ang3")
    assert len(plain) == len(with_model)
    assert clean_text("行走长大。", "zh", "v2", g2pw_dir=model).phones == with_model


def test_incomplete_folder_is_reported(tmp_path: Path) -> None:
    (tmp_path / "G2PWModel").mkdir()
    (tmp_path / "G2PWModel" / "g2pW.onnx").write_bytes(b"")
    with pytest.raises(g2pw.G2PWModelMissing, match=r"POLYPHONIC_CHARS\.txt"):
        g2pw.predict("行", tmp_path / "G2PWModel")
