"""HTTP API: api_v2-compatible /tts, OpenAI-compatible /v1/audio/speech, voice presets.

    python -m app.api [--host 127.0.0.1] [--port 9880] [--api-key KEY] [--no-ui]

- :mod:`app.api.app`: ``create_app(settings)`` (routes, errors, upload cap).
- :mod:`app.api.server`: the CLI; the web UI at ``/ui`` on the same server when the entry point
  (``__main__``) hands it the UI's mount; the API itself never imports ``app.ui``.
- :mod:`app.api.engine`: shared state and requests to the synthesis service (the one door to the
  device, shared with the UI); :mod:`app.api.encoding`: formats.

Nothing is imported here, so the CLI can refuse a bad launch before torch and gradio load.
"""
