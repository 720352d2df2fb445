"""MongoExecutionReadModel: execution views in the `execution_views` collection, kept by the
projections role, shared by every API process.

One document per execution (`_id` its id as hex): the fields the API filters and orders on
(`user_id`, `seq`, `state`, `status`, `language`, `created_at` in microseconds), the output
as BinData, the rest of the view beside them. Without multi-document transactions a batch
cannot commit with its tracking in one write, so it is made idempotent per view instead:
each view is replaced only if the version of the execution it has seen is lower than the
new one's (`version_seen`, a condition of the replace), and the tracking position is moved
after the views, only upward. A crash between them redelivers the batch, whose events every
view has seen already: nothing changes twice. A reader may see one view of a batch updated
before another (each view is whole). Counts per state are an aggregation over the views,
so they cannot drift."""

from __future__ import annotations

import builtins
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict
from datetime import datetime
from typing import Any
from uuid import UUID

from bson.binary import Binary
from eventsourcing.persistence import Tracking
from pymongo import ASCENDING, DESCENDING, MongoClient
from pymongo.errors import DuplicateKeyError

from codeexec.adapters.execution_fold import fold_views, from_micros, micros, shown
from codeexec.domain.admission import RecentSubmission
from codeexec.domain.events import DomainEvent
from codeexec.ports.read_model import (
    ExecutionQuery,
    ExecutionReadModel,
    ExecutionView,
    Page,
    SubmissionTotals,
)
from codeexec_mongo.recorders import translated_errors
from codeexec_mongo.settings import MongoSettings

Doc = dict[str, Any]
TIMES = ("created_at", "updated_at", "queued_at", "scheduled_at", "started_at", "finished_at")
BYTES = ("stdout", "stderr", "compile_output")
FLAGS = ("stdout_truncated", "stderr_truncated", "cancel_requested")
INDEXES = (  # the API's queries: newest first, per user, by status or language
    [("seq", DESCENDING)],
    [("user_id", ASCENDING), ("seq", DESCENDING)],
    [("user_id", ASCENDING), ("status", ASCENDING), ("seq", DESCENDING)],
    [("user_id", ASCENDING), ("language", ASCENDING), ("seq", DESCENDING)],
    [("status", ASCENDING), ("seq", DESCENDING)],
    [("user_id", ASCENDING), ("created_at", ASCENDING)],  # admission's recent submissions
)


def _document(view: ExecutionView) -> Doc:
    doc: Doc = asdict(view)
    doc["_id"] = view.id.hex
    del doc["id"]
    for name in TIMES:
        if doc[name] is not None:
            doc[name] = micros(doc[name])
    for name in BYTES:
        if doc[name] is not None:
            doc[name] = Binary(doc[name])
    doc["stored_bytes"] = view.stored_bytes
    return doc


def view_of(doc: Doc) -> ExecutionView:
    fields = {k: v for k, v in doc.items() if k not in ("_id", "stored_bytes")}
    for name in TIMES:
        if fields.get(name) is not None:
            fields[name] = from_micros(int(fields[name]))
    for name in BYTES:
        if fields.get(name) is not None:
            fields[name] = bytes(fields[name])
    for name in FLAGS:  # the test server returns booleans set by $set as 1/0
        fields[name] = bool(fields[name])
    return ExecutionView(id=UUID(doc["_id"]), **fields)


class MongoExecutionReadModel(ExecutionReadModel):
    def __init__(self, settings: MongoSettings, collection: str = "execution_views") -> None:
        write_concern, read_concern = settings.concerns()
        self._client: MongoClient[Doc] = MongoClient(settings.url, appname="codeexec")
        db = self._client.get_database(
            settings.db, write_concern=write_concern, read_concern=read_concern
        )
        self.views = db[collection]
        self.tracking = db[f"{collection}_tracking"]
        with translated_errors():
            for keys in INDEXES:
                self.views.create_index(keys, name="_".join(k for k, _ in keys))

    # -- writing ------------------------------------------------------------------------------

    def apply(self, event: DomainEvent, position: int | None = None) -> ExecutionView | None:
        if not shown(event):
            return None
        with translated_errors():
            if position is None:
                newest = self.views.find_one({}, {"seq": 1}, sort=[("seq", DESCENDING)])
                position = 1 + (0 if newest is None else int(newest["seq"]))
            views = self._fold([(position, event)])
        return views.get(event.execution_id) or self.get(event.execution_id)

    def apply_batch(
        self, events: Sequence[tuple[int, DomainEvent]], tracking: Tracking | None = None
    ) -> builtins.list[UUID]:
        with translated_errors():
            floor = 0
            if tracking is not None:
                floor = self.tracked(tracking.application_name)
                events = [(p, e) for p, e in events if p > floor]
            changed = self._fold(events)
            if tracking is not None and tracking.notification_id > floor:
                try:
                    self.tracking.update_one(
                        {
                            "_id": tracking.application_name,
                            "position": {"$lt": tracking.notification_id},
                        },
                        {"$set": {"position": tracking.notification_id}},
                        upsert=True,
                    )
                except DuplicateKeyError:
                    pass  # another projector recorded a later position: keep it
        return builtins.list(changed)

    def _fold(self, events: Sequence[tuple[int, DomainEvent]]) -> dict[UUID, ExecutionView]:
        events = [(p, e) for p, e in events if shown(e)]
        if not events:
            return {}
        ids = sorted({e.execution_id.hex for _, e in events})
        views = {v.id: v for v in map(view_of, self.views.find({"_id": {"$in": ids}}))}
        changed, _ = fold_views(views, events)  # counts come from an aggregation
        for view in changed.values():
            self._save(view)
        return changed

    def _save(self, view: ExecutionView) -> None:
        """Replace the stored view if it has seen less than this one (or insert it)."""
        fields = _document(view)
        del fields["_id"]
        try:  # every field is set: a whole view, never a mix of two versions
            self.views.update_one(
                {"_id": view.id.hex, "version_seen": {"$lt": view.version_seen}},
                {"$set": fields},
                upsert=True,
            )
        except DuplicateKeyError:
            pass  # the stored view has seen as much already (a redelivery, another projector)

    # -- reading ------------------------------------------------------------------------------

    def tracked(self, name: str) -> int:
        with translated_errors():
            doc = self.tracking.find_one({"_id": name})
        return 0 if doc is None else int(doc["position"])

    def get(self, execution_id: UUID) -> ExecutionView | None:
        with translated_errors():
            doc = self.views.find_one({"_id": execution_id.hex})
        return None if doc is None else view_of(doc)

    def list(self, query: ExecutionQuery) -> Page:
        with translated_errors():
            found = self.views.find(filter_of(query)).sort("seq", DESCENDING).limit(query.limit + 1)
            return page_of(builtins.list(found), query.limit)

    def recent_submissions(self, user_id: str, since: datetime) -> Sequence[RecentSubmission]:
        return submissions_of(self._submissions(user_id, since))

    def submission_totals(
        self, user_id: str, rate_since: datetime, storage_since: datetime
    ) -> SubmissionTotals:
        found = self._submissions(user_id, min(rate_since, storage_since))
        return totals_of(found, rate_since, storage_since)

    def _submissions(self, user_id: str, since: datetime) -> builtins.list[Doc]:
        with translated_errors():
            found = self.views.find(*submissions_query(user_id, since)).sort(SUBMISSIONS_ORDER)
            return builtins.list(found)

    def counts(self) -> Mapping[str, int]:
        with translated_errors():
            return counts_of(self.views.aggregate(COUNTS))

    def status_counts(self) -> Mapping[str, int]:
        with translated_errors():
            return counts_of(self.views.aggregate(STATUS_COUNTS))

    def close(self) -> None:
        self._client.close()


def page_of(docs: Sequence[Doc], limit: int) -> Page:
    """A listing's page from the `limit + 1` newest documents found (one more: is there a
    next page)."""
    items = [view_of(doc) for doc in docs[:limit]]
    more = len(docs) > limit
    return Page(items=items, next_cursor=items[-1].seq if more and items else None)


COUNTS = [{"$group": {"_id": "$state", "n": {"$sum": 1}}}]  # views per state
# Views per status: sorted on the indexed field first, so the server can group from the
# (status, seq) index instead of fetching each view.
STATUS_COUNTS: list[Doc] = [
    {"$sort": {"status": 1}},
    {"$project": {"_id": 0, "status": 1}},
    {"$group": {"_id": "$status", "n": {"$sum": 1}}},
]
SUBMISSIONS_ORDER = [("created_at", ASCENDING), ("seq", ASCENDING)]


def counts_of(groups: Iterable[Doc]) -> dict[str, int]:
    return {str(g["_id"]): int(g["n"]) for g in groups if g["n"]}


def submissions_query(user_id: str, since: datetime) -> tuple[Doc, Doc]:
    """The user's views created after `since`: filter and projection (three small fields
    each, found by the user_id_created_at index)."""
    return (
        {"user_id": user_id, "created_at": {"$gt": micros(since)}},
        {"created_at": 1, "state": 1, "stored_bytes": 1},
    )


def submissions_of(docs: Iterable[Doc]) -> builtins.list[RecentSubmission]:
    return [
        RecentSubmission(
            from_micros(int(d["created_at"])), int(d["stored_bytes"]), d["state"] != "rejected"
        )
        for d in docs
    ]


def totals_of(
    docs: Iterable[Doc], rate_since: datetime, storage_since: datetime
) -> SubmissionTotals:
    rate, storage = micros(rate_since), micros(storage_since)
    counted = stored = 0
    for doc in docs:
        at = int(doc["created_at"])
        counted += at > rate and doc["state"] != "rejected"
        stored += int(doc["stored_bytes"]) if at > storage else 0
    return SubmissionTotals(counted, stored)


def filter_of(query: ExecutionQuery) -> Doc:
    match: Doc = {}
    if query.user_id is not None:
        match["user_id"] = query.user_id
    if query.cursor is not None:
        match["seq"] = {"$lt": query.cursor}
    if query.statuses:
        wanted = sorted(query.statuses)
        match["$or"] = [{"status": {"$in": wanted}}, {"state": {"$in": wanted}}]
    if query.language is not None:
        match["language"] = query.language
    created: Doc = {}
    if query.created_after is not None:
        created["$gt"] = micros(query.created_after)
    if query.created_before is not None:
        created["$lt"] = micros(query.created_before)
    if created:
        match["created_at"] = created
    return match
