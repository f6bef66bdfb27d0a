"""Dataset building: label files, editing, and the preprocessing workflows."""
