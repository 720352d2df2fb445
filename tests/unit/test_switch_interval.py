"""The server's thread switch interval: CODEEXEC_SWITCH_INTERVAL_MS, else the interpreter's."""

from __future__ import annotations

import sys

import pytest
from codeexec_server.deployment import ConfigError
from codeexec_server.switch_interval import VARIABLE, interval_s, tune


def test_a_server_keeps_the_interpreters_interval_unless_told() -> None:
    assert interval_s({}) is None
    assert interval_s({VARIABLE: ""}) is None
    assert interval_s({VARIABLE: "python"}) is None
    assert interval_s({VARIABLE: " 0.5 "}) == 0.0005


@pytest.mark.parametrize("bad", ["x", "0", "-1", "1000", "nan", "1,5"])
def test_a_bad_interval_is_refused_naming_the_variable(bad: str) -> None:
    with pytest.raises(ConfigError, match=VARIABLE):
        interval_s({VARIABLE: bad})


def test_tune_sets_the_interval_and_python_leaves_it() -> None:
    before = sys.getswitchinterval()
    try:
        tune({VARIABLE: "2"})
        assert sys.getswitchinterval() == pytest.approx(0.002)
        tune({VARIABLE: "python"})
        assert sys.getswitchinterval() == pytest.approx(0.002)
    finally:
        sys.setswitchinterval(before)
