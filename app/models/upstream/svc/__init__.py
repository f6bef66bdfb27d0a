"""so-vits-svc 4.1 files: ``checkpoint`` (``G_*.pth``/``D_*.pth`` + ``config.json``) and ``features``
(the feature files beside each training clip, the cluster model)."""
