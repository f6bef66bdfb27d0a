"""so-vits-svc class singing voice conversion synthesizer (4.1 and innnky 32k layouts).

``SvcConfig`` (config.json), ``SynthesizerConfig`` + ``SvcSynthesizer`` (the network), the NSF
decoder, noise sources. Reading and writing upstream ``G_*.pth`` files is in
:mod:`app.models.upstream.svc.checkpoint`.
"""
