"""Neural models and the files they are stored in."""
