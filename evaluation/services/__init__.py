"""Writes of the evaluation app: sets (eval_sets), the held-out check (held_out), generation runs (generations)."""
