"""A writer process for the ordering test: `python mongo_writer.py URL DB WRITER SAVES`.

Saves SAVES writes of 1-3 events (each of a new aggregate) through the Mongo process
recorder, pausing at random between allocating its positions and committing, so that
writes commit out of position order and readers meet gaps. Prints nothing; exits 0."""

from __future__ import annotations

import random
import sys
import time
import uuid

from eventsourcing.persistence import StoredEvent, Tracking
from eventsourcing.utils import Environment

from codeexec_mongo import CommitLog, MongoFactory


class DawdlingCommitLog(CommitLog):
    """Commits after a random pause, as a writer descheduled between its two steps would."""

    def _commit(self, first: int, last: int, tracking: Tracking | None) -> bool:
        time.sleep(random.choice((0, 0, 0.001, 0.005, 0.02)))
        return super()._commit(first, last, tracking)


def main(url: str, db: str, writer: str, saves: int) -> None:
    factory = MongoFactory(Environment(env={"MONGO_URL": url, "MONGO_DB": db}))
    recorder = factory.process_recorder()
    log = recorder.log  # type: ignore[attr-defined]
    log.__class__ = DawdlingCommitLog
    for n in range(saves):
        aggregate = uuid.uuid4()
        events = [
            StoredEvent(aggregate, version, "topic", f"{writer}:{n}:{version}".encode())
            for version in range(1, random.randint(1, 3) + 1)
        ]
        recorder.insert_events(events, tracking=Tracking(f"upstream-{writer}", n + 1))
    factory.close()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]))
