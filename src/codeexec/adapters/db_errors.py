"""The eventsourcing error class for a DB-API driver's error (sqlite3, psycopg).

Both drivers name their errors as PEP 249 does, and eventsourcing mirrors those names, so
one table by name serves every driver (the most specific classes first)."""

from __future__ import annotations

from types import ModuleType

from eventsourcing import persistence as es

_NAMES = (
    "InterfaceError",
    "DataError",
    "OperationalError",
    "IntegrityError",
    "InternalError",
    "ProgrammingError",
    "NotSupportedError",
    "DatabaseError",
)


def persistence_error(error: BaseException, driver: ModuleType) -> type[es.PersistenceError]:
    """The class eventsourcing raises where `driver` raised `error`."""
    for name in _NAMES:
        if isinstance(error, getattr(driver, name)):
            kind: type[es.PersistenceError] = getattr(es, name)
            return kind
    return es.PersistenceError
