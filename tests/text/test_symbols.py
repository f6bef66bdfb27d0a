"""Symbol tables: built by our code, equal to upstream's (fixtures), unknown -> UNK."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app.text import symbols as sym


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_tables_equal_upstream(upstream_fixtures: Path, version: str) -> None:
    ref = json.loads((upstream_fixtures / f"symbols_{version}.json").read_text(encoding="utf-8"))
    assert list(sym.symbols(version)) == ref["symbols"]
    assert len(sym.symbols(version)) == ref["count"]


def test_v2_extends_v1_without_moving_ids() -> None:
    v1, v2 = sym.symbols("v1"), sym.symbols("v2")
    assert v2[: len(v1)] == v1
    assert v2[len(v1)] == "["
    assert len(set(v2)) == len(v2)


def test_unknown_phone_maps_to_unk() -> None:
    ids = sym.phones_to_ids(["n", "i2", "not-a-phone", "Yaa1"], "v1")
    table = sym.symbol_to_id("v1")
    assert ids == [table["n"], table["i2"], table["UNK"], table["UNK"]]  # Cantonese is v2 only
    assert sym.phones_to_ids(["Yaa1"], "v2") == [sym.symbol_to_id("v2")["Yaa1"]]
    assert sym.to_known_phones(("a1", "zz"), "v2") == ("a1", "UNK")


def test_ids_round_trip_and_range_check() -> None:
    phones = ["_", "SP", "UNK", "ㄱ", "Ym"]
    assert sym.ids_to_phones(sym.phones_to_ids(phones, "v2"), "v2") == phones
    with pytest.raises(ValueError, match="outside the v1 table"):
        sym.ids_to_phones([322], "v1")


def test_version_is_checked() -> None:
    with pytest.raises(ValueError, match="unknown text version 'v3'"):
        sym.symbols("v3")
    with pytest.raises(ValueError, match="use one of v1, v2"):
        sym.phones_to_ids(["a1"], "2")
