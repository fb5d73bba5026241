"""The end-to-end fixtures of tests/trainer/test_e2e_training.py (a snapshot made through the API, a project
whose runs may be long) for the multi-process runs' worker tests."""

from tests.trainer.test_e2e_training import long_runs, snapshot  # noqa: F401
