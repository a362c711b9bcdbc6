"""Combining trained models: per-fold predictions, weights tuned on OOF, re-scoring, the out-of-sample score."""
