"""Trainers, each run as ``python -m app.train.<name> --config run.yaml`` (a job; never imported by services)."""
