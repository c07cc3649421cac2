"""One module per overlay kind: files, workshop, script (each with its builder)."""
