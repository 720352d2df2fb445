"""CommitLog: an event log on MongoDB whose every write commits by one single-document insert.

No multi-document transactions, no replica set needed. Three collections per log:

- `<log>_positions`: one counter document; a write allocates its notification ids (a
  contiguous range) with one `find_one_and_update` `$inc`.
- `<log>_events`: one document per event, `_id` = "<originator id>:<version>" (unique: the
  optimistic-concurrency check). An event document is a *claim*, not yet a record: it names
  its commit `c` (first position of its write) and counts only once that commit exists.
- `<log>_commits`: one *commit* document per write, `_id` = its first position, `last` its
  last, with its tracking record (`ta`, `tn`; `tk` unique). Inserting it is the write's
  atomic commit point: the events and the tracking become visible together, or not at all.

A write: check its tracking is newer, allocate positions, insert its claims (sorted by key,
so two writers never wait on each other in a cycle), insert the commit. A duplicate claim
whose commit exists is a conflict (IntegrityError, and the write voids its positions); a
claim of a void commit is garbage and is replaced; a claim still pending is waited for.

Readers follow commits by position and never read past a gap (positions allocated whose
commit is not visible yet) that has a later commit beyond it: a slow writer's events appear
in order, never skipped. A gap that outlives `gap_timeout_s` is *fenced*: a void commit
document is inserted at each of its positions, lowest first. A late writer's commit then
collides on `_id` and its write is retried at new positions, so nothing a reader has passed
can appear behind it. The timeout only trades latency for false fencing, never safety."""

from __future__ import annotations

import secrets
import time
from collections.abc import Sequence
from uuid import UUID

from bson.binary import Binary
from eventsourcing.persistence import (
    IntegrityError,
    OperationalError,
    StoredEvent,
    Tracking,
)
from pymongo import ReturnDocument
from pymongo.errors import BulkWriteError, DuplicateKeyError

from codeexec_mongo.commit_reader import CommitReader, Doc

DUPLICATE_KEY = 11000
FENCED_RETRIES = 5  # a write fenced out this often in a row is refused (OperationalError)


def event_key(originator_id: UUID | str, version: int) -> str:
    return f"{originator_id}:{version}"


class CommitLog(CommitReader):
    """Writes (see the module's docstring); reads as a CommitReader."""

    # -- writing ---------------------------------------------------------------------------

    def write(self, stored: Sequence[StoredEvent], tracking: Tracking | None) -> list[int]:
        """Record `stored` and `tracking` atomically; their notification ids."""
        if not stored:
            if tracking is not None:
                self.write_tracking(tracking)
            return []
        keys = [event_key(e.originator_id, e.originator_version) for e in stored]
        if len(set(keys)) != len(keys):
            raise IntegrityError(f"one write holds the same aggregate version twice: {keys}")
        if tracking is not None:
            self._check_newer(tracking)
        for _ in range(FENCED_RETRIES):
            first = self._allocate(len(stored))
            last = first + len(stored) - 1
            try:
                self._claim(stored, keys, first, last)
            except IntegrityError:
                self._void(first, last)
                raise
            if self._commit(first, last, tracking):
                return list(range(first, last + 1))
        raise OperationalError(
            f"a write was fenced off {FENCED_RETRIES} times (each took longer than "
            f"MONGO_GAP_TIMEOUT_S={self.gap_timeout_s}); nothing was recorded"
        )

    def write_tracking(self, tracking: Tracking) -> None:
        self._check_newer(tracking)
        try:
            self.commits.insert_one(_tracking_fields(tracking))
        except DuplicateKeyError:
            raise IntegrityError(f"tracking {tracking} is recorded already") from None

    def _check_newer(self, tracking: Tracking) -> None:
        # Exact duplicates are refused by the unique `tk` index, atomically; a lower id after
        # a higher one by this read (one consumer follows an upstream position at a time).
        newest = self.max_tracking_id(tracking.application_name)
        if newest is not None and newest >= tracking.notification_id:
            raise IntegrityError(
                f"tracking {tracking.notification_id} of {tracking.application_name!r} is "
                f"not after the recorded {newest}"
            )

    def _allocate(self, count: int) -> int:
        counter = self.positions.find_one_and_update(
            {"_id": "notifications"},
            {"$inc": {"last": count}},
            upsert=True,
            return_document=ReturnDocument.AFTER,
        )
        assert counter is not None
        return int(counter["last"]) - count + 1

    def _claim(self, stored: Sequence[StoredEvent], keys: list[str], first: int, last: int) -> None:
        docs = [
            {
                "_id": key,
                "o": str(event.originator_id),
                "v": event.originator_version,
                "p": first + n,
                "c": first,
                "l": last,
                "t": event.topic,
                "s": Binary(event.state),
            }
            for n, (key, event) in enumerate(zip(keys, stored, strict=True))
        ]
        pending = sorted(docs, key=lambda d: str(d["_id"]))
        while pending:
            try:
                self.events.insert_many(pending, ordered=True)
                return
            except BulkWriteError as error:
                errors = error.details.get("writeErrors", [])
                if not errors or errors[0].get("code") != DUPLICATE_KEY:
                    raise
                done = int(errors[0]["index"])
                pending = pending[done:]
                self._clear_way(str(pending[0]["_id"]))

    def _clear_way(self, key: str) -> None:
        """Another write claimed `key`: a conflict if it commits (IntegrityError); if it
        is void, or never commits within the gap timeout (then it is fenced), its claim
        is removed and ours is tried again."""
        deadline = time.monotonic() + self.gap_timeout_s
        pause = 0.002
        while True:
            claim = self.events.find_one({"_id": key}, {"c": 1, "l": 1})
            if claim is None:
                return  # removed meanwhile
            commit = self.commits.find_one({"_id": claim["c"]}, {"void": 1})
            if commit is not None and not commit.get("void"):
                raise IntegrityError(f"event {key} is recorded already")
            if commit is None and time.monotonic() >= deadline:
                self._fence(int(claim["c"]), int(claim["l"]))
                continue  # the fence lost to a commit, or holds: look again
            if commit is not None:  # void: the claim is garbage
                self.events.delete_one({"_id": key, "c": claim["c"]})
                return
            time.sleep(pause)
            pause = min(pause * 2, 0.05)

    def _commit(self, first: int, last: int, tracking: Tracking | None) -> bool:
        """Insert the commit document; False if a reader fenced these positions off first
        (then the claims are removed and the caller retries at new positions)."""
        # `w` tells this write's own document from any other at its position.
        doc: Doc = {"_id": first, "last": last, "tk": f"#{first}", "w": secrets.token_hex(8)}
        if tracking is not None:
            doc.update(_tracking_fields(tracking))
        try:
            self.commits.insert_one(doc)
            return True
        except DuplicateKeyError:
            pass
        there = self.commits.find_one({"_id": first})
        if there is not None and there.get("w") == doc["w"]:
            return True  # our own insert, answered twice (a retried write): committed
        if there is not None and there.get("void"):  # a reader fenced these positions off
            self.events.delete_many({"c": first})
            return False
        if there is not None:
            raise OperationalError(
                f"position {first} was allocated twice: {self.positions.name} is not "
                "this store's counter (was it reset or restored apart from the log?)"
            )
        self._void(first, last)  # the tracking record was there first
        raise IntegrityError(f"tracking {tracking} is recorded already")

    def _void(self, first: int, last: int) -> None:
        """Give up positions first..last: writers waiting on our claims go on at once."""
        try:
            self.commits.insert_one({"_id": first, "last": last, "void": True, "tk": f"#{first}"})
        except DuplicateKeyError:
            pass  # a reader fenced them already
        self.events.delete_many({"c": first})


def _tracking_fields(tracking: Tracking) -> Doc:
    name, n = tracking.application_name, tracking.notification_id
    return {"ta": name, "tn": n, "tk": f"{name}:{n}"}
