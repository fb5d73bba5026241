"""Rewards' writes and computations, one module per feature; import from the module (rewards.services.snapshots)."""
