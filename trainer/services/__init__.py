"""Runs' writes, one module per topic; import from the module (trainer.services.runs, trainer.services.execute)."""
