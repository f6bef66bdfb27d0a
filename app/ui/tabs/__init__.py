"""The web UI's tabs, one module (or package) each; :mod:`app.ui.tabs.registry` lists them in order."""
