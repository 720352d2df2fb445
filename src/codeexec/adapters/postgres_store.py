"""eventsourcing's PostgreSQL persistence, with group commit in the store thread's turns.

`PERSISTENCE_MODULE=codeexec.adapters.postgres_store`, configured by eventsourcing's own
POSTGRES_* variables. In a turn of the store thread (`codeexec.ports.store_turn`), the first
write takes a connection from the pool and begins a transaction on it; every use of the
connection while that transaction is open runs in it as a savepoint (so each write keeps its
own atomicity, and a failed statement leaves the others be), and reads see the turn's
writes. Reads with nothing unsaved before them need no transaction: they run on their own
(READ COMMITTED would show them nothing else), without its BEGIN, savepoints and COMMIT.

An insert of events ends the transaction: eventsourcing locks the events table for each
(so that notification ids commit in order: readers of the log never pass an id that commits
later), and the lock lasts until the transaction ends. Held to the turn's end, it kept every
writer of every process waiting while this one went on loading and deciding for the turn's
other calls, on a CPU shared with the others (a convoy: docs/performance.md, "Distributed").
So an insert of events sends, in one pipeline, its savepoint, the lock, the NOTIFY, the
tracking record, the events, the savepoint's release and the COMMIT of the turn's
transaction (and its BEGIN if none was open): the lock is held for the server's part alone.
The turn then has a checkpoint (its calls so far are recorded: `codeexec.ports.store_turn`),
and its next write begins another transaction. A conflict rolls back the insert's savepoint
alone, as before; a COMMIT that fails loses the turn's unsaved writes, and the turn fails
(from its last checkpoint on). Other writes (tracking records alone, snapshots) take no
lock and commit with the next insert of events or at the turn's end."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from typing import Any, TypeVar

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

T = TypeVar("T")

SCHEMA_LOCK_KEY = 0x636F6465_65786563 & 0x7FFFFFFF_FFFFFFFF  # "codeexec", a bigint


def _translated(error: psycopg.Error) -> es.PersistenceError:
    """The eventsourcing error the datastore raises for a psycopg one."""
    return persistence_error(error, psycopg)(str(error))


class TurnPostgresDatastore(es_postgres.PostgresDatastore):
    """Joins the store thread's turn (see the module's docstring). Made from a built
    datastore by `adopt`, so that eventsourcing's factory keeps reading its settings."""

    _turn: tuple[int, psycopg.Connection[DictRow], ExitStack] | None = None
    _outside_turn: int | None = None  # a thread whose transactions commit on their own
    _in_transaction = False  # the turn's connection has a transaction open
    _lost: es.PersistenceError | None = None  # a checkpoint's COMMIT failed: the turn did

    @classmethod
    def adopt(cls, datastore: es_postgres.PostgresDatastore) -> TurnPostgresDatastore:
        datastore.__class__ = cls  # the same state, and the turn's behaviour
        assert isinstance(datastore, cls)
        return datastore

    @contextmanager
    def get_connection(self) -> Iterator[psycopg.Connection[DictRow]]:
        connection = self.turn_connection(write=False)
        if connection is None:
            with super().get_connection() as pooled:
                yield pooled
        elif not self._in_transaction:
            with _translating():  # a read with nothing unsaved: no transaction needed
                yield connection
        else:
            with self._savepoint(connection, commit=True):
                yield connection

    @contextmanager
    def transaction(self, *, commit: bool = False) -> Iterator[psycopg.Cursor[DictRow]]:
        connection = self.turn_connection(write=commit)
        if connection is None:
            with super().transaction(commit=commit) as cursor:
                yield cursor
        elif not self._in_transaction:
            with _translating(), connection.cursor() as cursor:
                yield cursor
        else:
            with self._savepoint(connection, commit=commit):
                yield connection.cursor()

    def insert_and_commit(
        self, send: Callable[[psycopg.Connection[DictRow]], Callable[[], T]]
    ) -> T:
        """In a turn: `send` the statements of an insert of events (the events table's
        lock among them) in a pipeline that also commits the turn's transaction, so that
        the lock is held no longer than the server takes; `send` returns how to read its
        result once the pipeline has synced. A failed statement rolls back this insert
        alone (its savepoint, or its own transaction when the turn had nothing unsaved); a
        failed COMMIT loses the turn's unsaved writes with it (the turn's end reports it)."""
        connection = self.turn_connection(write=True, begin=False)
        assert connection is not None
        unsaved = self._in_transaction  # the turn's earlier writes, committed with this
        failure: psycopg.Error | None = None
        read: Callable[[], T] | None = None
        try:
            with connection.pipeline() as pipeline:
                # Alone in its transaction, a failed insert rolls it all back: no savepoint.
                connection.execute("SAVEPOINT turn_call" if unsaved else "BEGIN")
                try:
                    read = send(connection)
                    if unsaved:
                        connection.execute("RELEASE turn_call")
                    connection.execute("COMMIT")
                    pipeline.sync()  # a conflict raises here
                except psycopg.Error as error:
                    failure = error  # raised once the pipeline has ended
        except psycopg.Error as error:
            failure = failure or error
        if failure is not None:
            if connection.info.transaction_status != TransactionStatus.INERROR:
                self._in_transaction = False  # the COMMIT failed, or the connection
                if unsaved:
                    self._lost = _translated(failure)  # and the turn's writes with it
            elif unsaved:
                _undo(connection)  # before the COMMIT: this insert alone failed
            else:
                _rollback(connection)  # this insert was all the transaction held
                self._in_transaction = False
            raise _translated(failure) from failure
        assert read is not None
        self._in_transaction = False
        turn = current_turn()
        assert turn is not None
        turn.checkpoint()
        return read()

    @contextmanager
    def _savepoint(
        self, connection: psycopg.Connection[DictRow], *, commit: bool
    ) -> Iterator[None]:
        """A use of the turn's connection, as a savepoint: a failed statement (a conflict,
        or a probe such as eventsourcing's for a type that exists) must not end the turn.
        Like a transaction's COMMIT, releasing it after an error it swallowed rolls it
        back."""
        try:
            connection.execute("SAVEPOINT turn_call")
        except psycopg.Error as error:
            raise _translated(error) from error
        try:
            yield
        except BaseException as failure:
            _undo(connection)
            if isinstance(failure, psycopg.Error):
                raise _translated(failure) from failure
            raise
        if commit and connection.info.transaction_status != TransactionStatus.INERROR:
            try:
                connection.execute("RELEASE turn_call")
            except psycopg.Error as error:
                _undo(connection)
                raise _translated(error) from error
        else:
            _undo(connection)

    def in_turn(self) -> bool:
        return self._outside_turn != threading.get_ident() and current_turn() is not None

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

    def turn_connection(
        self, *, write: bool, begin: bool = True
    ) -> psycopg.Connection[DictRow] | None:
        """The connection of this thread's turn; None outside a turn, and for a read
        before the turn's first write (the pool's connection serves it, as outside). A
        write joins the turn (taking a connection from the pool) and begins a transaction
        if none is open (the first write, or the first after a checkpoint), unless `begin`
        is False (the caller sends its BEGIN itself, in a pipeline)."""
        if self._outside_turn == threading.get_ident():
            return None
        turn = current_turn()
        if turn is None:
            return None
        if self._turn is not None and self._turn[0] == threading.get_ident():
            if self._lost is not None:
                raise es.OperationalError(f"the store turn's commit failed: {self._lost}")
            connection = self._turn[1]
        elif not write:
            return None
        else:
            stack = ExitStack()
            try:
                connection = stack.enter_context(super().get_connection())
            except BaseException:
                stack.close()
                raise
            self._turn = (threading.get_ident(), connection, stack)
            self._in_transaction = False
            turn.join(self)
        if write:
            turn.wrote()
            if begin and not self._in_transaction:
                try:
                    connection.execute("BEGIN")
                except psycopg.Error as error:
                    raise _translated(error) from error
                self._in_transaction = True
        return connection

    def end_turn(self, commit: bool) -> None:
        assert self._turn is not None
        _, connection, stack = self._turn
        self._turn = None
        lost, self._lost = self._lost, None
        in_transaction, self._in_transaction = self._in_transaction, False
        try:
            if lost is not None or not in_transaction:
                if in_transaction:
                    connection.rollback()  # what followed a lost commit goes with it
                if lost is not None and commit:
                    raise lost
                return
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


@contextmanager
def _translating() -> Iterator[None]:
    try:
        yield
    except psycopg.Error as error:
        raise _translated(error) from error


def _rollback(connection: psycopg.Connection[DictRow]) -> None:
    try:
        connection.execute("ROLLBACK")
    except psycopg.Error:
        pass  # the connection is gone: so is its transaction


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
    """Its inserts (no table lock: snapshots) are committed with the turn."""

    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        self.datastore.turn_connection(write=True)  # in a turn: its transaction, begun
        ids: Sequence[int] | None = super().insert_events(stored_events, **kwargs)
        return ids


class TurnPostgresApplicationRecorder(_SerialCreate, es_postgres.PostgresApplicationRecorder):
    pass


class TurnPostgresTrackingRecorder(_SerialCreate, es_postgres.PostgresTrackingRecorder):
    pass


class TurnPostgresProcessRecorder(_SerialCreate, es_postgres.PostgresProcessRecorder):
    """eventsourcing's process recorder; in a turn, an insert of events runs in a savepoint
    of the turn's transaction, which it commits (`TurnPostgresDatastore.insert_and_commit`).
    (Its own nested transaction would fail to release after the conflict it catches.)"""

    datastore: TurnPostgresDatastore

    def watch(self, on_write: Callable[[], None]) -> WriteWatch:
        """Call `on_write` (from a thread of its own) soon after any process commits
        events; `stop()` the returned watch."""
        return WriteWatch(self.datastore.connect, self.channel_name, on_write)

    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        datastore = self.datastore
        if not datastore.in_turn():
            ids: Sequence[int] | None = super().insert_events(stored_events, **kwargs)
            return ids
        if not stored_events:  # a tracking record alone: no lock, committed with the turn
            datastore.turn_connection(write=True)
            with datastore.get_connection() as connection, connection.cursor() as cursor:
                self._insert_events(cursor, stored_events, **kwargs)
            return None

        def send(connection: psycopg.Connection[DictRow]) -> Callable[[], Sequence[int]]:
            with connection.cursor() as cursor:  # as eventsourcing does, less its BEGIN
                self._insert_events(cursor, stored_events, **kwargs)  # the tracking record
            cursor = connection.cursor()
            self._insert_stored_events(cursor, stored_events, **kwargs)  # lock, NOTIFY, insert

            def ids() -> Sequence[int]:
                with cursor:
                    found = self._fetch_ids_after_insert_events(cursor, stored_events, **kwargs)
                    return list(found or ())

            return ids

        return datastore.insert_and_commit(send)


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
