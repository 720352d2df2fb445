"""Packing a run's payload into ConfigMaps (pure) and the launcher putting it together: every
ConfigMap within the limit with margin as sent, every entry back bytes-exact, a short or
missing part named instead of run."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from codeexec.domain.model import MAX_ARG_BYTES, RunSpec, SourceFile
from codeexec_kubernetes import DEFAULT_CATALOG, KubernetesSettings, run_objects
from codeexec_kubernetes.objects import launcher_source
from codeexec_kubernetes.payload import (
    CONFIGMAP_BUDGET,
    CONFIGMAP_MAX_BYTES,
    MIN_PART,
    Entry,
    Packer,
    Slot,
)

LAUNCHER = Path(__file__).parents[1] / "src" / "codeexec_kubernetes" / "launcher.py"


def joined(slots: list[Slot], key: str, parts: int) -> bytes:
    values: dict[str, bytes] = {}
    for slot in slots:
        values.update({k: v.encode() for k, v in slot.data.items()})
        values.update({k: base64.b64decode(v) for k, v in slot.binary.items()})
    if parts == 1:
        return values[key]
    assert key not in values
    return b"".join(values[f"{key}.{i}"] for i in range(parts))


def as_sent(slot: Slot) -> int:
    return len(json.dumps({"data": slot.data, "binaryData": slot.binary}))


sizes = st.one_of(st.integers(0, 3 * MIN_PART), st.integers(600_000, 2 * 2**20))
entries = st.lists(
    st.one_of(
        sizes.map(lambda n: Entry("b", bytes([n % 251]) * n)),
        st.tuples(st.text(st.characters(codec="ascii"), min_size=1, max_size=50), sizes).map(
            lambda t: Entry("t", (t[0].encode("ascii") * t[1])[: t[1]], text=True)
        ),
    ),
    max_size=5,
)


@settings(max_examples=40, deadline=None)
@given(entries)
def test_every_entry_comes_back_whole_and_every_config_map_fits(given: list[Entry]) -> None:
    items = [Entry(f"{e.key}{i}", e.data, e.text) for i, e in enumerate(given)]
    packer = Packer([Entry("launcher.py", launcher_source().encode(), text=True)])
    parts = [packer.add(item) for item in items]
    for item, count in zip(items, parts, strict=True):
        assert joined(packer.slots, item.key, count) == item.data
    for slot in packer.slots:
        assert as_sent(slot) <= CONFIGMAP_BUDGET
    total = sum(as_sent(s) for s in packer.slots)
    # filled in order: only the last ConfigMap, and slivers below MIN_PART, go unused
    assert len(packer.slots) <= 1 + total // (CONFIGMAP_BUDGET - MIN_PART - 64)


def test_the_largest_request_the_api_accepts_fits_with_margin() -> None:
    """4 MiB of files and stdin (CODEEXEC_MAX_REQUEST_BYTES's default) and argv at its
    bound, in characters JSON escapes six-fold: each ConfigMap stays under 1 MiB as sent."""
    spec = RunSpec(
        language="python",
        files=(SourceFile(name="main.py", content=b"\xff" * (3 * 2**20)),),
        stdin=b"\x00" * 2**20,
        args=tuple("\u00e4" * ((MAX_ARG_BYTES - 2) // 2) for _ in range(7)),
    )
    objects = run_objects(KubernetesSettings(), DEFAULT_CATALOG[0], "cx-max", spec)
    assert 6 <= len(objects.config_maps) <= 9
    for config_map in [*objects.owned_parts("uid-1"), objects.config_map]:
        assert len(json.dumps(config_map)) < CONFIGMAP_MAX_BYTES - 32 * 1024
        values = [v.encode() for v in config_map.get("data", {}).values()]
        values += [base64.b64decode(v) for v in config_map.get("binaryData", {}).values()]
        assert sum(map(len, values)) <= CONFIGMAP_MAX_BYTES  # the API server's own check
    assert len(json.dumps(objects.pod)) < 8192


def test_a_small_run_is_one_config_map_with_every_entry_whole() -> None:
    spec = RunSpec(language="python", files=(SourceFile(name="main.py", content=b"1"),))
    objects = run_objects(KubernetesSettings(), DEFAULT_CATALOG[0], "cx-small", spec)
    (config_map,) = objects.config_maps
    assert set(config_map["data"]) == {"launcher.py", "plan.json"}
    assert json.loads(config_map["data"]["plan.json"])["files"] == [["f0", "main.py", 1, 1]]


def test_a_part_that_does_not_add_up_is_named_not_run(tmp_path: Path) -> None:
    payload, work = tmp_path / "payload", tmp_path / "work"
    payload.mkdir()
    work.mkdir()
    (payload / "f0.0").write_bytes(b"print(")
    (payload / "f0.1").write_bytes(b"1)\n")
    stage = {"name": "run", "argv": [sys.executable, "main.py"], "limits": {}}
    plan = {"files": [["f0", "main.py", 10, 2]], "stdin": None, "stages": [stage]}
    (payload / "plan.json").write_text(json.dumps(plan))
    done = subprocess.run(
        [sys.executable, str(LAUNCHER), str(payload), str(work)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 127
    report = json.loads(done.stdout.splitlines()[0].split(" ", 3)[3])
    assert report == {
        "stage": "setup",
        "error": "cannot put the run's files together: main.py: 9 bytes from 2 part(s), not 10",
    }
    assert done.stdout.splitlines()[1] == "cx 2 x "
