"""FathomNet 2023 out-of-sample detection: a Kaggle solution package.

Pipeline stages are modules, each reachable as a `python -m fathom <command>` subcommand.
"""

__version__ = "0.1.0"
