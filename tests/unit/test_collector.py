"""The server's collector thresholds: CODEEXEC_GC_THRESHOLD, or ours by default."""

from __future__ import annotations

import gc

import pytest
from codeexec_server.collector import DEFAULT, VARIABLE, thresholds, tune
from codeexec_server.deployment import ConfigError


def test_a_server_collects_less_often_than_python_unless_told() -> None:
    assert thresholds({}) == DEFAULT and DEFAULT[0] > 700  # Python's is 700
    assert thresholds({VARIABLE: "python"}) is None
    assert thresholds({VARIABLE: " 1000, 10,10 "}) == (1000, 10, 10)


@pytest.mark.parametrize("bad", ["1000", "a,b,c", "0,10,10", "-1,10,10", "1000,10,10,10"])
def test_a_bad_threshold_is_refused_naming_the_variable(bad: str) -> None:
    with pytest.raises(ConfigError, match=VARIABLE):
        thresholds({VARIABLE: bad})


def test_tune_sets_the_thresholds_and_python_leaves_them() -> None:
    before = gc.get_threshold()
    try:
        tune({VARIABLE: "1234,5,6"})
        assert gc.get_threshold() == (1234, 5, 6)
        tune({VARIABLE: "python"})
        assert gc.get_threshold() == (1234, 5, 6)
    finally:
        gc.set_threshold(*before)
