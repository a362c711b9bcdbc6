"""Optional experiment tracking with Weights & Biases: one wandb run per backbone of an experiment.

On when the config says `wandb: true` or the environment has WANDB_API_KEY; never required. Mode:
WANDB_MODE when set, else online with a key and offline without one (`wandb sync` uploads later).
A failing wandb (no network, bad key) is a warning, never a failed training run. Only rank 0 logs.
The API key is read by wandb from the environment; nothing here writes it anywhere.
The per-epoch CSV (runs/<exp>/<backbone>/fold_<k>/metrics.csv) is written whether or not this is on.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)


def wanted(enabled_in_config: bool) -> bool:
    return enabled_in_config or bool(os.environ.get("WANDB_API_KEY"))


class Tracker:
    def __init__(self, enabled: bool, project: str, group: str, name: str, config: dict, directory: Path):
        self.run = None
        if not enabled:
            return
        mode = os.environ.get("WANDB_MODE") or ("online" if os.environ.get("WANDB_API_KEY") else "offline")
        try:
            import wandb

            directory.mkdir(parents=True, exist_ok=True)
            self.run = wandb.init(project=project, group=group, name=name, config=config, dir=str(directory),
                                  mode=mode, reinit="create_new", settings=wandb.Settings(init_timeout=60))
        except Exception as err:  # tracking is a convenience: training goes on without it
            log.warning("wandb disabled for this run (%s: %s)", err.__class__.__name__, str(err)[:200])
            self.run = None

    def log(self, values: dict, prefix: str = "") -> None:
        if self.run is not None:
            self.run.log({f"{prefix}{key}": value for key, value in values.items()})

    def summarize(self, values: dict) -> None:
        if self.run is not None:
            self.run.summary.update(values)

    def finish(self) -> None:
        if self.run is not None:
            self.run.finish()
            self.run = None
