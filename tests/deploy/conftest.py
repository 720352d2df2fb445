"""The rendered deploy base, once per session."""

from __future__ import annotations

from typing import Any

import pytest

from tests.deploy.rendered import render


@pytest.fixture(scope="session")
def manifests() -> list[dict[str, Any]]:
    return render()
