"""Word and character timestamps: the GPT's tokens aligned to the phones they speak.

The GPT generates semantic tokens at 25 per second while attending to the phones of its text
(:func:`app.models.gpt.attention.text_attention`). Speech moves through a text in order, so the
alignment is the monotonic path through that attention matrix with the highest summed log
weight (a Viterbi / DTW search, :func:`monotonic_bounds`): it starts at the first phone, ends at
the last, and every phone gets time. Phones then become words or characters through the text
reader's phone counts (:mod:`app.text.words`).

Token frames become seconds through the audio actually decoded: the decoder stretches the
segment's tokens uniformly by ``1 / speed`` (upstream's ``speed_factor``, VITS and flow matching
alike), so frame ``f`` of ``N`` sits at ``f / N`` of the segment's speech (its pause excluded).
That keeps times on the samples whatever the speed and however the decoder rounded lengths.

The path is only as good as the model's attention: a trained GPT attends near the phone it is
speaking; barely trained models give a monotonic path that covers the text, with arbitrary
durations.
"""

from __future__ import annotations

import numpy as np

from app.infer.request import WordTime
from app.text.words import WordUnits, is_word

# Floor of attention weights before the log (a phone no token looked at can still be passed).
EPS = 1e-6


def monotonic_bounds(weights: np.ndarray) -> np.ndarray:
    """Phone boundaries in token frames of the best monotonic alignment of ``weights``.

    Args:
        weights: ``(N, P)`` non-negative attention of ``N`` tokens over ``P`` phones.

    Returns:
        ``(P + 1,)`` float64, ``bounds[0] == 0``, ``bounds[P] == N``, strictly increasing: phone
        ``p`` lasts from frame ``bounds[p]`` to ``bounds[p + 1]``. With ``N >= P`` every phone
        gets whole frames (each frame one phone); with fewer frames than phones every frame holds
        at least one phone and the phones of a frame share it equally.
    """
    weights = np.asarray(weights, dtype=np.float64)
    if weights.ndim != 2 or 0 in weights.shape:
        raise ValueError(f"alignment needs an (N, P) matrix with N, P >= 1, got shape {weights.shape}")
    N, P = weights.shape
    rows = weights / np.maximum(weights.sum(axis=1, keepdims=True), EPS)  # each token's share per phone
    logp = np.log(np.maximum(rows, 0.0) + EPS)
    if N >= P:
        phone_of_frame = best_path(logp)  # (N,)
        first = np.searchsorted(phone_of_frame, np.arange(P))  # first frame of each phone
        return np.append(first, N).astype(np.float64)
    frame_of_phone = best_path(logp.T)  # (P,): fewer frames than phones
    bounds = np.empty(P + 1)
    counts = np.bincount(frame_of_phone, minlength=N)
    starts = np.cumsum(counts) - counts  # index of the first phone of each frame
    for p, f in enumerate(frame_of_phone):
        bounds[p] = f + (p - starts[f]) / counts[f]
    bounds[P] = N
    return bounds


def best_path(logp: np.ndarray) -> np.ndarray:
    """The monotonic state path of highest summed ``logp`` through ``(T, S)`` steps x states, ``T >= S``.

    The path starts in state 0, ends in state ``S - 1`` and moves by 0 or 1 state per step;
    returns ``(T,)`` int64 states (ties keep the state).
    """
    T, S = logp.shape
    if T < S:
        raise ValueError(f"a path of {T} steps cannot pass {S} states")
    score = np.full(S, -np.inf)
    score[0] = logp[0, 0]
    moved = np.zeros((T, S), dtype=bool)  # True: step t entered state s from s - 1
    for t in range(1, T):
        came = np.concatenate(([-np.inf], score[:-1]))
        moved[t] = came > score
        score = np.maximum(score, came) + logp[t]
    path = np.empty(T, dtype=np.int64)
    s = S - 1
    for t in range(T - 1, -1, -1):
        path[t] = s
        if moved[t, s]:
            s -= 1
    return path


def word_times(weights: np.ndarray, units: WordUnits, text: str, seconds: float) -> tuple[WordTime, ...]:
    """The words of one segment with their times.

    Args:
        weights: ``(N, P)`` attention of the segment's ``N`` tokens over its ``P`` phones.
        units: (word, phones) of the segment, summing to ``P``; () makes ``text`` one span.
        text: the segment's text.
        seconds: length of the segment's speech (its pause excluded).

    Returns:
        Words with letters or digits (punctuation takes time but is left out), seconds from the
        segment's start, within ``[0, seconds]`` and in order.
    """
    N, P = np.asarray(weights).shape
    if N == 0 or P == 0:
        return ()
    units = units or ((text.strip(), P),)
    if sum(n for _, n in units) != P:
        raise ValueError(f"the words' phone counts add up to {sum(n for _, n in units)}, not {P}")
    bounds = monotonic_bounds(weights) * (seconds / N)
    out, first = [], 0
    for unit, n in units:
        if is_word(unit):
            out.append(WordTime(unit, float(bounds[first]), float(bounds[first + n])))
        first += n
    return tuple(out)
