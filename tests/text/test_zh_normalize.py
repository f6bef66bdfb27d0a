"""Mandarin normalisation: numbers, dates, times, money, %, units, phones, maths (upstream's readings)."""

from __future__ import annotations

import pytest

from app.text import chinese, zh_numbers
from app.text.zh_normalize import normalize_clauses, split_clauses, to_simplified


@pytest.mark.parametrize(
    ("value", "cardinal"),
    [("0", "零"), ("10", "十"), ("12", "十二"), ("105", "一百零五"), ("1203", "一千二百零三"),
     ("10000", "一万"), ("100010", "十万零一十"), ("320000000", "三亿二千万"), ("007", "七")],
)  # fmt: skip
def test_cardinal(value: str, cardinal: str) -> None:
    assert zh_numbers.cardinal(value) == cardinal


def test_number_digits_and_fractions() -> None:
    assert zh_numbers.number("3.14") == "三点一四"
    assert zh_numbers.number(".5") == "零点五"
    assert zh_numbers.number("3.20") == "三点二零"  # upstream keeps one trailing zero
    assert zh_numbers.digits("110", alt_one=True) == "幺幺零"
    assert zh_numbers.digits("٣") == "三"  # any Unicode decimal digit \d matches is read
    with pytest.raises(ValueError, match="more than one decimal point"):
        zh_numbers.number("1.2.3")


@pytest.mark.parametrize(
    ("text", "norm"),
    [
        (
            "今天是2005年12月24日，气温32度，适合出门散步。",
            "今天是二零零五年十二月二十四日,气温三十二度,适合出门散步.",
        ),
        ("这件衣服打完折只要447元，便宜了1%。", "这件衣服打完折只要四百四十七元,便宜了百分之一."),
        (
            "他的电话号码是14174533969，有事可以直接联系他。",
            "他的电话号码是幺四幺七四五三三九六九,有事可以直接联系他.",
        ),
        ("请在9点56分之前把报告交上来。", "请在九点五十六分之前把报告交上来."),
        ("列车将于6:14发车，会议7:30-9:30。", "列车将于六点十四分发车,会议七点半至九点半."),
        ("房间号是663，别走错了。", "房间号是六六三,别走错了."),
        ("温度计显示零下15度。", "温度计显示零下十五度."),
        ("体重从70公斤降到了61公斤……", "体重从七十公斤降到了六十一公斤…"),
        ("这本书一共74页，我看完了2/5。", "这本书一共七十四页,我看完了五分之二."),
        ("1+2=3", "一加二等于三"),
        ("气温-3℃，湿度20%~30%", "气温零下三度,湿度百分之二十至百分之三十"),
        ("《红楼梦》是中国古典四大名著之一。", "红楼梦是中国古典四大名著之一."),
        ("它长5cm，重2kg，跑了3km。", "它长五厘米,重两千克,跑了三千米."),
        ("版本1.2.3发布，x²", "版本一点二点三发布,的二次方"),
        ("2024-01-05出发", "二零二四年一月五日出发"),
        ("今天天氣很好", "今天天气很好"),
    ],
)
def test_normalize_matches_upstream_readings(text: str, norm: str) -> None:
    assert chinese.normalize(text, "v2") == norm


def test_clauses_split_after_marks_and_drop_brackets() -> None:
    assert split_clauses("你好 ，世界（啊）！再见") == ["你好，", "世界啊！", "再见"]
    assert normalize_clauses("") == [""]


def test_temperature_unit_is_always_du() -> None:
    # Upstream tests the wrong regex group, so 摄氏度 is read 度 too.
    assert chinese.normalize("2摄氏度", "v2") == "二度"


def test_traditional_to_simplified_keeps_upstream_choices() -> None:
    assert to_simplified("電話機場係") == "电话机场系"
    assert to_simplified("乾") == "乾"  # upstream keeps it (read qian2), OpenCC would write 干
    assert to_simplified("榜") == "搒"  # upstream's table quirk, kept for parity
    assert len(to_simplified("𠀀a😀")) == 3  # one character out per character in


def test_punctuation_mapping_and_repeats() -> None:
    assert chinese.normalize("嗯～好吧！！？", "v2") == "恩…好吧!"
    assert chinese.normalize("A，b、c；d：e", "v2") == ","
    assert chinese.normalize("😀\x07\u200b", "v2") == ""
