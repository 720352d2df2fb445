"""Every published event carries its type, store position, schema version and correlation id
as headers (relayed and replayed alike), so consumers and third-party tools can route and
trace without parsing the document."""

from __future__ import annotations

from codeexec import Settings
from codeexec.adapters.fake_sandbox import FakeSandbox
from codeexec.adapters.memory_bus import InMemoryEventBus
from codeexec.domain.events import from_json
from codeexec.domain.operations_events import ReplayFilter
from codeexec.domain.routing import EXECUTION_EVENTS, REPLAY_SCRATCH
from codeexec.ports.bus import H_CORRELATION, H_POSITION, H_REPLAY, H_SCHEMA, H_TYPE, Message
from codeexec.runtime import Codeexec
from codeexec.service.relay import envelope_headers
from tests.unit.factories import roomy, script
from tests.unit.test_runtime import eventually


def assert_envelope_headers(messages: list[Message]) -> None:
    assert messages
    for m in messages:
        event = from_json(m.value)
        assert m.headers[H_TYPE] == event.type_name
        assert m.headers[H_SCHEMA] == str(event.schema_version)
        assert m.headers[H_CORRELATION] == str(event.correlation_id)
        assert m.headers[H_POSITION].isdigit()


async def test_relayed_and_replayed_events_carry_envelope_headers() -> None:
    bus = InMemoryEventBus()
    async with Codeexec(Settings(coordinator=roomy()), sandbox=FakeSandbox(), bus=bus) as cx:
        for n in range(3):
            await cx.wait((await cx.submit("alice", script(f"out {n}"))).id)
        audit = await (await bus.subscribe("reader", [EXECUTION_EVENTS])).poll(10_000, 0)
        assert_envelope_headers(audit)
        session = cx.replays.create("root", ReplayFilter(), REPLAY_SCRATCH)
        await eventually(lambda: cx.replays.get(session.id).finished)
        replayed = await (await bus.subscribe("scratch", [REPLAY_SCRATCH])).poll(10_000, 0)
        assert_envelope_headers(replayed)
        assert all(H_REPLAY in m.headers for m in replayed)


def test_a_document_without_an_envelope_gets_no_such_headers() -> None:
    assert envelope_headers(b'{"type":"x"}') == {}
    assert envelope_headers(b'{"schema_version":12,"correlation_id":"' + b"a" * 36 + b'"}') == {
        H_SCHEMA: "12",
        H_CORRELATION: "a" * 36,
    }
