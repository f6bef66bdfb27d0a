"""Phone symbol tables of GPT-SoVITS v1 (322 symbols) and v2 (732), and phone -> id lookup.

A phone id is the index of its symbol in the version's table, so the order below is a file
format: the text embeddings of every pretrained and community model are indexed by it. The
tables are built from their parts the way upstream builds them:

- v1 = sorted(set(pad + Mandarin initials + toned Mandarin finals + Japanese phones +
  punctuation/pauses + ARPAbet)).
- v2 = v1 + ``[`` ``]`` (Japanese pitch rise/fall) + sorted Korean jamo + sorted Cantonese
  symbols, appended at the end so that the first 322 ids keep their v1 meaning.

Unknown phones map to ``UNK`` (upstream's ``clean_text`` does the same before the lookup).
"""

from __future__ import annotations

from functools import cache
from itertools import product


def _words(text: str) -> tuple[str, ...]:
    """Whitespace-separated items of a compact table string."""
    return tuple(text.split())


VERSIONS = ("v1", "v2")

PAD = "_"
UNK = "UNK"
# Punctuation kept as phones by every language module, then the pause symbols.
PUNCTUATION = ("!", "?", "…", ",", ".", "-")
PAUSES = ("SP", "SP2", "SP3")

# Mandarin: 23 initials, the zero-initial glides y/w, and AA/EE/OO for syllables that start
# with a, e or o (so every syllable is initial + final).
ZH_INITIALS = _words("b p m f d t n l g k h j q x zh ch sh r z c s y w AA EE OO")
# Mandarin finals without tone. ``i0`` is the apical vowel after z/c/s, ``ir`` after zh/ch/sh/r;
# ``E`` (ye) and ``En`` (yan) are the finals of the syllables ye and yan.
ZH_FINALS = _words(
    "a ai an ang ao e ei en eng er E En i i0 ia ian iang iao ie in ing iong ir iu "
    "o ong ou u ua uai uan uang ui un uo v van ve vn"
)
ZH_TONES = "12345"  # 5 = neutral tone

# Japanese phones of pyopenjtalk (``cl`` = geminate, ``N`` = moraic nasal, I/U devoiced vowels).
JA_PHONES = _words("I N U a b by ch cl d dy e f g gy h hy i j k ky m my n ny o p py r ry s sh t ts u v w y z")
JA_PITCH = ("[", "]")  # v2 only: accent phrase rise / fall marks

# ARPAbet of the CMU dictionary: vowels carry stress 0/1/2; upstream also lists bare ER and IH.
ARPA_VOWELS = _words("AA AE AH AO AW AY EH ER EY IH IY OW OY UH UW")
ARPA_CONSONANTS = _words("B CH D DH F G HH JH K L M N NG P R S SH T TH V W Y Z ZH")
ARPA_BARE = ("ER", "IH")

# Korean: the 19 consonant and 8 vowel jamo g2pk2 output is reduced to, plus 空 (space) and
# 停 (pause) as upstream's Korean module emits them.
KO_SYMBOLS = tuple("ㄱㄴㄷㄹㅁㅂㅅㅇㅈㅊㅋㅌㅍㅎㄲㄸㅃㅆㅉㅏㅓㅗㅜㅡㅣㅐㅔ空停")

# Cantonese (Jyutping), prefixed with "Y" so they never collide with Mandarin symbols.
# Finals carry tones 1-6; initials and a few bare finals appear without tone.
YUE_TONED_FINALS = _words(
    "a aa aai aak aam aan aang aap aat aau ai ak am an ang ap at au e ei ek eng eoi eon eot "
    "g i ik im in ing ip it iu k m n o oe oek oeng oi ok on ong ot ou p t u ui uk un ung ut "
    "yu yun yut"
)
YUE_TONES = "123456"
YUE_TONELESS = _words(
    "b c d f g gw h j k kw l m n ng p s t w z a aa ai ak au e o oi ok on ou uk"
)  # fmt: skip
YUE_PREFIX = "Y"


def _v1_symbols() -> list[str]:
    zh_finals = [final + tone for tone, final in product(ZH_TONES, ZH_FINALS)]
    arpa = [v + s for v, s in product(ARPA_VOWELS, "012")] + list(ARPA_CONSONANTS) + list(ARPA_BARE)
    parts = [PAD, *ZH_INITIALS, *zh_finals, *JA_PHONES, *PUNCTUATION, *PAUSES, UNK, *arpa]
    return sorted(set(parts))


def _v2_symbols() -> list[str]:
    yue = [YUE_PREFIX + f + t for f, t in product(YUE_TONED_FINALS, YUE_TONES)]
    yue += [YUE_PREFIX + s for s in YUE_TONELESS]
    return _v1_symbols() + list(JA_PITCH) + sorted(KO_SYMBOLS) + sorted(yue)


def check_version(version: str) -> str:
    """Return ``version`` if it is a known symbol-table version, else raise ``ValueError``."""
    if version not in VERSIONS:
        raise ValueError(f"unknown text version {version!r}: use one of {', '.join(VERSIONS)}")
    return version


@cache
def symbols(version: str) -> tuple[str, ...]:
    """The symbol table of ``version`` ("v1": 322 symbols, "v2": 732), in id order."""
    check_version(version)
    return tuple(_v1_symbols() if version == "v1" else _v2_symbols())


@cache
def symbol_to_id(version: str) -> dict[str, int]:
    """Map symbol -> id for ``version``. Do not mutate the returned dict (it is cached)."""
    return {s: i for i, s in enumerate(symbols(version))}


def known_phone(phone: str, version: str) -> bool:
    """Whether ``phone`` is in the symbol table of ``version``."""
    return phone in symbol_to_id(version)


def to_known_phones(phones: tuple[str, ...] | list[str], version: str) -> tuple[str, ...]:
    """Replace every phone missing from the table of ``version`` by ``UNK``."""
    table = symbol_to_id(version)
    return tuple(p if p in table else UNK for p in phones)


def phones_to_ids(phones: tuple[str, ...] | list[str], version: str) -> list[int]:
    """Ids of ``phones`` in the table of ``version``; unknown phones get the id of ``UNK``."""
    table = symbol_to_id(version)
    unk = table[UNK]
    return [table.get(p, unk) for p in phones]


def ids_to_phones(ids: list[int] | tuple[int, ...], version: str) -> list[str]:
    """Symbol names of ``ids``; raises ``ValueError`` for an id outside the table."""
    table = symbols(version)
    out = []
    for i in ids:
        if not 0 <= int(i) < len(table):
            raise ValueError(f"phone id {i} is outside the {version} table (0..{len(table) - 1})")
        out.append(table[int(i)])
    return out
