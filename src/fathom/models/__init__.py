"""Models of the pipeline."""
