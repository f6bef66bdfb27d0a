"""Gradio web UI: ``build_app(settings)`` assembles the tabs listed in :mod:`app.ui.tabs.registry`."""
