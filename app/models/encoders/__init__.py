"""Pretrained encoders loaded with transformers from local files: HuBERT content features, BERT phone features."""
