"""A consumer-group member in its own process, driven over stdin by test_kafka_lag.py: the
group whose lag another process (with no member) must report.

    python lag_member.py BOOTSTRAP TOPIC GROUP
    commands, one a line, each answered with one JSON line:
    drain N    poll until N more messages came      -> {"delivered": total so far}
    commit K   commit the first K delivered          -> {"committed": K}
    state      the member's view of the group        -> {"generation", "assignment", "rebalancing"}
    quit
"""

from __future__ import annotations

import asyncio
import json
import sys

from codeexec.ports.bus import Message
from codeexec.testing.event_bus import commit_all, drain
from codeexec_kafka import AioKafkaEventBus, KafkaSettings


async def main(bootstrap: str, topic: str, group: str) -> None:
    settings = KafkaSettings(
        bootstrap_servers=bootstrap, session_timeout_ms=6000, heartbeat_interval_ms=300
    )
    bus = AioKafkaEventBus(settings)
    sub = await bus.subscribe(group, [topic])
    got: list[Message] = []
    loop = asyncio.get_running_loop()
    try:
        while True:
            # Read stdin off the loop: the member's heartbeats go on meanwhile.
            command, _, arg = (await loop.run_in_executor(None, sys.stdin.readline)).partition(" ")
            command = command.strip()
            answer: dict[str, object]
            if command == "drain":
                got += await drain(sub, int(arg))
                answer = {"delivered": len(got)}
            elif command == "commit":
                await commit_all(sub, got[: int(arg)])
                answer = {"committed": int(arg)}
            elif command == "state":
                coordinator = sub.consumer._coordinator  # a group member always has one
                assert coordinator is not None
                answer = {
                    "generation": coordinator.generation,
                    "assignment": sorted(tp.partition for tp in sub.consumer.assignment()),
                    "rebalancing": sub.rebalancing,
                }
            else:
                return
            print(json.dumps(answer), flush=True)
    finally:
        await bus.close()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
