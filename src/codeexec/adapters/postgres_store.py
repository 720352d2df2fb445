"""eventsourcing's PostgreSQL persistence, with group commit in the store thread's turns.

`PERSISTENCE_MODULE=codeexec.adapters.postgres_store`, configured by eventsourcing's own
POSTGRES_* variables. In a turn of the store thread (`codeexec.ports.store_turn`), the first
use of a connection takes one from the pool and begins a transaction on it; every use of a
connection in the turn then runs in it as a savepoint (so each write keeps its own
atomicity, and a failed statement leaves the others be), reads see the turn's writes, and
the turn commits once. The
table lock eventsourcing takes for each insert (so that notification ids commit in order)
is then held until that one commit, which keeps the order it guarantees."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from typing import Any

import psycopg
from eventsourcing import persistence as es
from eventsourcing import postgres as es_postgres  # a module: one factory class found here
from eventsourcing.persistence import StoredEvent
from psycopg import sql
from psycopg.pq import TransactionStatus
from psycopg.rows import DictRow

from codeexec.adapters.db_errors import persistence_error
from codeexec.ports.store_turn import current_turn

log = logging.getLogger(__name__)

SCHEMA_LOCK_KEY = 0x636F6465_65786563 & 0x7FFFFFFF_FFFFFFFF  # "codeexec", a bigint


def _translated(error: psycopg.Error) -> es.PersistenceError:
    """The eventsourcing error the datastore raises for a psycopg one."""
    return persistence_error(error, psycopg)(str(error))


class TurnPostgresDatastore(es_postgres.PostgresDatastore):
    """Joins the store thread's turn (see the module's docstring). Made from a built
    datastore by `adopt`, so that eventsourcing's factory keeps reading its settings."""

    _turn: tuple[int, psycopg.Connection[DictRow], ExitStack] | None = None
    _outside_turn: int | None = None  # a thread whose transactions commit on their own
    turn_prepared = False
    """The turn's transaction holds the events table's lock and has NOTIFYed: a later
    insert of the same turn need not do either again (three statements fewer each)."""

    @classmethod
    def adopt(cls, datastore: es_postgres.PostgresDatastore) -> TurnPostgresDatastore:
        datastore.__class__ = cls  # the same state, and the turn's behaviour
        assert isinstance(datastore, cls)
        return datastore

    @contextmanager
    def get_connection(self) -> Iterator[psycopg.Connection[DictRow]]:
        connection = self._turn_connection()
        if connection is None:
            with super().get_connection() as pooled:
                yield pooled
            return
        with self._savepoint(connection, commit=True):
            yield connection

    @contextmanager
    def transaction(self, *, commit: bool = False) -> Iterator[psycopg.Cursor[DictRow]]:
        connection = self._turn_connection()
        if connection is None:
            with super().transaction(commit=commit) as cursor:
                yield cursor
            return
        with self._savepoint(connection, commit=commit):
            yield connection.cursor()

    @contextmanager
    def _savepoint(
        self, connection: psycopg.Connection[DictRow], *, commit: bool
    ) -> Iterator[None]:
        """A use of the turn's connection, as a savepoint: a failed statement (a conflict,
        or a probe such as eventsourcing's for a type that exists) must not end the turn.
        Like a transaction's COMMIT, releasing it after an error it swallowed rolls it
        back; so does a lock taken in it (PostgreSQL releases it), hence `turn_prepared`
        goes back to what it was."""
        prepared = self.turn_prepared
        try:
            connection.execute("SAVEPOINT turn_call")
        except psycopg.Error as error:
            raise _translated(error) from error
        try:
            yield
        except BaseException as failure:
            self.turn_prepared = prepared
            _undo(connection)
            if isinstance(failure, psycopg.Error):
                raise _translated(failure) from failure
            raise
        if commit and connection.info.transaction_status != TransactionStatus.INERROR:
            try:
                connection.execute("RELEASE turn_call")
            except psycopg.Error as error:
                self.turn_prepared = prepared
                _undo(connection)
                raise _translated(error) from error
        else:
            self.turn_prepared = prepared
            _undo(connection)

    def in_turn(self) -> bool:
        return current_turn() is not None

    def connect(self) -> psycopg.Connection[Any]:
        """A connection of its own (autocommit), made as the pool makes its."""
        kwargs = self.pool.kwargs
        assert isinstance(kwargs, dict)
        return psycopg.connect(**kwargs, autocommit=True)

    @contextmanager
    def schema_lock(self) -> Iterator[None]:
        """Held while this process creates eventsourcing's tables, types and functions:
        processes starting together on a new database would otherwise race on them
        (`CREATE TYPE` has no `IF NOT EXISTS`, and two `CREATE TABLE IF NOT EXISTS` at
        once can both miss the other and collide on the catalog's unique index). A session
        advisory lock on a connection of its own, so a pool of one cannot deadlock."""
        try:
            connection = self.connect()
        except psycopg.Error as error:
            raise _translated(error) from error
        # The schema's transactions commit before the lock is let go, even when a store
        # turn is open (the store is opened by a call of the store thread): in the turn
        # they would commit at its end, after the lock, and race again.
        outside, self._outside_turn = self._outside_turn, threading.get_ident()
        try:
            with connection:
                connection.execute("SELECT pg_advisory_lock(%s)", (SCHEMA_LOCK_KEY,))
                yield  # the lock ends with the connection
        finally:
            self._outside_turn = outside

    def _turn_connection(self) -> psycopg.Connection[DictRow] | None:
        if self._outside_turn == threading.get_ident():
            return None
        if self._turn is not None and self._turn[0] == threading.get_ident():
            return self._turn[1]
        turn = current_turn()
        if turn is None:
            return None
        stack = ExitStack()
        try:
            connection = stack.enter_context(super().get_connection())
            connection.execute("BEGIN")
        except psycopg.Error as error:
            stack.close()
            raise _translated(error) from error
        except BaseException:
            stack.close()
            raise
        self._turn = (threading.get_ident(), connection, stack)
        self.turn_prepared = False
        turn.join(self)
        return connection

    def end_turn(self, commit: bool) -> None:
        assert self._turn is not None
        _, connection, stack = self._turn
        self._turn = None
        self.turn_prepared = False
        try:
            if commit:
                connection.commit()
            else:
                connection.rollback()
        except psycopg.Error as error:
            try:
                connection.rollback()
            except psycopg.Error:
                pass  # the connection is gone: so is its transaction
            raise _translated(error) from error
        finally:
            stack.close()  # back to the pool (which discards a broken connection)


def _undo(connection: psycopg.Connection[DictRow]) -> None:
    try:
        connection.execute("ROLLBACK TO turn_call")
        connection.execute("RELEASE turn_call")
    except psycopg.Error:
        pass  # the connection is gone: the turn's commit reports it


class _SerialCreate(es_postgres.PostgresRecorder):
    """Creates its tables under the datastore's schema lock."""

    datastore: TurnPostgresDatastore

    def create_table(self) -> None:
        with self.datastore.schema_lock():
            super().create_table()


class TurnPostgresAggregateRecorder(_SerialCreate, es_postgres.PostgresAggregateRecorder):
    pass


class TurnPostgresApplicationRecorder(_SerialCreate, es_postgres.PostgresApplicationRecorder):
    pass


class TurnPostgresTrackingRecorder(_SerialCreate, es_postgres.PostgresTrackingRecorder):
    pass


class TurnPostgresProcessRecorder(_SerialCreate, es_postgres.PostgresProcessRecorder):
    """eventsourcing's process recorder; in a turn, its insert runs in the turn's savepoint.
    (Its own nested transaction would fail to release after the conflict it catches.)"""

    datastore: TurnPostgresDatastore

    def _lock_table(self, curs: psycopg.Cursor[DictRow]) -> None:
        if not (self.datastore.in_turn() and self.datastore.turn_prepared):
            super()._lock_table(curs)

    def _notify_channel(self, curs: psycopg.Cursor[DictRow]) -> None:
        datastore = self.datastore
        if not datastore.in_turn():
            super()._notify_channel(curs)
        elif not datastore.turn_prepared:
            super()._notify_channel(curs)  # after the lock (eventsourcing's order)
            datastore.turn_prepared = True

    def watch(self, on_write: Callable[[], None]) -> WriteWatch:
        """Call `on_write` (from a thread of its own) soon after any process commits
        events; `stop()` the returned watch."""
        return WriteWatch(self.datastore.connect, self.channel_name, on_write)

    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        if not self.datastore.in_turn():
            ids: Sequence[int] | None = super().insert_events(stored_events, **kwargs)
            return ids
        failure: Exception | None = None
        notification_ids: Sequence[int] | None = None
        with self.datastore.get_connection() as connection:
            with connection.pipeline() as pipeline:  # as eventsourcing does, less its BEGIN
                with connection.cursor() as cursor:
                    self._insert_events(cursor, stored_events, **kwargs)
                if stored_events:
                    with connection.cursor() as cursor:
                        try:
                            self._insert_stored_events(cursor, stored_events, **kwargs)
                            pipeline.sync()  # a conflict raises here
                            notification_ids = self._fetch_ids_after_insert_events(
                                cursor, stored_events, **kwargs
                            )
                        except Exception as error:
                            failure = error  # raised once the pipeline has ended
            if failure is not None:
                raise failure
        return notification_ids


class WriteWatch:
    """A thread LISTENing on the events table's channel (eventsourcing NOTIFYs it in every
    insert's transaction, so a notification arrives once the write has committed), calling
    `on_write` for each batch of notifications. Its own connection; when that breaks it
    connects again after `retry_s` (readers keep polling meanwhile, only slower)."""

    def __init__(
        self,
        connect: Callable[[], psycopg.Connection[Any]],
        channel: str,
        on_write: Callable[[], None],
        retry_s: float = 1.0,
    ) -> None:
        self._connect, self.channel, self.on_write = connect, channel, on_write
        self.retry_s = retry_s
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="codeexec-pg-watch", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stopped.is_set():
            try:
                with self._connect() as connection:
                    connection.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self.channel)))
                    self.on_write()  # writes made before LISTEN took effect
                    while not self._stopped.is_set():
                        if any(True for _ in connection.notifies(timeout=0.5, stop_after=1)):
                            self.on_write()
            except psycopg.Error as error:
                log.warning(
                    "listening for new events failed (%s); again in %.1fs", error, self.retry_s
                )
                self._stopped.wait(self.retry_s)

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join(2.0)


class Factory(es_postgres.PostgresFactory):
    aggregate_recorder_class = TurnPostgresAggregateRecorder
    application_recorder_class = TurnPostgresApplicationRecorder
    tracking_recorder_class = TurnPostgresTrackingRecorder
    process_recorder_class = TurnPostgresProcessRecorder

    def __init__(self, env: Any) -> None:
        super().__init__(env)
        self.datastore = TurnPostgresDatastore.adopt(self.datastore)
