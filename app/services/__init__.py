"""Owned state: the loaded-pipeline cache, jobs, experiments and weight listings."""
