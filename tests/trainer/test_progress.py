"""The progress protocol's stop signal carries its reason; the null progress accepts the keyword-only call."""

import pytest

from trainer.progress import RunCancelled, null_progress


def test_run_cancelled_carries_its_reason():
    with pytest.raises(RunCancelled, match="time limit") as excinfo:
        raise RunCancelled("time limit of 60 s reached")
    assert excinfo.value.reason == "time limit of 60 s reached"
    assert RunCancelled().reason == "cancelled"


def test_null_progress_takes_keyword_arguments_only():
    null_progress(step=1, total=10, metrics={"loss": 0.5})
    with pytest.raises(TypeError):
        null_progress(1, 10, {})
