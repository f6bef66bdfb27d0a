"""Chinese text normalisation: numbers, dates, times, money, percentages, units, phone numbers, maths.

Behaviour-compatible with the PaddleSpeech normaliser upstream GPT-SoVITS uses (its rules run in
the same order, quirks included, because pretrained models learned from its output):

1. split into clauses after ：、，；。？！,;?! (dropping spaces and brackets/quotes first);
2. per clause: traditional -> simplified characters, full-width letters/digits -> ASCII, then
   dates, times, ranges, temperatures, measure units, + - × ÷ =, powers, fractions, percentages,
   phone numbers, ranges, negatives, version numbers, decimals, counted quantities, long digit
   strings (read digit by digit), remaining numbers; Greek letters and circled digits are read out.

The output still contains punctuation and non-Chinese characters; ``chinese.normalize`` maps
and filters them afterwards.
"""

from __future__ import annotations

import re
from functools import lru_cache

import app.text.zh_numbers as num


def _words(text: str) -> tuple[str, ...]:
    """Whitespace-separated items of a compact table string."""
    return tuple(text.split())


# Clause splitting and characters dropped before it ("——" of upstream's class is just "—").
_SPECIAL_CHARS = re.compile(r"[—《》【】<>{}()（）#&@“”^_|\\]")
_CLAUSE_END = re.compile(r"([：、，；。？！,;?!][”’]?)")

# ---- dates and times -------------------------------------------------------------------------
_DATE = re.compile(r"(\d{4}|\d{2})年((0?[1-9]|1[0-2])月)?(((0?[1-9])|((1|2)[0-9])|30|31)([日号]))?")
_DATE_NUMERIC = re.compile(r"(\d{4})([- /.])(0[1-9]|1[012])\2(0[1-9]|[12][0-9]|3[01])")
_HMS = r"([0-1]?[0-9]|2[0-3]):([0-5][0-9])(:([0-5][0-9]))?"
_TIME = re.compile(_HMS)
_TIME_RANGE = re.compile(_HMS + r"(~|-)" + _HMS)


def _date(m: re.Match[str]) -> str:
    out = num.digits(m.group(1)) + "年"
    if m.group(3):
        out += num.cardinal(m.group(3)) + "月"
    if m.group(5):
        out += num.cardinal(m.group(5)) + m.group(9)
    return out


def _date_numeric(m: re.Match[str]) -> str:
    return f"{num.digits(m.group(1))}年{num.cardinal(m.group(3))}月{num.cardinal(m.group(4))}日"


def _clock(hour: str, minute: str, second: str | None, half_minute: str) -> str:
    out = num.number(hour) + "点"
    if minute.lstrip("0"):
        # Upstream decides "半" for the end of a range from the *start* minute: kept for parity.
        out += "半" if int(half_minute) == 30 else num.clock_number(minute) + "分"
    if second and second.lstrip("0"):
        out += num.clock_number(second) + "秒"
    return out


def _time(m: re.Match[str]) -> str:
    out = _clock(m.group(1), m.group(2), m.group(4), m.group(2))
    if m.re is _TIME_RANGE:
        out += "至" + _clock(m.group(6), m.group(7), m.group(9), m.group(2))
    return out


# ---- units, ranges, temperatures -----------------------------------------------------------------
_UNIT_ALTS = r"(%|°C|℃|度|摄氏度|cm2|cm²|cm3|cm³|cm|db|ds|kg|km|m2|m²|m³|m3|ml|m|mm|s)"
_SIGNED = r"((-?)((\d+)(\.\d+)?)|(\.(\d+)))"
_TILDE_RANGE = re.compile(_SIGNED + _UNIT_ALTS + "[~]" + _SIGNED + _UNIT_ALTS)
_TEMPERATURE = re.compile(r"(-?)(\d+(\.\d+)?)(°C|℃|度|摄氏度)")
# Replaced as plain substrings, in this order (longer spellings before their prefixes).
_MEASURES = (
    ("cm2", "平方厘米"),
    ("cm²", "平方厘米"),
    ("cm3", "立方厘米"),
    ("cm³", "立方厘米"),
    ("cm", "厘米"),
    ("db", "分贝"),
    ("ds", "毫秒"),
    ("kg", "千克"),
    ("km", "千米"),
    ("m2", "平方米"),
    ("m²", "平方米"),
    ("m³", "立方米"),
    ("m3", "立方米"),
    ("ml", "毫升"),
    ("m", "米"),
    ("mm", "毫米"),
    ("s", "秒"),
)


def _temperature(m: re.Match[str]) -> str:
    sign = "零下" if m.group(1) else ""
    # Upstream means to keep 摄氏度 but tests the wrong group, so every unit is read 度.
    return sign + num.number(m.group(2)) + "度"


def _measures(sentence: str) -> str:
    for spelling, reading in _MEASURES:
        sentence = sentence.replace(spelling, reading)
    return sentence


# ---- arithmetic ----------------------------------------------------------------------------------
_SUP = "⁰¹²³⁴⁵⁶⁷⁸⁹ˣʸⁿ"
_OPERAND = rf"((-?)((\d+)(\.\d+)?[{_SUP}]*)|(\.\d+[{_SUP}]*)|([A-Za-z][{_SUP}]*))"
_ARITHMETIC = re.compile(_OPERAND + r"([\+\-\×÷=])" + _OPERAND)
_OPERATORS = {"+": "加", "-": "减", "×": "乘", "÷": "除", "=": "等于"}
_POWER = re.compile(f"[{_SUP}]+")
_POWER_DIGITS = str.maketrans(_SUP, "0123456789xyn")


def _arithmetic(m: re.Match[str]) -> str:
    return m.group(1) + _OPERATORS[m.group(8)] + m.group(9)


def _power(m: re.Match[str]) -> str:
    return "的" + m.group(0).translate(_POWER_DIGITS) + "次方"


# ---- fractions, percentages, phone numbers ------------------------------------------------------
_FRACTION = re.compile(r"(-?)(\d+)/(\d+)")
_PERCENT = re.compile(r"(-?)(\d+(\.\d+)?)%")
_MOBILE = re.compile(r"(?<!\d)((\+?86 ?)?1([38]\d|5[0-35-9]|7[678]|9[89])\d{8})(?!\d)")
_LANDLINE = re.compile(r"(?<!\d)((0(10|2[1-3]|[3-9]\d{2})-?)?[1-9]\d{6,7})(?!\d)")
_SERVICE_NUMBER = re.compile(r"(400)(-)?\d{3}(-)?\d{4}")


def _fraction(m: re.Match[str]) -> str:
    sign = "负" if m.group(1) else ""
    return f"{sign}{num.number(m.group(3))}分之{num.number(m.group(2))}"


def _percent(m: re.Match[str]) -> str:
    sign = "负" if m.group(1) else ""
    return f"{sign}百分之{num.number(m.group(2))}"


def _mobile(m: re.Match[str]) -> str:
    # Groups separated by spaces are joined with a pause (full-width comma, mapped to "," later).
    return "，".join(num.digits(part, alt_one=True) for part in m.group(0).strip("+").split())


def _landline(m: re.Match[str]) -> str:
    return "，".join(num.digits(part, alt_one=True) for part in m.group(0).split("-"))


# ---- plain numbers -------------------------------------------------------------------------------
_RANGE = re.compile(r"(?<![\d\+\-\×÷=])((-?)((\d+)(\.\d+)?))[-~]((-?)((\d+)(\.\d+)?))(?![\d\+\-\×÷=])")
_NEGATIVE = re.compile(r"(-)(\d+)")
_VERSION = re.compile(r"((\d+)(\.\d+)(\.\d+)?(\.\d+)+)")
_DECIMAL = re.compile(r"(-?)((\d+)(\.\d+))|(\.(\d+))")
_NUMBER = re.compile(r"(-?)((\d+)(\.\d+)?)|(\.(\d+))")
_LONG_DIGITS = re.compile(r"\d{3}\d*")

# Measure words after which a number is read as a quantity (and 二 as 两). The order of the
# alternatives does not change the output: the matched word is copied unchanged.
_MEASURE_WORDS = _words(
    "处 台 架 枚 趟 幅 平 方 堵 间 床 株 批 项 例 列 篇 栋 注 亩 封 艘 把 目 套 段 人 所 朵 匹 张 座 回 场 尾 条 个 "
    "首 阙 阵 网 炮 顶 丘 棵 只 支 袭 辆 挑 担 颗 壳 窠 曲 墙 群 腔 砣 客 贯 扎 捆 刀 令 打 手 罗 坡 山 岭 江 溪 钟 "
    "队 单 双 对 出 口 头 脚 板 跳 枝 件 贴 针 线 管 名 位 身 堂 课 本 页 家 户 层 丝 毫 厘 分 钱 两 斤 铢 石 钧 锱 "
    "忽 千克 毫克 微克 公分 寸 尺 丈 里 寻 常 铺 程 千米 分米 厘米 毫米 微米 米 撮 勺 合 升 斗 盘 碗 碟 叠 "
    "桶 笼 盆 盒 杯 斛 锅 簋 篮 罐 瓶 壶 卮 盏 箩 箱 煲 啖 袋 钵 年 月 日 季 刻 时 周 天 秒 小时 旬 纪 岁 世 更 "
    "夜 春 夏 秋 冬 代 伏 辈 丸 泡 粒 幢 堆 根 道 面 片 块 元 亿 千万 百万 万 千 百 亿元 千万元 百万元 万元 "
    "千元 百元 美元 亿吨 千万吨 百万吨 万吨 千吨 百吨 十吨 吨 亿块 千万块 百万块 万块 千块 百块 角 毛"
)
_QUANTITY = re.compile(
    r"(\d+)([多余几\+])?(" + "|".join(sorted(set(_MEASURE_WORDS), key=len, reverse=True)) + ")"
)


def _range(m: re.Match[str]) -> str:
    return _NUMBER.sub(_number, m.group(1)) + "到" + _NUMBER.sub(_number, m.group(6))


def _negative(m: re.Match[str]) -> str:
    return "负" + num.number(m.group(2))


def _version(m: re.Match[str]) -> str:
    return "".join("点" if ch == "." else num.number(ch) for ch in m.group(1))


def _number(m: re.Match[str]) -> str:
    if m.group(5):  # ".5"
        return num.number(m.group(5))
    return ("负" if m.group(1) else "") + num.number(m.group(2))


def _quantity(m: re.Match[str]) -> str:
    count = num.number(m.group(1))
    count = "两" if count == "二" else count
    more = "多" if m.group(2) == "+" else (m.group(2) or "")
    return count + more + m.group(3)


def _long_digits(m: re.Match[str]) -> str:
    return num.digits(m.group(0), alt_one=True)


# ---- characters read out at the end ---------------------------------------------------------------
_READ_OUT = {
    "/": "每",
    **{chr(0x2460 + i): ch for i, ch in enumerate("一二三四五六七八九十")},  # ① .. ⑩
    "α": "阿尔法",
    "β": "贝塔",
    "γ": "伽玛",
    "Γ": "伽玛",
    "δ": "德尔塔",
    "Δ": "德尔塔",
    "ε": "艾普西龙",
    "ζ": "捷塔",
    "η": "依塔",
    "θ": "西塔",
    "Θ": "西塔",
    "ι": "艾欧塔",
    "κ": "喀帕",
    "λ": "拉姆达",
    "Λ": "拉姆达",
    "μ": "缪",
    "ν": "拗",
    "ξ": "克西",
    "Ξ": "克西",
    "ο": "欧米克伦",
    "π": "派",
    "Π": "派",
    "ρ": "肉",
    "ς": "西格玛",
    "Σ": "西格玛",
    "σ": "西格玛",
    "τ": "套",
    "υ": "宇普西龙",
    "φ": "服艾",
    "Φ": "服艾",
    "χ": "器",
    "ψ": "普赛",
    "Ψ": "普赛",
    "ω": "欧米伽",
    "Ω": "欧米伽",
    # Operators left over after the arithmetic rule (e.g. "A+" or "=" alone).
    "+": "加",
    "-": "减",
    "×": "乘",
    "÷": "除",
    "=": "等",
}
_READ_OUT_TABLE = str.maketrans(_READ_OUT)
_FINAL_DROP = re.compile(r"[-—《》【】<=>{}()（）#&@“”^_|\\]")

# Full-width ASCII letters and digits to their ASCII forms.
_FULL_TO_HALF = {
    **{0xFF21 + i: 0x41 + i for i in range(26)},
    **{0xFF41 + i: 0x61 + i for i in range(26)},
    **{0xFF10 + i: 0x30 + i for i in range(10)},
}
# (Upstream also lists the ideographic space, but keyed by a str, which str.translate never
# looks up: U+3000 is kept here too and dropped later with the other non-Chinese characters.)


@lru_cache(maxsize=1)
def _t2s_converter():  # type: ignore[no-untyped-def]
    import opencc  # lazy: loads dictionaries

    return opencc.OpenCC("t2s")


# Characters whose simplified form in upstream's table differs from OpenCC's in a way that
# changes the Mandarin or Cantonese reading (乾 stays 乾 = qian2 upstream where OpenCC writes
# 干 = gan1; upstream even turns 榜 into 搒), plus the common 於 and 餘. Pairs "written form,
# upstream's form", found by comparing readings of both conversions.
_T2S_OVERRIDES = dict(
    pair
    for pair in _words(
        "乾乾 於於 餘馀 麼麽 摺摺 榜搒 勣绩 勦剿 吒吒 嗊嗊 埰埰 寀寀 彊强 畬畲 蒐蒐 扞扞 拚拚 捱捱 揹背 搧搧 曏曏 梲梲 楄匾 榦榦 殀夭 殽肴 渢渢 "
        "熅熅 甯宁 睪睾 筩筒 縕縕 翫翫 耑专 荳豆 菕芲 萹扁 蓆蓆 蔘蔘 薀薀 袷袷 裌夹 襉襉 酇酇 鉆鉆 鋙鋙 鋻鉴 錼錼 鏇镟 閤閤 闒闒 餔哺 鰜鰜"
    )
)
_CJK_BASIC = ("\u4e00", "\u9fa5")  # the only Chinese characters the zh/yue g2p reads


@lru_cache(maxsize=65536)
def _simplified_char(ch: str) -> str:
    if ch in _T2S_OVERRIDES:
        return _T2S_OVERRIDES[ch]
    if ch.isascii() or not ch.isprintable():
        return ch
    out = _t2s_converter().convert(ch)
    # Character by character (no phrase rewriting, so the text keeps its length), and never to
    # a rare extension-block form that the reader would drop where upstream keeps the original.
    if len(out) != 1 or (_CJK_BASIC[0] <= ch <= _CJK_BASIC[1] and not _CJK_BASIC[0] <= out <= _CJK_BASIC[1]):
        return ch
    return out


def to_simplified(text: str) -> str:
    """Traditional -> simplified Chinese, one character at a time."""
    return "".join(_simplified_char(ch) for ch in text)


def split_clauses(text: str) -> list[str]:
    """Cut ``text`` after clause punctuation, dropping spaces, brackets and quotes first."""
    text = _SPECIAL_CHARS.sub("", text.replace(" ", ""))
    text = _CLAUSE_END.sub(r"\1\n", text).strip()
    return [clause.strip() for clause in re.split(r"\n+", text)]


def normalize_clause(clause: str) -> str:
    """Spell out numbers, units and symbols of one clause in Chinese characters."""
    s = to_simplified(clause).translate(_FULL_TO_HALF)
    s = _DATE.sub(_date, s)
    s = _DATE_NUMERIC.sub(_date_numeric, s)
    s = _TIME_RANGE.sub(_time, s)  # ranges before single times
    s = _TIME.sub(_time, s)
    s = _TILDE_RANGE.sub(lambda m: m.group(0).replace("~", "至"), s)
    s = _TEMPERATURE.sub(_temperature, s)
    s = _measures(s)
    while _ARITHMETIC.search(s):  # "1+2+3": each pass reads the operators it can
        s = _ARITHMETIC.sub(_arithmetic, s)
    s = _POWER.sub(_power, s)
    s = _FRACTION.sub(_fraction, s)
    s = _PERCENT.sub(_percent, s)
    s = _MOBILE.sub(_mobile, s)
    s = _LANDLINE.sub(_landline, s)
    s = _SERVICE_NUMBER.sub(_landline, s)
    s = _RANGE.sub(_range, s)
    s = _NEGATIVE.sub(_negative, s)
    s = _VERSION.sub(_version, s)
    s = _DECIMAL.sub(_number, s)
    s = _QUANTITY.sub(_quantity, s)
    s = _LONG_DIGITS.sub(_long_digits, s)
    s = _NUMBER.sub(_number, s)
    return _FINAL_DROP.sub("", s.translate(_READ_OUT_TABLE))


def normalize_clauses(text: str) -> list[str]:
    """Split ``text`` into clauses and normalise each (upstream ``TextNormalizer.normalize``)."""
    return [normalize_clause(clause) for clause in split_clauses(text)]
