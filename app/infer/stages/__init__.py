"""The four stages of one TTS synthesis, each a small unit with one job:

1. :mod:`~app.infer.stages.text`: prompt and target text -> phones and BERT features (:class:`TextStage`).
2. :mod:`~app.infer.stages.reference`: reference clip -> GPT prompt tokens and timbre inputs, cached
   per clip (:class:`ReferenceStage`).
3. :mod:`~app.infer.stages.tokens`: phones + BERT + prompt tokens -> semantic tokens (the GPT).
4. :mod:`~app.infer.stages.audio`: semantic tokens -> audio, one implementation per model family
   (:class:`VitsAudio` for v1-v2ProPlus, :class:`CfmAudio` for v3/v4), chosen by the SoVITS version.

:mod:`~app.infer.stages.base` holds the interfaces the decoding loop (:mod:`app.infer.runner`) and
the planner (:mod:`app.infer.planning`) depend on; neither knows the pipeline that composes them.
"""
