"""The exceptions the library raises.

Every failure a user can cause or fix (a missing path, a corrupt index, a bad eval file) is an
`AssistantError` with a message written for that user. The CLI prints the message as one line and
exits non-zero; anything else is a bug and keeps its traceback.
"""


class AssistantError(Exception):
    """Base class: a problem the user can understand and act on."""


class ConfigError(AssistantError):
    """A setting has a value we cannot use."""


class InputError(AssistantError):
    """A path, question or file given to us cannot be used."""


class UnreadableFile(InputError):
    """A file ingest skips, with the reason shown to the user (and what would make it readable)."""


class StoreError(AssistantError):
    """The database cannot be opened, migrated or written."""


class DatabaseDamagedError(StoreError):
    """The database file is corrupt (SQLite: malformed or not a database); `repair` rebuilds it."""


class IndexStateError(AssistantError):
    """The vector index is missing, corrupt or out of step with the store."""


class BusyError(AssistantError):
    """Another process holds the lock on this home (for example a running ingest)."""


class ModelError(AssistantError):
    """A model cannot be found or loaded."""


class EvalDataError(InputError):
    """An evaluation file is malformed; the message names the file and line."""
