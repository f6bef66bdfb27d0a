"""The dataset formatting steps of GPT-SoVITS, each resumable item by item.

- 1a (:func:`step_text`): phones, ``word2ph`` and normalised text per line -> ``2-name2text.txt``;
  BERT phone features for Chinese lines -> ``3-bert/<name>.pt``. Phonemisation runs in
  ``workers`` processes for larger lists; BERT runs in batches.
- 1b (:func:`step_hubert`): the clip at 32 kHz, mixed as upstream (half peak-normalised, half
  as is) -> ``5-wav32k/<name>`` (int16) and HuBERT features of that mix -> ``4-cnhubert/<name>.pt``.
  Audio is decoded and resampled in ``workers`` threads while the model runs.
- 2-get-sv (:func:`step_sv`, v2Pro/v2ProPlus only): the ``5-wav32k/`` clip as upstream's
  ``torchaudio.load`` reads it through the ERes2NetV2 speaker-verification model ->
  ``7-sv_cn/<name>.pt``, a float32 ``(1, 20480)`` embedding (upstream ``2-get-sv.py``).
- 1c (:func:`step_semantic`): HuBERT features through the pretrained SoVITS quantizer ->
  ``6-name2semantic.tsv`` (v3/v4: the quantizer and ``ssl_proj`` of the flow-matching base,
  ``s2Gv3.pth`` / ``gsv-v4-pretrained/s2Gv4.pth``, as upstream's 3-get-semantic.py loads it).

Finished items of 1a and 1c are appended to a hidden partial file as they come, so an
interrupted step loses nothing; the final file is written (atomically, in list order) at the
end of the step and the partial file removed. 1b's and 2-get-sv's outputs are per-clip files
written atomically (1b's features last).
"""

from __future__ import annotations

import logging
import multiprocessing
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import torch

from app.audio.io import AudioError, load_audio
from app.data.experiment import (
    ExperimentFiles,
    TextRow,
    parse_text_line,
    read_name2text,
    read_semantic,
    semantic_line,
    write_name2text,
    write_semantic,
)
from app.data.preprocess.tts_dataset import (
    Item,
    Ledger,
    Problem,
    Progress,
    ShouldStop,
    StepReport,
    atomic_torch_save,
    base_model_missing,
    file_key,
    text_key,
)
from app.fileio import atomic_path
from app.models.encoders.hubert import TRAIN_ALPHA, TRAIN_PEAK, training_input
from app.runconfig import SV_STEP

log = logging.getLogger(__name__)

SAMPLE_RATE = 32000  # 5-wav32k/ rate, the SoVITS training rate
INT16_FULL_SCALE = 32768  # upstream mixes onto this scale before casting to int16
BERT_BATCH = 16  # sentences per BERT forward pass
# Lists at least this long (per worker) are phonemised in worker processes; shorter ones inline.
# A worker pays ~5-10 s starting and loading the text frontend, the time of a few hundred lines
# (measured: 60 English lines take 7.5 s inline, 24.5 s with 2 spawned workers on 2 cores).
MIN_ITEMS_PER_PROCESS = 500
PENDING_PER_WORKER = 2  # clips decoded ahead of the HuBERT model, per thread
LEDGER_FLUSH_EVERY = 20  # items between ledger writes in 1b
PARTIAL_TEXT = ".2-name2text.partial"
PARTIAL_SEMANTIC = ".6-name2semantic.partial"
# Download of each version's pretrained SoVITS generator (app.assets.catalog ids), named when 1c lacks it.
S2G_ASSETS = {
    "v1": "gpt-sovits-v1",
    "v2": "gpt-sovits-v2",
    "v2Pro": "gpt-sovits-v2pro",
    "v2ProPlus": "gpt-sovits-v2proplus",
    "v3": "gpt-sovits-v3",
    "v4": "gpt-sovits-v4",
}


def _noop_progress(step: str, done: int, total: int, name: str) -> None:
    return None


def _never() -> bool:
    return False


# ------------------------------------------------------------------------------------------- 1a
def phonemise(text: str, language: str, version: str) -> TextRow:
    """One line's phones as upstream's 1a computes them (``%`` read as ``-``, ``￥`` as ``,``)."""
    from app.text.cleaner import clean_text

    result = clean_text(text.replace("%", "-").replace("￥", ","), language, version)
    return TextRow("", result.phones, result.word2ph, result.norm_text)


def _phonemise_job(args: tuple[str, str, str]) -> TextRow | str:
    """Worker entry: a row, or the error text (exceptions of one line must not end the pool)."""
    try:
        return phonemise(*args)
    except Exception as exc:  # any reader error is this line's problem, reported with its number
        return f"{type(exc).__name__}: {exc}"


def _read_partial(
    path: Path, parse: Callable[[str], tuple[str, object] | None]
) -> dict[str, tuple[str, object]]:
    """name -> (key, payload) from a partial file of ``key\\t<line>`` lines (a torn last line is ignored)."""
    done: dict[str, tuple[str, object]] = {}
    try:
        lines = path.read_text(encoding="utf-8").split("\n")
    except FileNotFoundError:
        return done
    for line in lines:
        key, sep, rest = line.partition("\t")
        if not sep:
            continue
        parsed = parse(rest)
        if parsed is not None:
            done[parsed[0]] = (key, parsed[1])
    return done


def _parse_text_payload(line: str) -> tuple[str, object] | None:
    try:
        row = parse_text_line(line)
    except ValueError:
        return None
    return (row.name, row) if row is not None else None


def step_text(
    items: Sequence[Item],
    files: ExperimentFiles,
    *,
    version: str,
    bert_dir: Path,
    device: torch.device,
    dtype: torch.dtype,
    workers: int = 1,
    progress: Progress = _noop_progress,
    should_stop: ShouldStop = _never,
) -> StepReport:
    """Step 1a. See the module docstring."""
    ledger = Ledger(files.root)
    partial = files.root / PARTIAL_TEXT
    rows = _known_rows(files, partial, ledger)
    todo = [item for item in items if not _text_done(item, rows, ledger, files, version)]
    skipped = len(items) - len(todo)
    if todo and any(item.language == "zh" for item in todo) and not (bert_dir / "config.json").is_file():
        raise base_model_missing("chinese-roberta-wwm-ext-large", bert_dir)
    files.root.mkdir(parents=True, exist_ok=True)
    files.bert_dir.mkdir(parents=True, exist_ok=True)
    progress("1a", skipped, len(items), "")
    with partial.open("a", encoding="utf-8") as out:
        sink = _TextSink(
            out, files, ledger, rows, version, (bert_dir, device, dtype), len(items), skipped, progress
        )
        stopped = _phonemise_into(sink, todo, workers, should_stop)
        sink.flush_bert()
    ledger.save()
    if not stopped:
        failed = {p.name for p in sink.problems}  # a line whose new text fails loses its old row too
        wanted = [rows[i.name] for i in items if i.name in rows and i.name not in failed]
        write_name2text(files.name2text, wanted)
        partial.unlink(missing_ok=True)
    return StepReport("1a", len(items), sink.processed, skipped, tuple(sink.problems), stopped)


def _known_rows(files: ExperimentFiles, partial: Path, ledger: Ledger) -> dict[str, TextRow]:
    """name -> row of ``2-name2text.txt`` and of an interrupted run's partial file (recorded in the ledger)."""
    rows: dict[str, TextRow] = {}
    if files.name2text.is_file():
        rows.update(read_name2text(files.name2text))
    for name, (key, row) in _read_partial(partial, _parse_text_payload).items():
        rows[name] = row  # type: ignore[assignment]
        ledger.record("1a", name, key)
    return rows


def _text_done(
    item: Item, rows: dict[str, TextRow], ledger: Ledger, files: ExperimentFiles, version: str
) -> bool:
    """The line has a row made from its current text (and, for Chinese, its BERT features)."""
    row = rows.get(item.name)
    if row is None or not ledger.matches("1a", item.name, text_key(item, version)):
        return False
    return item.language != "zh" or files.bert(item.name).is_file()


def _phonemise_into(sink: _TextSink, todo: Sequence[Item], workers: int, should_stop: ShouldStop) -> bool:
    """Phonemise ``todo`` in list order into ``sink``; True when stopped on request."""
    for item, result in _phonemised(todo, sink.version, workers):
        if isinstance(result, str):
            sink.problems.append(Problem("1a", item.line_no, item.name, f"cannot read the text: {result}"))
            sink.report(item.name)
            continue
        sink.add(item, TextRow(item.name, result.phones, result.word2ph, result.norm_text))
        if should_stop():
            return True
    return False


@dataclass
class _TextSink:
    """Where step 1a's lines go as they finish: the partial file, ``rows``, the ledger and the progress
    count. Chinese lines wait for their BERT features, computed ``BERT_BATCH`` lines at a time."""

    out: TextIO  # the open partial file
    files: ExperimentFiles
    ledger: Ledger
    rows: dict[str, TextRow]  # name -> row, the known ones and the new
    version: str
    bert_model: tuple[Path, torch.device, torch.dtype]  # BERT folder, device and dtype, loaded on first use
    total: int  # lines in the list
    skipped: int  # lines already done before this run
    progress: Progress
    problems: list[Problem] = field(default_factory=list)
    processed: int = 0  # lines finished by this run
    pending_bert: list[tuple[Item, TextRow]] = field(default_factory=list)
    featurizer: Any = None  # the BertFeaturizer, once a Chinese batch needed it

    def report(self, name: str) -> None:
        self.progress("1a", self.skipped + self.processed + len(self.problems), self.total, name)

    def add(self, item: Item, row: TextRow) -> None:
        """A phonemised line: finished now or, Chinese, once its batch has BERT features."""
        if item.language != "zh":
            self.finish(item, row)
            return
        self.pending_bert.append((item, row))
        if len(self.pending_bert) >= BERT_BATCH:
            self.flush_bert()

    def finish(self, item: Item, row: TextRow) -> None:
        key = text_key(item, self.version)
        self.out.write(f"{key}\t{row.to_line()}\n")
        self.out.flush()
        self.rows[item.name] = row
        self.ledger.record("1a", item.name, key)
        self.processed += 1
        self.report(item.name)

    def flush_bert(self) -> None:
        """BERT features of the waiting Chinese lines, saved to ``3-bert/``; then those lines are finished."""
        if not self.pending_bert:
            return
        if self.featurizer is None:
            self.featurizer = _bert(*self.bert_model)
        batch = list(self.pending_bert)
        self.pending_bert.clear()
        try:
            feats = self.featurizer.phone_features_batch([(r.norm_text, r.word2ph or ()) for _, r in batch])
        except ValueError:
            feats = [None] * len(batch)  # one bad text spoils the batch: retry one by one
        for (item, row), feat in zip(batch, feats, strict=True):
            if feat is None:
                try:
                    feat = self.featurizer.phone_features(row.norm_text, row.word2ph or ())
                except ValueError as exc:
                    self.problems.append(Problem("1a", item.line_no, item.name, f"BERT features: {exc}"))
                    continue
            if feat.shape[-1] != len(row.phones):
                message = f"BERT gave {feat.shape[-1]} vectors for {len(row.phones)} phones"
                self.problems.append(Problem("1a", item.line_no, item.name, message))
                continue
            atomic_torch_save(feat.float().contiguous(), self.files.bert(item.name))
            self.finish(item, row)


def _phonemised(todo: Sequence[Item], version: str, workers: int) -> Iterator[tuple[Item, TextRow | str]]:
    """(item, row or error text) in list order; worker processes for long lists."""
    jobs = [(item.text, item.language, version) for item in todo]
    if workers <= 1 or len(todo) < MIN_ITEMS_PER_PROCESS * workers:
        for item, job in zip(todo, jobs, strict=True):
            yield item, _phonemise_job(job)
        return
    context = multiprocessing.get_context("spawn")  # no fork of a process that holds torch threads
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        yield from zip(todo, pool.map(_phonemise_job, jobs, chunksize=8), strict=True)


def _bert(bert_dir: Path, device: torch.device, dtype: torch.dtype):
    from app.models.encoders.bert import BertFeaturizer, BertOptions

    return BertFeaturizer(BertOptions(bert_dir, device=str(device), dtype=dtype, batch_size=BERT_BATCH))


# ------------------------------------------------------------------------------------------- 1b
def mix_for_training(wav_32k: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(16 kHz HuBERT input, int16 32 kHz clip) of upstream's step 1b.

    Both are ``x / peak * (0.95 * 0.5 * S) + 0.5 * S * x``, with S = 1145.14 for HuBERT and
    32768 for the stored clip. Upstream casts the stored clip to int16 without clipping, which
    wraps around for clips peaking above about 1.05; here it is clipped instead.

    Raises:
        ValueError: silent clip or peak above 2.2 (upstream leaves such clips out).
    """
    hubert_input = training_input(wav_32k)
    peak = float(np.abs(wav_32k).max())
    scaled = (
        wav_32k / peak * (TRAIN_PEAK * TRAIN_ALPHA * INT16_FULL_SCALE)
        + ((1 - TRAIN_ALPHA) * INT16_FULL_SCALE) * wav_32k
    )
    # astype truncates toward zero, as upstream's cast does.
    return hubert_input, np.clip(scaled, -INT16_FULL_SCALE, INT16_FULL_SCALE - 1).astype(np.int16)


def _prepare(item: Item) -> tuple[np.ndarray, np.ndarray] | str:
    try:
        return mix_for_training(load_audio(item.audio, SAMPLE_RATE))
    except (AudioError, ValueError) as exc:
        return str(exc)


def step_hubert(
    items: Sequence[Item],
    files: ExperimentFiles,
    *,
    hubert_dir: Path,
    device: torch.device,
    dtype: torch.dtype,
    workers: int = 1,
    progress: Progress = _noop_progress,
    should_stop: ShouldStop = _never,
) -> StepReport:
    """Step 1b. See the module docstring."""
    from app.models.encoders.hubert import load_hubert

    ledger = Ledger(files.root)

    def is_done(item: Item) -> bool:
        return (
            files.hubert(item.name).is_file()
            and files.wav32k(item.name).is_file()
            and ledger.matches("1b", item.name, file_key(item.audio))
        )

    todo = [item for item in items if not is_done(item)]
    skipped = len(items) - len(todo)
    problems: list[Problem] = []
    processed = 0
    stopped = False
    progress("1b", skipped, len(items), "")
    if not todo:
        return StepReport("1b", len(items), 0, skipped)
    if not (hubert_dir / "config.json").is_file():
        raise base_model_missing("chinese-hubert-base", hubert_dir)
    encoder = load_hubert(str(hubert_dir), str(device), dtype)
    files.hubert_dir.mkdir(parents=True, exist_ok=True)
    files.wav32k_dir.mkdir(parents=True, exist_ok=True)
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for n, (item, prepared) in enumerate(_prefetched(pool, todo, _prepare, workers), start=1):
            if isinstance(prepared, str):
                problems.append(Problem("1b", item.line_no, item.name, prepared))
            else:
                wav16, clip = prepared
                features = encoder.features(wav16).float().cpu()
                if torch.isnan(features).any() and dtype != torch.float32:
                    # fp16 can overflow on loud clips; upstream redoes those in fp32.
                    features = load_hubert(str(hubert_dir), str(device), torch.float32).features(wav16).cpu()
                if torch.isnan(features).any():
                    problems.append(Problem("1b", item.line_no, item.name, "HuBERT features contain NaN"))
                else:
                    _write_wav(files.wav32k(item.name), clip)
                    atomic_torch_save(features.contiguous(), files.hubert(item.name))
                    ledger.record("1b", item.name, file_key(item.audio))
                    processed += 1
            progress("1b", skipped + processed + len(problems), len(items), item.name)
            if n % LEDGER_FLUSH_EVERY == 0:
                ledger.save()
            if should_stop():
                stopped = True
                break
    ledger.save()
    return StepReport("1b", len(items), processed, skipped, tuple(problems), stopped)


def _prefetched(
    pool: ThreadPoolExecutor, todo: Sequence[Item], fn: Callable, workers: int
) -> Iterator[tuple]:
    """(item, fn(item)) in order, with at most a few items decoded ahead."""
    ahead = max(1, workers) * PENDING_PER_WORKER
    queue: list[tuple[Item, Future]] = []
    position = 0
    while position < len(todo) or queue:
        while position < len(todo) and len(queue) < ahead:
            queue.append((todo[position], pool.submit(fn, todo[position])))
            position += 1
        item, future = queue.pop(0)
        yield item, future.result()
    for _, future in queue:
        future.cancel()


def _write_wav(path: Path, clip: np.ndarray) -> None:
    import soundfile as sf

    # 0o666 under the umask: the mode soundfile gives a file it creates.
    with atomic_path(path, suffix=".tmp", permissions=0o666) as tmp:
        # WAV whatever the clip's own extension, as upstream's scipy wavfile.write does.
        sf.write(tmp, clip, SAMPLE_RATE, format="WAV", subtype="PCM_16")


# ------------------------------------------------------------------------------------- 2-get-sv
def read_wav32k(path: Path) -> torch.Tensor:
    """A ``5-wav32k/`` clip as upstream's ``torchaudio.load`` gives it: ``(N,)`` float32 = int16 / 32768.

    Raises:
        ValueError: unreadable file or a rate other than 32 kHz (the message names the file).
    """
    import soundfile as sf

    try:
        data, rate = sf.read(str(path), dtype="int16", always_2d=True)
    except (OSError, RuntimeError) as exc:  # soundfile's LibsndfileError is a RuntimeError
        raise ValueError(f"cannot read {path}: {exc}") from None
    if rate != SAMPLE_RATE:
        raise ValueError(f"{path} is {rate} Hz, expected {SAMPLE_RATE} (rerun 1b)")
    return torch.from_numpy(data[:, 0].astype(np.float32) / INT16_FULL_SCALE)


def step_sv(
    items: Sequence[Item],
    files: ExperimentFiles,
    *,
    sv_path: Path,
    device: torch.device,
    dtype: torch.dtype,
    progress: Progress = _noop_progress,
    should_stop: ShouldStop = _never,
) -> StepReport:
    """Step 2-get-sv. See the module docstring.

    An item is done when its ``7-sv_cn/`` file exists and was made from the current ``5-wav32k/``
    clip and speaker model (or was made by upstream, which the ledger does not know).
    """
    from app.models.encoders.sv import SV_ASSET, SpeakerEncoder

    ledger = Ledger(files.root)
    model_key = f"{sv_path.name}:{sv_path.stat().st_size}" if sv_path.is_file() else ""

    def key_of(item: Item) -> str:
        return f"{file_key(files.wav32k(item.name))}|{model_key}"

    problems: list[Problem] = []
    todo: list[Item] = []
    for item in items:
        if not files.wav32k(item.name).is_file():
            problems.append(
                Problem(SV_STEP, item.line_no, item.name, f"no {item.name} in 5-wav32k/ (run 1b)")
            )
        elif not (files.sv(item.name).is_file() and ledger.matches(SV_STEP, item.name, key_of(item))):
            todo.append(item)
    skipped = len(items) - len(todo) - len(problems)
    processed = 0
    stopped = False
    progress(SV_STEP, skipped + len(problems), len(items), "")
    if not todo:
        return StepReport(SV_STEP, len(items), 0, skipped, tuple(problems))
    if not sv_path.is_file():
        raise base_model_missing(SV_ASSET, sv_path)
    encoder = SpeakerEncoder(sv_path, device=device, dtype=dtype)
    fp32_encoder = None
    files.sv_dir.mkdir(parents=True, exist_ok=True)
    for n, item in enumerate(todo, start=1):
        key = key_of(item)
        try:
            wav = read_wav32k(files.wav32k(item.name))
        except ValueError as exc:
            problems.append(Problem(SV_STEP, item.line_no, item.name, str(exc)))
            wav = None
        if wav is not None:
            embedding = encoder.embed_32k(wav[None])  # (1, dim) float32 on the CPU
            if not torch.isfinite(embedding).all() and dtype != torch.float32:
                # fp16 can overflow on loud clips; redo those in fp32, as 1b does for HuBERT.
                if fp32_encoder is None:
                    fp32_encoder = SpeakerEncoder(sv_path, device=device, dtype=torch.float32)
                embedding = fp32_encoder.embed_32k(wav[None])
            if not torch.isfinite(embedding).all():
                problems.append(
                    Problem(SV_STEP, item.line_no, item.name, "speaker embedding contains NaN/inf")
                )
            else:
                atomic_torch_save(embedding.clone(), files.sv(item.name))  # clone: a plain tensor
                ledger.record(SV_STEP, item.name, key)
                processed += 1
        progress(SV_STEP, skipped + processed + len(problems), len(items), item.name)
        if n % LEDGER_FLUSH_EVERY == 0:
            ledger.save()
        if should_stop():
            stopped = True
            break
    ledger.save()
    return StepReport(SV_STEP, len(items), processed, skipped, tuple(problems), stopped)


# ------------------------------------------------------------------------------------------- 1c
def _parse_semantic_payload(line: str) -> tuple[str, object] | None:
    name, sep, codes = line.partition("\t")
    if not sep:
        return None
    try:
        return name, tuple(int(c) for c in codes.split(" ")) if codes else ()
    except ValueError:
        return None


def step_semantic(
    items: Sequence[Item],
    files: ExperimentFiles,
    *,
    version: str,
    pretrained_s2g: Path,
    device: torch.device,
    dtype: torch.dtype,
    progress: Progress = _noop_progress,
    should_stop: ShouldStop = _never,
) -> StepReport:
    """Step 1c. See the module docstring."""
    from app.models.sovits.config import CFM_VERSIONS
    from app.models.upstream.sovits import load_cfm_sovits, load_sovits

    ledger = Ledger(files.root)
    partial = files.root / PARTIAL_SEMANTIC
    codes: dict[str, tuple[int, ...]] = {}
    if files.semantic.is_file():
        codes.update(read_semantic(files.semantic))
    for name, (key, row) in _read_partial(partial, _parse_semantic_payload).items():
        codes[name] = row  # type: ignore[assignment]
        ledger.record("1c", name, key)
    model_key = f"{pretrained_s2g.name}:{pretrained_s2g.stat().st_size}" if pretrained_s2g.is_file() else ""

    def key_of(item: Item) -> str:
        return f"{file_key(files.hubert(item.name))}|{model_key}"

    problems: list[Problem] = []
    todo: list[Item] = []
    for item in items:
        if not files.hubert(item.name).is_file():
            problems.append(
                Problem(
                    "1c",
                    item.line_no,
                    item.name,
                    f"no {files.hubert(item.name).name} in 4-cnhubert/ (run 1b)",
                )
            )
        elif item.name not in codes or not ledger.matches("1c", item.name, key_of(item)):
            todo.append(item)
    skipped = len(items) - len(todo) - len(problems)
    processed = 0
    stopped = False
    progress("1c", skipped + len(problems), len(items), "")
    if todo:
        if not pretrained_s2g.is_file():
            raise base_model_missing(S2G_ASSETS.get(version, "gpt-sovits-v2"), pretrained_s2g)
        load = load_cfm_sovits if version in CFM_VERSIONS else load_sovits
        model, _ = load(pretrained_s2g, device=device, dtype=dtype, expect_version=version)
        with partial.open("a", encoding="utf-8") as out:
            for item in todo:
                ssl = torch.load(files.hubert(item.name), map_location="cpu", weights_only=True)
                tokens = model.extract_codes(ssl.to(device=device, dtype=dtype))[0, 0].tolist()  # (T/2,)
                key = key_of(item)
                out.write(f"{key}\t{semantic_line(item.name, tokens)}\n")
                out.flush()
                codes[item.name] = tuple(tokens)
                ledger.record("1c", item.name, key)
                processed += 1
                progress("1c", skipped + processed + len(problems), len(items), item.name)
                if should_stop():
                    stopped = True
                    break
    ledger.save()
    if not stopped:
        failed = {p.name for p in problems}
        write_semantic(
            files.semantic,
            [(i.name, codes[i.name]) for i in items if i.name in codes and i.name not in failed],
        )
        partial.unlink(missing_ok=True)
    return StepReport("1c", len(items), processed, skipped, tuple(problems), stopped)
