"""MongoSettings: where the event store lives and how durable a write must be, from MONGO_*.

The persistence module reads eventsourcing-style variables (as its PostgreSQL module reads
POSTGRES_*): MONGO_URL (a standard connection string), MONGO_DB, MONGO_WRITE_CONCERN
(`majority` by default, or a number of members), MONGO_READ_CONCERN (`majority` by default,
or `local`), MONGO_GAP_TIMEOUT_S (how long a reader waits for a position another writer
allocated before fencing it off as abandoned, see `codeexec_mongo.commit_log`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from pymongo.read_concern import ReadConcern
from pymongo.uri_parser import parse_uri
from pymongo.write_concern import WriteConcern

MONGO_URL = "MONGO_URL"
MONGO_DB = "MONGO_DB"
MONGO_WRITE_CONCERN = "MONGO_WRITE_CONCERN"
MONGO_READ_CONCERN = "MONGO_READ_CONCERN"
MONGO_GAP_TIMEOUT_S = "MONGO_GAP_TIMEOUT_S"
READ_CONCERNS = ("majority", "local")


class MongoSettingsError(ValueError):
    """A MONGO_* value the store cannot use; the message names the variable."""


@dataclass(frozen=True)
class MongoSettings:
    url: str
    db: str
    write_concern: str = "majority"
    read_concern: str = "majority"
    gap_timeout_s: float = 5.0

    def __post_init__(self) -> None:
        try:
            parse_uri(self.url)
        except Exception as error:  # pymongo raises InvalidURI, ConfigurationError, ValueError
            raise MongoSettingsError(
                f"{MONGO_URL} must be a MongoDB connection string (mongodb://host:port/...), "
                f"not {self.url!r}: {error}"
            ) from None
        if not self.db or any(c in self.db for c in '/\\. "$') or len(self.db) > 63:
            raise MongoSettingsError(
                f'{MONGO_DB} must be a database name (1-63 characters, none of / \\ . " $ '
                f"or space), not {self.db!r}"
            )
        w = self.write_concern
        if w != "majority" and not (w.isdigit() and int(w) >= 1):
            raise MongoSettingsError(
                f"{MONGO_WRITE_CONCERN} must be majority or a number of members >= 1, not {w!r}"
            )
        if self.read_concern not in READ_CONCERNS:
            raise MongoSettingsError(
                f"{MONGO_READ_CONCERN} must be one of {', '.join(READ_CONCERNS)}, "
                f"not {self.read_concern!r}"
            )
        if not self.gap_timeout_s > 0:
            raise MongoSettingsError(
                f"{MONGO_GAP_TIMEOUT_S} must be a positive number of seconds, "
                f"not {self.gap_timeout_s!r}"
            )

    @classmethod
    def from_env(cls, env: Mapping[str, str], prefix: str = "") -> MongoSettings:
        """From MONGO_* (or `prefix`MONGO_*: errors name the variables as they were given)."""

        def get(name: str) -> str:
            return (env.get(prefix + name) or "").strip()

        try:
            url, db = get(MONGO_URL), get(MONGO_DB)
            if not url:
                raise MongoSettingsError(f"the MongoDB event store needs {MONGO_URL}")
            if not db:
                raise MongoSettingsError(f"the MongoDB event store needs {MONGO_DB}")
            gap = get(MONGO_GAP_TIMEOUT_S) or "5"
            try:
                gap_timeout_s = float(gap)
            except ValueError:
                raise MongoSettingsError(
                    f"{MONGO_GAP_TIMEOUT_S} must be a number of seconds, not {gap!r}"
                ) from None
            return cls(
                url=url,
                db=db,
                write_concern=get(MONGO_WRITE_CONCERN).lower() or "majority",
                read_concern=get(MONGO_READ_CONCERN).lower() or "majority",
                gap_timeout_s=gap_timeout_s,
            )
        except MongoSettingsError as error:
            if not prefix:
                raise
            raise MongoSettingsError(str(error).replace("MONGO_", prefix + "MONGO_")) from None

    def env(self) -> dict[str, str]:
        """The variables the persistence module reads, for eventsourcing's environment."""
        return {
            MONGO_URL: self.url,
            MONGO_DB: self.db,
            MONGO_WRITE_CONCERN: self.write_concern,
            MONGO_READ_CONCERN: self.read_concern,
            MONGO_GAP_TIMEOUT_S: repr(self.gap_timeout_s),
        }

    def concerns(self) -> tuple[WriteConcern, ReadConcern]:
        w: str | int = self.write_concern
        w = int(w) if isinstance(w, str) and w.isdigit() else w
        return WriteConcern(w=w), ReadConcern(self.read_concern)
