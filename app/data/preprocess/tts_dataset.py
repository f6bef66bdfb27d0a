"""What dataset formatting works on and reports: the clips of a ``.list``, problems, step reports.

A ``.list`` line becomes an :class:`Item` when it parses, its audio path resolves inside the data
folder (:class:`app.data.audio_place.AudioPlace`), its language can be read by the chosen
symbol-table version, its audio file exists and no earlier line uses the same file name (the
name is the key of every experiment file). Every other line becomes a :class:`Problem` carrying
its line number and kind; formatting goes on with the rest, and reports group problems by kind
(:func:`app.data.filelist.group_issues`) instead of one line each.

The :class:`Ledger` (``<experiment>/.format-state.json``) remembers what each step's output was
made from (the text of a line, the audio file's size and time, ...), so a rerun skips what is
done and redoes what changed after proofreading. Outputs without a ledger entry (for example
an experiment formatted by upstream GPT-SoVITS) are taken as done.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from app.assets import catalog
from app.assets.registry import DOWNLOAD_COMMAND
from app.data.audio_place import AudioPlace, locate_rows
from app.data.experiment import atomic_write_text
from app.data.filelist import DUPLICATE, LANGUAGE, MISSING, FileListError, group_issues, read_list
from app.fileio import atomic_path
from app.paths import fit_file_name
from app.text.cleaner import UnsupportedLanguage, check_language

log = logging.getLogger(__name__)

LEDGER_FILE = ".format-state.json"
# progress(step, done, total, item name)
Progress = Callable[[str, int, int, str], None]
# Asked between items; True ends the step early (its work so far is kept).
ShouldStop = Callable[[], bool]


class FormatError(RuntimeError):
    """Formatting cannot run at all (missing base model, unreadable list); the message says what to do."""


class BaseModelMissing(FormatError):
    """A base model a step needs is not in pretrained_models/."""


def base_model_missing(asset_id: str, path: Path) -> BaseModelMissing:
    """An error naming the missing file or folder and the command that downloads it."""
    asset = catalog.get(asset_id)
    urls = [url for f in asset.files if (url := asset.file_url(f))]
    lines = [
        f"{path} is missing ({asset.description}).",
        f"  download: {DOWNLOAD_COMMAND} {asset_id}",
    ]
    if urls:
        lines.append(f"  by hand: put {', '.join(urls)} into {path if not path.suffix else path.parent}")
    return BaseModelMissing("\n".join(lines))


@dataclass(frozen=True)
class Item:
    """One usable clip of the ``.list``."""

    line_no: int  # 1-based line in the .list
    name: str  # file name of the clip: the key in every experiment file
    audio: Path  # where the audio is
    language: str  # zh, en, ja, ko or yue
    text: str  # transcript as written in the list


@dataclass(frozen=True)
class Problem:
    """A line or clip that was left out, and why."""

    step: str  # "list", "1a", "1b", "2-get-sv" or "1c"
    line_no: int | None  # line of the .list, when known
    name: str  # clip name ("" when the line did not parse)
    reason: str  # what is wrong, in words
    kind: str = (
        "step"  # an app.data.filelist.ISSUE_KINDS key for lines of the list; "step" for a step's failure
    )

    def __str__(self) -> str:
        where = f"line {self.line_no}" if self.line_no is not None else "?"
        label = f"{where} ({self.name})" if self.name else where
        return f"[{self.step}] {label}: {self.reason}"


@dataclass(frozen=True)
class StepReport:
    """What one step did."""

    step: str  # "1a", "1b", "2-get-sv" or "1c"
    total: int  # items the step had to cover
    processed: int  # items computed by this run
    skipped: int  # items already done earlier (resumed)
    problems: tuple[Problem, ...] = ()  # items left out by this step
    stopped: bool = False  # the step was asked to stop before the end

    @property
    def ok(self) -> int:
        """Items done (now or before)."""
        return self.processed + self.skipped


@dataclass(frozen=True)
class FormatReport:
    """What a formatting run did."""

    items: int  # usable lines of the .list
    list_problems: tuple[Problem, ...]  # lines of the .list that were left out
    steps: tuple[StepReport, ...]  # one per step run, in order

    @property
    def problems(self) -> tuple[Problem, ...]:
        return self.list_problems + tuple(p for s in self.steps for p in s.problems)

    @property
    def stopped(self) -> bool:
        return any(s.stopped for s in self.steps)

    def summary(self) -> str:
        parts = [f"{self.items} clips in the list"]
        parts += [f"{s.step}: {s.ok}/{s.total} done ({s.processed} new)" for s in self.steps]
        if self.problems:
            parts.append(f"{len(self.problems)} problem(s)")
        return "; ".join(parts)

    def problem_lines(self) -> list[str]:
        """The problems, one line per kind of list problem (count and first line numbers), then each step's."""
        lines = [f"[list] {group}" for group in group_issues(self.list_problems)]
        return lines + [str(p) for s in self.steps for p in s.problems]


def read_items(
    list_path: Path, audio_dir: Path | None, version: str, root: Path | None = None
) -> tuple[list[Item], list[Problem]]:
    """The usable clips of a ``.list`` and the lines left out (with line numbers), in line order.

    Listed audio must resolve inside ``audio_dir`` when given, else inside ``root`` (the data
    folder), else inside the list's folder; other lines are reported and their files never read.
    Raises :class:`FormatError` when the file itself cannot be read.
    """
    try:
        parsed = read_list(list_path)
    except FileListError as exc:
        raise FormatError(str(exc)) from None
    problems = [Problem("list", e.line_no, "", f"{e.reason}: {e.shown!r}", e.kind) for e in parsed.errors]
    place = AudioPlace(audio_dir=audio_dir, base=Path(list_path).parent, root=root)
    located = locate_rows(parsed.rows, parsed.line_numbers, place)
    problems += [Problem("list", e.line_no, "", e.reason, e.kind) for e in located.refused]
    items: list[Item] = []
    first_line: dict[str, int] = {}
    for row, line_no, audio in zip(located.rows, located.line_numbers, located.files, strict=True):
        name = fit_file_name(row.wav_name)  # the key of every experiment file: a usable file name
        try:
            check_language(row.language, version)
        except UnsupportedLanguage as exc:
            problems.append(Problem("list", line_no, name, str(exc), LANGUAGE))
            continue
        if name in first_line:
            reason = (
                f"line {first_line[name]} already uses the file name {name!r}; "
                "clip names must be unique within an experiment"
            )
            problems.append(Problem("list", line_no, name, reason, DUPLICATE))
            continue
        if not audio.is_file():
            problems.append(Problem("list", line_no, name, f"audio file {audio} not found", MISSING))
            continue
        first_line[name] = line_no
        items.append(Item(line_no, name, audio, row.language, row.text))
    problems.sort(key=lambda p: p.line_no or 0)
    return items, problems


def text_key(item: Item, version: str) -> str:
    """What 1a's output of an item depends on."""
    return hashlib.sha1(f"{version}|{item.language}|{item.text}".encode()).hexdigest()[:16]


def file_key(path: Path) -> str:
    """A cheap identity of a file's content (size and modification time)."""
    st = path.stat()
    return f"{st.st_size}:{st.st_mtime_ns}"


class Ledger:
    """Per step, per clip: the key of the inputs its output was made from."""

    def __init__(self, exp_dir: Path) -> None:
        self.path = Path(exp_dir) / LEDGER_FILE
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            data = {}
        self._data: dict[str, dict[str, str]] = {k: dict(v) for k, v in data.items() if isinstance(v, dict)}

    def matches(self, step: str, name: str, key: str) -> bool:
        """True when the recorded key equals ``key`` or nothing is recorded (trust existing output)."""
        recorded = self._data.get(step, {}).get(name)
        return recorded is None or recorded == key

    def record(self, step: str, name: str, key: str) -> None:
        self._data.setdefault(step, {})[name] = key

    def forget(self, step: str, names: Sequence[str]) -> None:
        entries = self._data.get(step, {})
        for name in names:
            entries.pop(name, None)

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.path, json.dumps(self._data, ensure_ascii=False, sort_keys=True))


def atomic_torch_save(obj: object, path: Path) -> None:
    """``torch.save`` to a temp file beside ``path``, then rename (no half-written features)."""
    import torch

    # 0o666 under the umask: the mode torch.save gives a file it creates.
    with atomic_path(path, suffix=".tmp", permissions=0o666) as tmp:
        torch.save(obj, tmp)
