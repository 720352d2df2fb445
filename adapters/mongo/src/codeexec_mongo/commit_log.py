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

import time
from collections.abc import Iterator, Sequence
from typing import Any
from uuid import UUID

from bson.binary import Binary
from eventsourcing.persistence import (
    IntegrityError,
    Notification,
    OperationalError,
    StoredEvent,
    Tracking,
)
from pymongo import ASCENDING, DESCENDING, ReturnDocument
from pymongo.collection import Collection
from pymongo.database import Database
from pymongo.errors import BulkWriteError, DuplicateKeyError

Doc = dict[str, Any]
DUPLICATE_KEY = 11000
FENCED_RETRIES = 5  # a write fenced out this often in a row is refused (OperationalError)


def event_key(originator_id: UUID | str, version: int) -> str:
    return f"{originator_id}:{version}"


class CommitLog:
    def __init__(
        self, db: Database[Doc], name: str, *, uuid_ids: bool, gap_timeout_s: float
    ) -> None:
        self.events: Collection[Doc] = db[f"{name}_events"]
        self.commits: Collection[Doc] = db[f"{name}_commits"]
        self.positions: Collection[Doc] = db[f"{name}_positions"]
        self.uuid_ids = uuid_ids
        self.gap_timeout_s = gap_timeout_s
        self._gaps: dict[int, float] = {}  # gap start -> when this process first saw it

    def create_indexes(self) -> None:
        self.events.create_index([("o", ASCENDING), ("v", ASCENDING)], name="aggregate")
        self.events.create_index([("p", ASCENDING)], name="position")
        self.events.create_index([("c", ASCENDING)], name="commit")
        self.commits.create_index([("last", ASCENDING)], name="last")
        self.commits.create_index([("tk", ASCENDING)], name="tracking_key", unique=True)
        self.commits.create_index([("ta", ASCENDING), ("tn", DESCENDING)], name="tracking")

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
        doc: Doc = {"_id": first, "last": last, "tk": f"#{first}"}
        if tracking is not None:
            doc.update(_tracking_fields(tracking))
        try:
            self.commits.insert_one(doc)
            return True
        except DuplicateKeyError:
            pass
        there = self.commits.find_one({"_id": first})
        if there is not None and not there.get("void"):
            return True  # our own insert, answered twice (a retried write): committed
        if there is not None:  # a reader fenced these positions off first
            self.events.delete_many({"c": first})
            return False
        self._void(first, last)  # the tracking record was there first
        raise IntegrityError(f"tracking {tracking} is recorded already")

    def _void(self, first: int, last: int) -> None:
        """Give up positions first..last: writers waiting on our claims go on at once."""
        try:
            self.commits.insert_one({"_id": first, "last": last, "void": True, "tk": f"#{first}"})
        except DuplicateKeyError:
            pass  # a reader fenced them already
        self.events.delete_many({"c": first})

    def _fence(self, first: int, last: int) -> None:
        """Void each position first..last, lowest first, stopping at the first taken."""
        docs = [{"_id": p, "last": p, "void": True, "tk": f"#{p}"} for p in range(first, last + 1)]
        try:
            self.commits.insert_many(docs, ordered=True)
        except BulkWriteError:
            pass  # a commit (or another fence) holds a position: readers see it next

    # -- reading ---------------------------------------------------------------------------

    def select_events(
        self,
        originator_id: UUID | str,
        gt: int | None,
        lte: int | None,
        desc: bool,
        limit: int | None,
    ) -> list[StoredEvent]:
        versions: Doc = {}
        if gt is not None:
            versions["$gt"] = gt
        if lte is not None:
            versions["$lte"] = lte
        query: Doc = {"o": str(originator_id)}
        if versions:
            query["v"] = versions
        cursor = self.events.find(query).sort("v", DESCENDING if desc else ASCENDING)
        out: list[StoredEvent] = []
        for page in _pages(cursor, limit or 1000):
            committed = self._committed({int(d["c"]) for d in page})
            out.extend(self._stored(d) for d in page if d["c"] in committed)
            if limit is not None and len(out) >= limit:
                return out[:limit]
        return out

    def _committed(self, firsts: set[int]) -> set[int]:
        found = self.commits.find({"_id": {"$in": sorted(firsts)}}, {"void": 1})
        return {int(c["_id"]) for c in found if not c.get("void")}

    def notifications(
        self, lo: int, limit: int, hi: int | None, topics: Sequence[str]
    ) -> list[Notification]:
        """Up to `limit` events from position `lo` (to `hi`), in order, stopping before a gap."""
        out: list[Notification] = []
        expected = lo
        while len(out) < limit and (hi is None or expected <= hi):
            span = self._contiguous(expected, hi, page=max(limit - len(out), 100))
            if span is None:
                break
            end, commits = span
            if commits:
                query: Doc = {"p": {"$gte": expected, "$lte": end if hi is None else min(end, hi)}}
                for doc in self.events.find(query).sort("p", ASCENDING):
                    if doc["c"] in commits and (not topics or doc["t"] in topics):
                        out.append(self._notification(doc))
            expected = end + 1
        return out[:limit]

    def _contiguous(self, lo: int, hi: int | None, page: int) -> tuple[int, set[int]] | None:
        """The last position of a gapless run of commits from `lo`, and the (non-void)
        commits in it; None if position `lo` is not committed (yet)."""
        while True:
            query: Doc = {"last": {"$gte": lo}}
            if hi is not None:
                query["_id"] = {"$lte": hi}
            expected, commits = lo, set()
            gap_after: int | None = None
            for doc in self.commits.find(query).sort("last", ASCENDING).limit(page):
                first, last = int(doc["_id"]), int(doc["last"])
                if first > expected:
                    gap_after = first  # positions expected..first-1 are allocated, not visible
                    break
                if not doc.get("void"):
                    commits.add(first)
                expected = last + 1
            if gap_after is None or expected > lo:
                self._gaps.pop(lo, None)
                return (expected - 1, commits) if expected > lo else None
            if not self._gap_expired(lo):
                return None
            self._fence(self._gap_start(lo), gap_after - 1)

    def _gap_expired(self, start: int) -> bool:
        if len(self._gaps) > 1000:  # starts no caller came back to
            self._gaps.clear()
        seen = self._gaps.setdefault(start, time.monotonic())
        return time.monotonic() - seen >= self.gap_timeout_s

    def _gap_start(self, lo: int) -> int:
        """Where the gap holding `lo` begins: after the last commit below `lo` (a reader
        may start inside a write's range; fencing must begin at its first position)."""
        below = self.commits.find_one({"last": {"$lt": lo}}, sort=[("last", DESCENDING)])
        return 1 if below is None else int(below["last"]) + 1

    def max_notification_id(self) -> int | None:
        for doc in self.commits.find({"last": {"$gte": 1}}).sort("last", DESCENDING):
            if not doc.get("void"):
                return int(doc["last"])
        return None

    def max_tracking_id(self, application_name: str) -> int | None:
        doc = self.commits.find_one({"ta": application_name}, sort=[("tn", DESCENDING)])
        return None if doc is None else int(doc["tn"])

    def _originator(self, doc: Doc) -> UUID | str:
        return UUID(doc["o"]) if self.uuid_ids else str(doc["o"])

    def _stored(self, doc: Doc) -> StoredEvent:
        return StoredEvent(self._originator(doc), int(doc["v"]), str(doc["t"]), bytes(doc["s"]))

    def _notification(self, doc: Doc) -> Notification:
        return Notification(
            id=int(doc["p"]),
            originator_id=self._originator(doc),
            originator_version=int(doc["v"]),
            topic=str(doc["t"]),
            state=bytes(doc["s"]),
        )


def _tracking_fields(tracking: Tracking) -> Doc:
    name, n = tracking.application_name, tracking.notification_id
    return {"ta": name, "tn": n, "tk": f"{name}:{n}"}


def _pages(cursor: Iterator[Doc], size: int) -> Iterator[list[Doc]]:
    page: list[Doc] = []
    for doc in cursor:
        page.append(doc)
        if len(page) >= size:
            yield page
            page = []
    if page:
        yield page
