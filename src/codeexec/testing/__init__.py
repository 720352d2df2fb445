"""Contract suites shipped with the library, so every adapter distribution runs the same
tests as its in-memory twin (as eventsourcing ships eventsourcing.tests.persistence).
Importing them needs pytest (the `test` extra)."""

import pytest

# Plain asserts in these shipped modules report their values, as in a test file.
pytest.register_assert_rewrite(
    "codeexec.testing.event_bus",
    "codeexec.testing.read_model",
    "codeexec.testing.key_store",
    "codeexec.testing.bus_tail",
)
