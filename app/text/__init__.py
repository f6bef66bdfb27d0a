"""Text frontend: normalisation, grapheme-to-phoneme and symbol tables compatible with GPT-SoVITS."""
