"""so-vits-svc 4.1 training: ``trainer`` (the run) and ``data`` (feature files -> batches).

``python -m app.train.svc --config logs/44k/run.yaml`` (the module name the jobs service starts,
:data:`app.runconfig.SVC_MODULE`) runs :func:`app.train.svc.trainer.main`.
"""
