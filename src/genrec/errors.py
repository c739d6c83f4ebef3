"""The one exception tree of genrec.

Every error genrec raises on purpose derives from :class:`GenrecError`; the CLI maps it to a
one-line message and a non-zero exit code, never a traceback::

    GenrecError
    ├── ConfigError          a bad hyper-parameter, option, argument or unknown config key
    ├── DataError            a malformed file, an empty or inconsistent dataset
    │   └── UnknownIdError   user or item ids that are not in the vocabulary
    ├── SourceError          a dataset could not be fetched or its cache is unusable
    ├── NotFittedError       a model used before ``fit`` (or ``load``)
    ├── ArtifactError        a saved model that cannot be read back
    │   └── ArtifactDataError  a saved model trained on other data than the data given
    ├── MissingExtraError    an optional dependency is not installed (names the pip command)
    ├── LLMError             a language-model backend failed (later issues)
    └── DistributedError     a process of a data-parallel run failed, died or timed out

Messages say what was wrong, which values are allowed and how to fix it.
"""

from __future__ import annotations


class GenrecError(Exception):
    """Base class of every error genrec raises deliberately."""


class ConfigError(GenrecError, ValueError):
    """A configuration value, option or argument is invalid."""


class DataError(GenrecError, ValueError):
    """Input data is malformed, empty or inconsistent."""


class UnknownIdError(DataError):
    """External ids that the vocabulary does not contain."""

    def __init__(self, message: str, unknown: list[str] | None = None):
        super().__init__(message)
        self.unknown = list(unknown or [])


class SourceError(GenrecError):
    """A dataset source could not be fetched, verified or read."""


class NotFittedError(GenrecError, RuntimeError):
    """A model was asked to score before it was fitted or loaded."""


class ArtifactError(GenrecError):
    """A saved artifact is missing, corrupt or from an incompatible model."""


class ArtifactDataError(ArtifactError):
    """A saved model was trained on other data than the data it is loaded for: retrain it."""


class MissingExtraError(GenrecError, ImportError):
    """An optional dependency is missing; the message names the install command."""


class LLMError(GenrecError):
    """A language-model backend failed."""


class DistributedError(GenrecError, RuntimeError):
    """A process of a data-parallel run failed, died or timed out (the message names which)."""


def require(module: str, extra: str):
    """Import an optional dependency or raise :class:`MissingExtraError` naming the extra."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingExtraError(
            f"{module!r} is not installed; install it with: pip install 'genrec[{extra}]'"
        ) from exc
