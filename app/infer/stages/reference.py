"""Stage 2, reference clip -> what the models take from it, cached per clip (sha256 of its bytes).

The clip is checked and trimmed (:mod:`app.infer.reference`); the GPT prompt is the semantic
tokens of the 16 kHz clip + 0.3 s of silence through HuBERT and the SoVITS quantizer; the timbre
inputs are the spectrogram of the 32 kHz clip (and, for v2Pro*, a speaker embedding of the same
wave); v3/v4 also take its mel (the audio stage computes it).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import numpy as np
import torch

import app.infer.reference as clips  # the module, not its names: tests replace decode_clip there
from app.devices import release_free_memory
from app.infer.cache import LRUCache
from app.infer.inputs import ReferenceFeatures
from app.infer.request import AudioSource
from app.infer.stages.base import TimbreInputs
from app.models.encoders.hubert import HubertEncoder
from app.models.encoders.sv import SpeakerEncoder
from app.models.sovits.cfm_model import CfmSoVITS
from app.models.sovits.model import SoVITS
from app.models.sovits.reference import normalize_reference, reference_spectrogram


class ReferenceStage:
    """Features of reference clips for one SoVITS model.

    Args:
        sovits: the model whose quantizer turns HuBERT features into prompt tokens.
        device: where the timbre inputs are computed.
        hubert: the content encoder, loaded on its first call (reference-free requests never call it).
        speaker: v2Pro*: the speaker-verification encoder; None for the others.
        mel: the audio stage's reference mel (None for families that do not continue the clip).
    """

    def __init__(
        self,
        sovits: SoVITS | CfmSoVITS,
        device: torch.device,
        hubert: Callable[[], HubertEncoder],
        speaker: SpeakerEncoder | None,
        mel: Callable[[np.ndarray], torch.Tensor | None],
    ) -> None:
        self.sovits = sovits
        self.device = device
        self._hubert = hubert
        self.speaker = speaker
        self._mel = mel
        # sha256 -> (clip, features); a clip holds <= 10 s of audio at two rates (~2 MB).
        self._clips: LRUCache[str, tuple[clips.ReferenceClip, ReferenceFeatures]] = LRUCache(8)
        # sha256 -> (spectrogram, speaker embedding or None) of extra reference clips.
        self._extras: LRUCache[str, tuple[TimbreInputs, tuple[str, ...]]] = LRUCache(32)

    def prompt_tokens(self, wav16: np.ndarray) -> torch.Tensor:
        """(T,) semantic tokens of a 16 kHz clip, 0.3 s of silence appended as upstream does."""
        ssl = self._hubert().prompt_features(torch.from_numpy(np.ascontiguousarray(wav16)))
        codes = self.sovits.extract_codes(ssl.float())[0, 0]
        release_free_memory()  # HuBERT's activations (~150 MB for 10 s) are done with
        return codes

    def _levelled(self, wav32: np.ndarray) -> torch.Tensor:
        """(1, T) the 32 kHz clip after upstream's level rule, on the device."""
        return normalize_reference(torch.from_numpy(np.ascontiguousarray(wav32)).to(self.device)[None])

    def spectrogram(self, wav32: np.ndarray) -> torch.Tensor:
        """(1, 1025, F) timbre spectrogram of a 32 kHz clip, without the speaker embedding."""
        return reference_spectrogram(self._levelled(wav32))

    def timbre_inputs(self, wav32: np.ndarray) -> TimbreInputs:
        """A 32 kHz clip's spectrogram (1, 1025, F) and, for v2Pro*, its (1, sv_dim) speaker
        embedding: upstream's level rule, then the spectrogram of that wave and the embedding
        of the same wave resampled to 16 kHz (torchaudio's resampler, as upstream)."""
        wav = self._levelled(wav32)
        spec = reference_spectrogram(wav)
        if self.speaker is None:
            return spec, None
        embedding = self.speaker.embed_32k(wav).to(self.device)
        release_free_memory()  # the speaker model's activations (~100 MB for 10 s)
        return spec, embedding

    def encode(self, wav16: np.ndarray | None, wav32: np.ndarray) -> ReferenceFeatures:
        """Features of an already loaded clip; ``wav16`` None skips the prompt tokens."""
        tokens = None if wav16 is None else self.prompt_tokens(wav16)
        spec, embedding = self.timbre_inputs(wav32)
        return ReferenceFeatures(tokens, spec, embedding, self._mel(wav32))

    def features(
        self, source: AudioSource, need_tokens: bool = True
    ) -> tuple[clips.ReferenceClip, ReferenceFeatures, bool]:
        """The checked (maybe trimmed) clip and its features; returns (clip, features, from cache).

        A clip seen before is neither decoded nor encoded again. ``need_tokens`` False skips HuBERT
        (reference-free mode); they are added later if a request needs them.
        """
        data, name = clips.read_source(source)
        digest = clips.sha256_of(data)
        cached = self._clips.get(digest)
        if cached is not None and (cached[1].prompt_tokens is not None or not need_tokens):
            return cached[0], cached[1], True
        if cached is not None:  # computed for a reference-free request; add the tokens now
            clip = cached[0]
            features = replace(cached[1], prompt_tokens=self.prompt_tokens(clip.wav16))
        else:
            clip = clips.decode_clip(data, name)
            features = self.encode(clip.wav16 if need_tokens else None, clip.wav32)
        self._clips.put(digest, (clip, features))
        return clip, features, False

    def extra(self, source: AudioSource, notes: list[str] | None = None) -> TimbreInputs:
        """(spectrogram, speaker embedding or None) of an extra reference clip, cached per clip.

        Levels are checked as the reference's (no speech: refused; DC offset: removed); what was
        found is added to ``notes``.
        """
        data, name = clips.read_source(source, "extra reference clip")
        digest = clips.sha256_of(data)
        found = self._extras.get(digest)
        if found is None:
            wav = clips._load(data, name, clips.SAMPLE_RATE, "extra_references")
            offset, warnings = clips.check_levels(wav, name, clips.AN_EXTRA_REFERENCE, "extra_references")
            found = (self.timbre_inputs(clips.without_offset(wav) if offset else wav), warnings)
            self._extras.put(digest, found)
        if notes is not None:
            notes.extend(found[1])
        return found[0]

    def clear(self) -> None:
        """Forget cached clips and their features."""
        self._clips.clear()
        self._extras.clear()
