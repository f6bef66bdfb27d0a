"""Audio I/O and signal processing: one loader, one writer, resampling, spectrograms, slicing, pitch."""

from app.audio.io import AUDIO_EXTENSIONS, AudioError, AudioInfo, audio_info, load_audio, resample, save_audio

__all__ = [
    "AUDIO_EXTENSIONS",
    "AudioError",
    "AudioInfo",
    "audio_info",
    "load_audio",
    "resample",
    "save_audio",
]
