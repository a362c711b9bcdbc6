"""The training engine: loss, precision, loop, checkpoints, one fold's steps and the fold x backbone orchestrator."""
