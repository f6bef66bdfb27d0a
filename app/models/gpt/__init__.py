"""Text-to-semantic GPT of GPT-SoVITS: config, model (training forward, prefill/step), sampling loop."""

from app.models.gpt.cache import KVCache
from app.models.gpt.config import GPTConfig, GPTConfigError
from app.models.gpt.model import GPT, TeacherForcedOutput
from app.models.gpt.sampling import DecodeResult, SamplingOptions, TokenChunk, decode, generate

__all__ = [
    "GPT",
    "DecodeResult",
    "GPTConfig",
    "GPTConfigError",
    "KVCache",
    "SamplingOptions",
    "TeacherForcedOutput",
    "TokenChunk",
    "decode",
    "generate",
]
