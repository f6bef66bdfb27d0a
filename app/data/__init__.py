"""Datasets: annotation lists, labelling edits and preprocessing workflows."""
