"""StoreTurn: one turn of the store thread, in which a datastore merges its transactions.

Group commit. The store thread runs the calls waiting for it one after another inside a
turn. A datastore that supports it (the SQLite and PostgreSQL stores) joins the turn at its
first write: it begins one database transaction, runs every transaction of the turn's calls
in it as a savepoint (so each keeps its own atomicity: one that fails is rolled back alone,
and its caller gets its error), and commits once when the turn ends. Callers are answered
only after that commit, so durability is what it was; a turn whose commit fails answers
every one of its calls with that failure, and runs the `on_abort` actions registered by the
calls (in-memory state derived from what was not recorded is dropped).

A datastore without support ignores the turn: each of its transactions commits on its own.

A datastore may also commit the turn's transaction before the turn ends (PostgreSQL does, in
the same round trip as an insert that takes the events table's lock, so that no writer
elsewhere waits while this process goes on with its calls): it calls `checkpoint`, and
`wrote` for every write after it. The calls that ended with nothing unsaved are then
answered as they are, whatever the rest of the turn does; only the others fail if the
turn's last commit does."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Protocol

log = logging.getLogger(__name__)


class TurnMember(Protocol):
    """A datastore holding the turn's open transaction."""

    def end_turn(self, commit: bool) -> None:
        """Commit (raising if that fails; then nothing was recorded) or roll back."""


class StoreTurn:
    def __init__(self) -> None:
        self._members: list[TurnMember] = []
        self._on_abort: dict[Callable[[], object], None] = {}  # a set that keeps order
        self.checkpoints = 0
        """How often a member committed what the turn had written so far."""
        self.unsaved = False
        """Whether what a member did since it joined or since the last checkpoint is yet
        to be committed (by the turn's end)."""

    def join(self, member: TurnMember) -> None:
        self._members.append(member)
        self.unsaved = True

    def on_abort(self, action: Callable[[], object]) -> None:
        """Run `action` (in the store thread) if the turn's commit fails; once, however
        often it is registered."""
        self._on_abort[action] = None

    def checkpoint(self) -> None:
        """A member committed every write of the turn so far: the actions registered for
        a failed turn until now no longer apply (what they would undo is recorded)."""
        self.checkpoints += 1
        self.unsaved = False
        self._on_abort.clear()

    def wrote(self) -> None:
        """A member wrote after a checkpoint (called for every write: cheap)."""
        self.unsaved = True

    @property
    def open(self) -> bool:
        """Whether a datastore holds an uncommitted transaction for this turn."""
        return bool(self._members)

    def commit(self) -> None:
        """Commit every member's transaction; if one fails, roll back the others and
        raise (in practice one member: the event store)."""
        members, self._members = self._members, []
        for n, member in enumerate(members):
            try:
                member.end_turn(commit=True)
            except BaseException:
                for rest in members[n + 1 :]:
                    _quietly(rest.end_turn, False)
                raise
        self._on_abort.clear()

    def abort(self) -> None:
        """Roll back what is open, then run the actions registered for a failed turn."""
        members, self._members = self._members, []
        for member in members:
            _quietly(member.end_turn, False)
        actions, self._on_abort = self._on_abort, {}
        for action in actions:
            _quietly(action)


def _quietly(fn: Callable[..., object], *args: object) -> None:
    try:
        fn(*args)
    except Exception:
        log.exception("%r failed while a store turn was rolled back", fn)


_local = threading.local()


def current_turn() -> StoreTurn | None:
    """The turn this thread is in, if any (only the store thread has turns)."""
    turn: StoreTurn | None = getattr(_local, "turn", None)
    return turn


@contextmanager
def store_turn() -> Iterator[StoreTurn]:
    """Make a turn current in this thread; the caller commits or aborts it."""
    turn = StoreTurn()
    _local.turn = turn
    try:
        yield turn
    finally:
        _local.turn = None
