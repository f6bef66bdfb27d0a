"""Preprocessing workflows: separation, slicing, transcription, feature extraction."""
