"""eventsourcing's PostgreSQL persistence, with group commit in the store thread's turns.

`PERSISTENCE_MODULE=codeexec.adapters.postgres_store`, configured by eventsourcing's own
POSTGRES_* variables. In a turn of the store thread (`codeexec.ports.store_turn`), the first
use of a connection takes one from the pool and begins a transaction on it; every
transaction of the turn's calls then runs in it (psycopg nests them as savepoints, so each
keeps its own atomicity), their reads see the turn's writes, and the turn commits once. The
table lock eventsourcing takes for each insert (so that notification ids commit in order)
is then held until that one commit, which keeps the order it guarantees."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import psycopg
from eventsourcing import persistence as es
from eventsourcing import postgres as es_postgres  # a module: one factory class found here
from psycopg.rows import DictRow

from codeexec.ports.store_turn import current_turn

_ERRORS: tuple[tuple[type[psycopg.Error], type[es.PersistenceError]], ...] = (
    (psycopg.InterfaceError, es.InterfaceError),
    (psycopg.OperationalError, es.OperationalError),
    (psycopg.DataError, es.DataError),
    (psycopg.IntegrityError, es.IntegrityError),
    (psycopg.InternalError, es.InternalError),
    (psycopg.ProgrammingError, es.ProgrammingError),
    (psycopg.NotSupportedError, es.NotSupportedError),
    (psycopg.DatabaseError, es.DatabaseError),
)


def _translated(error: psycopg.Error) -> es.PersistenceError:
    """The eventsourcing error the datastore raises for a psycopg one."""
    kind = next((ours for theirs, ours in _ERRORS if isinstance(error, theirs)), None)
    return (kind or es.PersistenceError)(str(error))


class TurnPostgresDatastore(es_postgres.PostgresDatastore):
    """Joins the store thread's turn (see the module's docstring). Made from a built
    datastore by `adopt`, so that eventsourcing's factory keeps reading its settings."""

    _turn: tuple[int, psycopg.Connection[DictRow], ExitStack] | None = None

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
        try:
            yield connection
        except psycopg.Error as error:
            raise _translated(error) from error

    def _turn_connection(self) -> psycopg.Connection[DictRow] | None:
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
        turn.join(self)
        return connection

    def end_turn(self, commit: bool) -> None:
        assert self._turn is not None
        _, connection, stack = self._turn
        self._turn = None
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


class Factory(es_postgres.PostgresFactory):
    def __init__(self, env: Any) -> None:
        super().__init__(env)
        self.datastore = TurnPostgresDatastore.adopt(self.datastore)
