"""CommitReader: reading a `CommitLog`'s collections: an aggregate's events, the notification
log in position order (stopping at gaps, fencing the abandoned ones), tracking positions.
The design, and why no reader skips an event, are in `codeexec_mongo.commit_log`."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from typing import Any
from uuid import UUID

from eventsourcing.persistence import Notification, StoredEvent
from pymongo import ASCENDING, DESCENDING
from pymongo.collection import Collection
from pymongo.database import Database
from pymongo.errors import BulkWriteError

Doc = dict[str, Any]


class CommitReader:
    """Reads the log's collections (and fences gaps off: readers do)."""

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

    def _fence(self, first: int, last: int) -> None:
        """Void each position first..last, lowest first, stopping at the first taken."""
        docs = [{"_id": p, "last": p, "void": True, "tk": f"#{p}"} for p in range(first, last + 1)]
        try:
            self.commits.insert_many(docs, ordered=True)
        except BulkWriteError:
            pass  # a commit (or another fence) holds a position: readers see it next

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


def _pages(cursor: Iterator[Doc], size: int) -> Iterator[list[Doc]]:
    page: list[Doc] = []
    for doc in cursor:
        page.append(doc)
        if len(page) >= size:
            yield page
            page = []
    if page:
        yield page
