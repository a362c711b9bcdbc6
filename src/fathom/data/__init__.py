"""Reading the Kaggle data layout into tables."""
