"""Text-to-semantic GPT of GPT-SoVITS: config, layers, model (the network and its training pass),
engine (precision, kernels, prefill/step and the decoding loop), sampling (how a step picks tokens)."""

from app.models.gpt.cache import KVCache
from app.models.gpt.config import GPTConfig, GPTConfigError
from app.models.gpt.engine import DecodingEngine, decode, generate
from app.models.gpt.model import GPT, TeacherForcedOutput
from app.models.gpt.sampling import MAX_NEW_TOKENS, DecodeResult, SamplingOptions, TokenChunk

__all__ = [
    "GPT",
    "MAX_NEW_TOKENS",
    "DecodeResult",
    "DecodingEngine",
    "GPTConfig",
    "GPTConfigError",
    "KVCache",
    "SamplingOptions",
    "TeacherForcedOutput",
    "TokenChunk",
    "decode",
    "generate",
]
