"""so-vits-svc 4.1 dataset preparation: ``dataset`` (the raw tree, clips, filelists, config),
``features`` (content, f0, spectrogram, volume per clip; ``python -m app.data.preprocess.svc.features``)
and ``cluster`` (per-speaker k-means centres; ``python -m app.data.preprocess.svc.cluster``)."""
