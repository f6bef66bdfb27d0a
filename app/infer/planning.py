"""Stages 1 and 2 of one request: from a :class:`TTSRequest` to the :class:`SynthesisPlan` the
decoding loop runs, with how the reference was used, notes for the user and timings.

In order: the audio stage refuses what its model family cannot do; the target text is read; the
reference clip is decoded (without HuBERT first: whether the prompt text is used depends on how
the clip is trimmed) and the prompt text cut to the kept phrases; the prompt text is read; the
audio stage builds its voice (timbre, or the v3/v4 prompt) from the reference and extra clips.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from app.infer.batching import plan_batches
from app.infer.inputs import ReferenceFeatures, SynthesisPlan, TextInput
from app.infer.reference import ReferenceClip, matching_prompt
from app.infer.request import ReferenceInfo, Timings, TTSInputError, TTSRequest
from app.infer.seeds import random_seed
from app.infer.stages.base import AudioStage
from app.infer.stages.reference import ReferenceStage
from app.infer.stages.text import TextStage
from app.infer.stages.tokens import sampling_options
from app.messages import Message


@dataclass(frozen=True)
class _Reference:
    """The reference as a request uses it: the clip, its features, and the prompt text kept."""

    clip: ReferenceClip
    features: ReferenceFeatures
    cached: bool
    # The prompt text that matches the kept part of the clip; "" in reference-free mode.
    prompt_text: str


class Planner:
    """Builds plans from the text, reference and audio stages of one pipeline."""

    def __init__(self, text: TextStage, references: ReferenceStage, audio: AudioStage) -> None:
        self.text = text
        self.references = references
        self.audio = audio

    def plan(
        self, request: TTSRequest, max_new_tokens: int
    ) -> tuple[SynthesisPlan, ReferenceInfo, tuple[str, ...], Timings]:
        """The plan of ``request``, how the reference was used, notes, timings (text, reference).

        A :class:`TTSInputError` raised on the way carries the notes made before it.
        """
        notes: list[str] = []
        try:
            return self._plan(request, max_new_tokens, notes)
        except TTSInputError as exc:
            exc.notes = (*notes, *exc.notes)
            raise

    def _plan(
        self, request: TTSRequest, max_new_tokens: int, notes: list[str]
    ) -> tuple[SynthesisPlan, ReferenceInfo, tuple[str, ...], Timings]:
        start = time.perf_counter()
        sample_steps = self.audio.sample_steps(request.sample_steps)
        self.audio.check(request)
        segments = self.text.segments(request.text, request.text_language, request.split_method, notes)
        t_text = time.perf_counter() - start

        t0 = time.perf_counter()
        reference = self._reference(request, notes)
        extras = [self.references.extra(s, notes) for s in request.extra_references]
        t_ref = time.perf_counter() - t0

        t0 = time.perf_counter()
        prompt_text = reference.prompt_text
        prompt = self.text.prompt(prompt_text, request.prompt_language) if prompt_text else None
        t_text += time.perf_counter() - t0

        t0 = time.perf_counter()
        voice = self.audio.voice(reference.features, extras, prompt)
        t_ref += time.perf_counter() - t0
        plan = SynthesisPlan(
            segments=tuple(segments),
            prompt=prompt,
            prompt_tokens=reference.features.prompt_tokens if prompt is not None else None,
            timbre=voice,
            sampling=sampling_options(request, max_new_tokens),
            seed=random_seed() if request.seed is None else int(request.seed),
            speed=float(request.speed),
            pause_seconds=float(request.pause_seconds),
            batch_size=int(request.batch_size),
            sample_steps=sample_steps,
            batches=plan_batches(
                [len(s.text) for s in segments],
                int(request.batch_size),
                request.split_bucket,
                float(request.batch_threshold),
            ),
            word_timestamps=bool(request.word_timestamps),
        )
        return plan, _info(reference, prompt), tuple(notes), Timings(text=t_text, reference=t_ref)

    def _reference(self, request: TTSRequest, notes: list[str]) -> _Reference:
        """The reference clip and the prompt text that fits its kept part; notes what was cut."""
        # Decode first without HuBERT: whether the prompt is used depends on the trimming.
        clip, features, cached = self.references.features(request.reference, need_tokens=False)
        notes.extend(clip.warnings)
        prompt_text = request.prompt_text.strip("\n") if request.uses_prompt else ""
        if clip.trimmed:
            notes.append(
                Message(
                    "ref.note.trimmed",
                    "The reference clip is {seconds:.1f} s long; its best span between pauses, "
                    "{start:.1f}-{end:.1f} s, was used.",
                    seconds=clip.original_seconds,
                    start=clip.start_seconds,
                    end=clip.end_seconds,
                )
            )
            if prompt_text:
                prompt_text = _kept_prompt(prompt_text, clip, notes)
        if prompt_text and features.prompt_tokens is None:
            clip, features, cached = self.references.features(request.reference, need_tokens=True)
        return _Reference(clip, features, cached, prompt_text)


def _kept_prompt(prompt_text: str, clip: ReferenceClip, notes: list[str]) -> str:
    """The phrases of ``prompt_text`` the trimmed clip still holds ("" when none match)."""
    matched = matching_prompt(prompt_text, clip)
    if matched is None:
        notes.append(
            Message(
                "ref.note.prompt_unmatched",
                "The prompt text could not be matched to the kept part of the clip, so reference-free "
                "mode was used; give a 3-10 s clip with its exact text for the best result.",
            )
        )
        return ""
    if matched != prompt_text:
        notes.append(
            Message(
                "ref.note.prompt_cut", "The prompt text was cut to the kept phrases: {kept!r}.", kept=matched
            )
        )
    return matched


def _info(reference: _Reference, prompt: TextInput | None) -> ReferenceInfo:
    clip = reference.clip
    return ReferenceInfo(
        original_seconds=clip.original_seconds,
        start_seconds=clip.start_seconds,
        end_seconds=clip.end_seconds,
        trimmed=clip.trimmed,
        prompt_text=prompt.text if prompt is not None else "",
        reference_free=prompt is None,
        cached=reference.cached,
        sha256=clip.sha256,
    )
