"""SoVITS (GPT-SoVITS stage 2): semantic tokens + phonemes + a reference voice -> 32 kHz audio.

- ``config``: :class:`SoVITSConfig` (read from upstream's HParams tree) and ``preset(version)``.
- ``model``: :class:`SoVITS` with ``extract_codes``, ``decode``/``synthesize`` and the training forward.
- ``reference``: reference loading and the reference spectrogram.
- ``encoders``, ``style``, ``quantizer``: the parts; ``losses``: generator/discriminator objectives.
- v3/v4: ``cfm_model`` (:class:`CfmSoVITS`: tokens -> log-mel for a vocoder), ``cfm`` (DiT estimator and
  Euler sampler); the reference mel is in ``reference``.
"""
