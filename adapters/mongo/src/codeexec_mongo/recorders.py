"""eventsourcing's recorders on a `CommitLog`: MongoAggregateRecorder, MongoApplicationRecorder,
MongoTrackingRecorder and MongoProcessRecorder, with pymongo's errors in eventsourcing's terms.

Synchronous, on pymongo's sync client, because eventsourcing's recorder interfaces are;
codeexec calls them from its store thread, off the event loop."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar
from uuid import UUID

from eventsourcing.persistence import (
    AggregateRecorder,
    ApplicationRecorder,
    DatabaseError,
    Notification,
    OperationalError,
    ProcessRecorder,
    StoredEvent,
    Subscription,
    Tracking,
    TrackingRecorder,
)
from pymongo.errors import ConnectionFailure, ExecutionTimeout, PyMongoError, WTimeoutError

from codeexec_mongo.commit_log import CommitLog

T = TypeVar("T")
POLL_S = 0.05  # how often a subscription with nothing new asks again


@contextmanager
def translated_errors() -> Iterator[None]:
    """pymongo's errors as eventsourcing's: an unreachable or slow server is operational
    (worth retrying); anything else the database refused is a DatabaseError."""
    try:
        yield
    except (ConnectionFailure, ExecutionTimeout, WTimeoutError) as error:
        raise OperationalError(f"MongoDB: {error}") from error
    except PyMongoError as error:
        raise DatabaseError(f"MongoDB: {error}") from error


def _call(fn: Callable[[], T]) -> T:
    with translated_errors():
        return fn()


class MongoRecorder:
    def __init__(self, log: CommitLog) -> None:
        self.log = log

    def create_table(self) -> None:
        """Create the log's indexes (idempotent: at every start)."""
        _call(self.log.create_indexes)


class MongoAggregateRecorder(MongoRecorder, AggregateRecorder):
    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        _call(lambda: self.log.write(stored_events, None))
        return None

    def select_events(
        self,
        originator_id: UUID | str,
        *,
        gt: int | None = None,
        lte: int | None = None,
        desc: bool = False,
        limit: int | None = None,
    ) -> Sequence[StoredEvent]:
        return _call(lambda: self.log.select_events(originator_id, gt, lte, desc, limit))


class MongoApplicationRecorder(MongoAggregateRecorder, ApplicationRecorder):
    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        tracking: Tracking | None = kwargs.get("tracking")
        return _call(lambda: self.log.write(stored_events, tracking))

    def select_notifications(
        self,
        start: int | None,
        limit: int,
        stop: int | None = None,
        topics: Sequence[str] = (),
        *,
        inclusive_of_start: bool = True,
    ) -> Sequence[Notification]:
        lo = 1 if start is None else start if inclusive_of_start else start + 1
        return _call(lambda: self.log.notifications(max(lo, 1), limit, stop, topics))

    def max_notification_id(self) -> int | None:
        return _call(self.log.max_notification_id)

    def subscribe(
        self, gt: int | None = None, topics: Sequence[str] = ()
    ) -> Subscription[ApplicationRecorder]:
        return MongoSubscription(self, gt=gt, topics=topics)


class MongoTrackingRecorder(MongoRecorder, TrackingRecorder):
    def insert_tracking(self, tracking: Tracking) -> None:
        _call(lambda: self.log.write_tracking(tracking))

    def max_tracking_id(self, application_name: str) -> int | None:
        return _call(lambda: self.log.max_tracking_id(application_name))


class MongoProcessRecorder(MongoTrackingRecorder, MongoApplicationRecorder, ProcessRecorder):
    pass


class MongoSubscription(Subscription[ApplicationRecorder]):
    """Notifications after `gt`, then each new one as it is committed (by polling: MongoDB
    without a replica set has no change streams)."""

    def __init__(
        self, recorder: MongoApplicationRecorder, gt: int | None, topics: Sequence[str]
    ) -> None:
        super().__init__(recorder, gt=gt, topics=topics)
        self._mongo = recorder
        self._buffer: deque[Notification] = deque()
        self._stopped = threading.Event()

    def stop(self) -> None:
        super().stop()
        self._stopped.set()

    def __next__(self) -> Notification:
        while not self._has_been_stopped:
            if self._buffer:
                notification = self._buffer.popleft()
                self._last_notification_id = notification.id
                return notification
            gt = self._last_notification_id
            start = 1 if gt is None else gt + 1
            batch = self._mongo.select_notifications(start, 500, topics=self._topics)
            if batch:
                self._buffer.extend(batch)
            else:
                self._stopped.wait(POLL_S)
        raise StopIteration
