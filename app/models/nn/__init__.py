"""Shared layers of the VITS family (GPT-SoVITS s2 and so-vits-svc): small modules, config-free.

Modules, one concern each:

- ``masks``: sequence masks, padding arithmetic, the WaveNet gate, random segment slicing.
- ``norm``: LayerNorm over channels; weight-normalised convolutions stored as ``weight_g`` /
  ``weight_v`` (the key names of upstream files) with optional folding for inference.
- ``attention``: relative-position multi-head attention, FFN, the post-norm encoder and the causal
  transformer (so-vits-svc ``FFT``).
- ``wavenet``: the gated, dilated WaveNet stack (``WN``) with speaker conditioning.
- ``flow``: mean-only residual coupling layers, ``Flip``, the coupling block.
- ``hifigan``: ``ResBlock1``/``ResBlock2`` and the HiFi-GAN generator.
- ``discriminators``: ``DiscriminatorS``, ``DiscriminatorP``, ``MultiPeriodDiscriminator``.
- ``losses``: LSGAN discriminator/generator losses, feature matching, KL.
- ``spectrogram``: linear and mel spectrograms with the VITS conventions.
- ``rotary``: rotary position embedding with x-transformers' conventions (partial, interleaved pairs).
- ``dit``: F5-TTS DiT blocks (timestep embedding, ConvNeXt-V2, adaLN-Zero, rotary attention) of the
  v3/v4 flow-matching estimator; layout ``(B, N, D)`` there.
- ``lora``: low-rank adapters on ``nn.Linear`` layers as peft builds them (v3/v4 fine-tuning).

Layouts are ``(B, C, T)`` unless a docstring says otherwise. Parameter names equal upstream's so
state dicts load without renaming.
"""
