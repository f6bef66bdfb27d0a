"""Dataset preprocessing workflows: slicing, separation, transcription, feature extraction."""
