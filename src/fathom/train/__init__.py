"""The training engine: data, loss, precision, loop, checkpoints, and the fold x backbone orchestrator."""
