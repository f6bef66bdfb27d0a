"""Singing voice conversion: a song (or speech) in, the same melody in a trained voice out.

- :mod:`app.infer.svc.request`: SvcRequest, SvcResult, errors, the result's file name;
- :mod:`app.infer.svc.pipeline`: SVCPipeline (loads what a request needs, converts);
- :mod:`app.infer.svc.cli`: ``python -m app.infer.svc``.
"""
