"""Voice-clone inference: one TTS pipeline behind the TTS tab, the CLI and the HTTP API.

    from app.infer import PipelineSpec, TTSPipeline, TTSRequest

    pipeline = TTSPipeline.load(PipelineSpec(gpt_path, sovits_path, hubert_dir, bert_dir))
    result = pipeline.synthesize(TTSRequest(text="...", reference="ref.wav", prompt_text="..."))
    for chunk in pipeline.stream(request): ...

- :mod:`app.infer.request`: PipelineSpec, TTSRequest, TTSResult, AudioChunk, errors.
- :mod:`app.infer.pipeline`: TTSPipeline, the composition of the stages (load, caches, lock, plan, run).
- :mod:`app.infer.stages`: text, reference, tokens and audio stages (the audio stage per model family);
  :mod:`app.infer.planning`: stages 1-2 of a request; :mod:`app.infer.runner`: the decoding loop of
  stages 3-4; :mod:`app.infer.loading`: the models of a spec.
- :mod:`app.infer.reference`: reference loading and trimming; :mod:`app.infer.streaming`: chunked decoding.
- :mod:`app.infer.history`: output/tts history files; :mod:`app.infer.tts`: the CLI.
"""

from app.infer.pipeline import TTSPipeline
from app.infer.request import (
    PRECISIONS,
    AudioChunk,
    ModelLoadError,
    PipelineSpec,
    ReferenceAudioError,
    ReferenceInfo,
    Timings,
    TTSError,
    TTSInputError,
    TTSRequest,
    TTSResult,
)
from app.infer.streaming import StreamOptions

__all__ = [
    "PRECISIONS",
    "AudioChunk",
    "ModelLoadError",
    "PipelineSpec",
    "ReferenceAudioError",
    "ReferenceInfo",
    "StreamOptions",
    "TTSError",
    "TTSInputError",
    "TTSPipeline",
    "TTSRequest",
    "TTSResult",
    "Timings",
]
