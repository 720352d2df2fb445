"""A consumer's batch is handled in steps of bounded size, each tracked where it ends."""

from __future__ import annotations

from codeexec.ports.bus import H_POSITION, Message, TopicPartition
from codeexec.service.consumer_steps import STORE_CALL_MESSAGES, store_calls

P0, P1 = TopicPartition("execution_events", 0), TopicPartition("execution_events", 1)


def messages(tp: TopicPartition, positions: range) -> list[Message]:
    return [Message(tp.topic, "k", b"{}", {H_POSITION: str(p)}, tp.partition, p) for p in positions]


def test_small_batches_are_one_store_call_as_before() -> None:
    plan = [(P0, messages(P0, range(1, 4)), 5, True), (P1, [], 9000, True)]
    assert store_calls(plan) == [plan]


def test_a_long_partition_is_split_in_order_and_each_step_tracks_where_it_ends() -> None:
    n = STORE_CALL_MESSAGES
    wanted = messages(P0, range(1, 2 * n + 11))
    calls = store_calls([(P0, wanted, 2 * n + 20, True), (P1, messages(P1, range(1, 3)), 7, True)])
    steps = [step for call in calls for step in call]
    assert [m for tp, piece, _, _ in steps if tp == P0 for m in piece] == wanted
    assert [(tp, position) for tp, _, position, _ in steps] == [
        (P0, n),
        (P0, 2 * n),
        (P0, 2 * n + 20),  # the last step of a partition tracks the batch's last position
        (P1, 7),
    ]
    assert all(sum(len(piece) for _, piece, _, _ in call) <= n for call in calls)
    assert len(calls) == 3  # the partitions' rests share a call
