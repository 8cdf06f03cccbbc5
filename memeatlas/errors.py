"""Exceptions that the CLI turns into a one-line error and exit code 1.

Library code raises these for problems a user can fix (bad input, missing
model, locked database); anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class MemeatlasError(Exception):
    """Base class: a user-facing problem with a message that says what to do."""


class DatabaseLockedError(MemeatlasError):
    """Another process holds the DuckDB file open for writing."""


class DatabaseNotFoundError(MemeatlasError):
    """A read-only command was pointed at a database file that does not exist."""


class ReadOnlyViolation(MemeatlasError):
    """A write statement was sent to a read-only command such as `memeatlas sql`."""


class InputError(MemeatlasError):
    """A file, manifest, option or row given by the user cannot be used as is."""


class ModelNotFoundError(MemeatlasError):
    """A model id or directory could not be loaded."""


class BackendError(MemeatlasError):
    """A backend name is unknown or its optional dependency is missing."""


class MismatchError(MemeatlasError):
    """New work conflicts with what is stored (e.g. another model in an existing space)."""


class NotFoundError(MemeatlasError):
    """A run, space, pair set or other named object does not exist in the store."""


class SchemaVersionError(MemeatlasError):
    """The store's schema is older (run `memeatlas migrate`) or newer than this memeatlas."""
