"""SoVITS Studio: few-shot voice cloning TTS and singing voice conversion, local first.

Layers (imports point downward only; ``tests/test_architecture.py`` enforces it)::

    app.ui, app.api                      interfaces (the only importers of gradio / fastapi)
    app.services                         owned state: pipeline cache, jobs, experiments, weights
    app.infer, app.data.preprocess, app.train   workflows
    app.models, app.text, app.audio, app.data.filelist, app.data.labeling   domain
    app.paths, app.settings, app.devices, app.assets, app.config_io        foundation

Nothing runs at import time: no device probing, no model loading, no server start.
"""

__version__ = "0.1.0"
