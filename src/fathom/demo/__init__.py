"""A synthetic, learnable, fine-grained stand-in for the competition data (no download needed)."""
