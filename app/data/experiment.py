"""The files of a formatted GPT-SoVITS experiment, byte-compatible with upstream's.

An experiment folder (upstream ``logs/<exp_name>``) holds what dataset formatting writes and
training reads, keyed by the clip's file name (``name``, e.g. ``clip_001.wav``):

- ``2-name2text.txt``: one line per clip, ``name\\tphones\\tword2ph\\tnorm_text``; phones joined by
  spaces, ``word2ph`` as Python prints a list (``[2, 2, 1]``) or ``None`` (non-Chinese), lines
  joined by ``\\n`` with a final ``\\n`` (step 1a).
- ``3-bert/<name>.pt``: ``(1024, n_phones)`` float tensor, Chinese clips only (1a).
- ``4-cnhubert/<name>.pt``: ``(1, 768, T)`` HuBERT features at 50 Hz (1b).
- ``5-wav32k/<name>``: the clip as 16-bit PCM WAV at 32 kHz, under the clip's own name even when
  that ends in ``.flac`` or ``.mp3`` (upstream writes it so) (1b).
- ``6-name2semantic.tsv``: header ``item_name\\tsemantic_audio`` then ``name\\tcodes`` with the codes
  joined by spaces, final ``\\n`` (1c).
- ``7-sv_cn/<name>.pt``: ``(1, 20480)`` float32 speaker-verification embedding of the ``5-wav32k/``
  clip, v2Pro/v2ProPlus only (2-get-sv).

Readers are as lenient as upstream's training loaders (a text line without four fields is
skipped); writers are atomic.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from app.fileio import atomic_write
from app.messages import Message
from app.paths import fit_file_name

NAME2TEXT = "2-name2text.txt"
BERT_DIR = "3-bert"
HUBERT_DIR = "4-cnhubert"
WAV32K_DIR = "5-wav32k"
SEMANTIC = "6-name2semantic.tsv"
SEMANTIC_HEADER = "item_name\tsemantic_audio"
SV_DIR = "7-sv_cn"


class ExperimentFileError(ValueError):
    """An experiment file that cannot be read; the message names the file and the line."""


@dataclass(frozen=True)
class ExperimentFiles:
    """Paths of one experiment folder."""

    root: Path

    @property
    def name2text(self) -> Path:
        return self.root / NAME2TEXT

    @property
    def bert_dir(self) -> Path:
        return self.root / BERT_DIR

    @property
    def hubert_dir(self) -> Path:
        return self.root / HUBERT_DIR

    @property
    def wav32k_dir(self) -> Path:
        return self.root / WAV32K_DIR

    @property
    def semantic(self) -> Path:
        return self.root / SEMANTIC

    @property
    def sv_dir(self) -> Path:
        return self.root / SV_DIR

    # Feature files are named "<clip name>.pt" as upstream names them; a clip name too long for
    # the suffix is shortened with a hash (app.paths.fit_file_name), so no name exceeds 255 bytes.
    def bert(self, name: str) -> Path:
        return self.bert_dir / fit_file_name(name, ".pt")

    def hubert(self, name: str) -> Path:
        return self.hubert_dir / fit_file_name(name, ".pt")

    def wav32k(self, name: str) -> Path:
        return self.wav32k_dir / fit_file_name(name)

    def sv(self, name: str) -> Path:
        """Speaker embedding of a clip: upstream names it after the wav file, as 4-cnhubert/ does."""
        return self.sv_dir / fit_file_name(name, ".pt")


@dataclass(frozen=True)
class TextRow:
    """One line of ``2-name2text.txt``."""

    name: str  # clip file name, the key shared by every experiment file
    phones: tuple[str, ...]  # phone symbols
    word2ph: tuple[int, ...] | None  # phones per character of norm_text (zh/yue), else None
    norm_text: str  # the normalised text the phones were read from

    def to_line(self) -> str:
        # Upstream formats the row with "%s": a list prints as "[2, 2, 1]", no value as "None".
        word2ph = "None" if self.word2ph is None else repr(list(self.word2ph))
        return f"{self.name}\t{' '.join(self.phones)}\t{word2ph}\t{self.norm_text}"


def parse_word2ph(text: str, where: str = "word2ph") -> tuple[int, ...] | None:
    """``"[2, 2, 1]"`` -> ``(2, 2, 1)``, ``"None"`` -> None."""
    text = text.strip()
    if text == "None":
        return None
    if not (text.startswith("[") and text.endswith("]")):
        template = "{where}: {text!r} is neither a list of integers nor None"
        raise ExperimentFileError(Message("experiment.err.word2ph", template, where=where, text=text))
    inner = text[1:-1].strip()
    try:
        return tuple(int(part) for part in inner.split(",")) if inner else ()
    except ValueError:
        template = "{where}: {text!r} is not a list of integers"
        raise ExperimentFileError(
            Message("experiment.err.integers", template, where=where, text=text)
        ) from None


def parse_text_line(line: str, where: str = "line") -> TextRow | None:
    """A row of ``2-name2text.txt``, or None for a line upstream's loaders skip (not four fields)."""
    fields = line.split("\t")
    if len(fields) != 4:
        return None
    name, phones, word2ph, norm_text = fields
    return TextRow(name, tuple(phones.split(" ")) if phones else (), parse_word2ph(word2ph, where), norm_text)


def read_name2text(path: str | os.PathLike) -> dict[str, TextRow]:
    """Rows of a ``2-name2text.txt`` by name (a later duplicate wins, as in upstream's dict)."""
    path = Path(path)
    rows: dict[str, TextRow] = {}
    for line_no, line in enumerate(_read_lines(path), start=1):
        row = parse_text_line(line, f"{path}: line {line_no}")
        if row is not None:
            rows[row.name] = row
    return rows


def format_name2text(rows: Iterable[TextRow]) -> str:
    """The text of a ``2-name2text.txt``."""
    return "\n".join(row.to_line() for row in rows) + "\n"


def write_name2text(path: str | os.PathLike, rows: Iterable[TextRow]) -> Path:
    return atomic_write_text(Path(path), format_name2text(rows))


def semantic_line(name: str, codes: Sequence[int]) -> str:
    return f"{name}\t{' '.join(str(int(c)) for c in codes)}"


def read_semantic(path: str | os.PathLike) -> dict[str, tuple[int, ...]]:
    """Rows of a ``6-name2semantic.tsv`` by name (the header line is skipped)."""
    path = Path(path)
    rows: dict[str, tuple[int, ...]] = {}
    for line_no, line in enumerate(_read_lines(path), start=1):
        if line_no == 1 and line == SEMANTIC_HEADER:
            continue
        name, sep, codes = line.partition("\t")
        if not sep:
            template = "{path}: line {line_no} has no tab between name and codes: {line!r}"
            said = Message("experiment.err.no_tab", template, path=str(path), line_no=line_no, line=line)
            raise ExperimentFileError(said)
        try:
            rows[name] = tuple(int(c) for c in codes.split(" ")) if codes else ()
        except ValueError:
            template = "{path}: line {line_no} holds a code that is not an integer"
            said = Message("experiment.err.code", template, path=str(path), line_no=line_no)
            raise ExperimentFileError(said) from None
    return rows


def format_semantic(rows: Iterable[tuple[str, Sequence[int]]]) -> str:
    """The text of a ``6-name2semantic.tsv`` (header, one row per clip, final newline)."""
    return "\n".join([SEMANTIC_HEADER, *(semantic_line(n, c) for n, c in rows)]) + "\n"


def write_semantic(path: str | os.PathLike, rows: Iterable[tuple[str, Sequence[int]]]) -> Path:
    return atomic_write_text(Path(path), format_semantic(rows))


def _read_lines(path: Path) -> list[str]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        template = "{path}: not found; run dataset formatting first"
        raise ExperimentFileError(Message("experiment.err.not_found", template, path=str(path))) from None
    except UnicodeDecodeError as exc:
        said = Message(
            "experiment.err.not_utf8", "{path}: not UTF-8 text ({problem})", path=str(path), problem=str(exc)
        )
        raise ExperimentFileError(said) from None
    # Upstream: f.read().strip("\n").split("\n"); blank lines are not rows.
    return [line for line in text.strip("\n").split("\n") if line]


def atomic_write_text(path: Path, text: str) -> Path:
    """Write ``text`` (UTF-8, no newline translation) to ``path`` via a temp file and a rename."""
    with atomic_write(path, "w", encoding="utf-8", newline="") as fh:
        fh.write(text)
        os.chmod(fh.name, 0o644)  # ordinary data files, whatever the umask (the temporary is 0600)
    return path
