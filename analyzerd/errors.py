"""The one exception tree of analyzerd.

This module is a leaf: it imports nothing from analyzerd, so every layer may raise these.

    AnalyzerError                 # base; the class docstring is the default message
    ├── ConfigError               # bad config file/key/value; never retried
    ├── InvalidReferenceError     # an image reference that cannot be parsed
    ├── InvalidJobError           # a job request (CLI submit, POST /v1/jobs) with a bad field
    ├── RegistryError             # the registry said no, or could not be reached
    │   ├── AuthError             # 401/403
    │   └── NotFoundError         # manifest/blob unknown, 404
    ├── ManifestError             # a manifest/index/config we cannot use
    ├── IntegrityError            # bytes do not match the digest (or size) that named them
    ├── ArchiveError              # corrupt or unsupported compression/tar stream
    ├── LimitError                # a hostile input crossed a named limit
    │   └── TimeLimitError        # a job ran past image_analyze_timeout_seconds
    └── StoreError                # the database failed; the cause is kept in __cause__

Each error carries a kebab-case ``reference`` (shown by the CLI as ``error: <reference>``)
and an optional ``hint``. ``temporary`` says whether retrying may help.
"""

from __future__ import annotations

__all__ = [
    "AnalyzerError",
    "ArchiveError",
    "AuthError",
    "ConfigError",
    "IntegrityError",
    "LimitError",
    "ManifestError",
    "NotFoundError",
    "InvalidJobError",
    "InvalidReferenceError",
    "RegistryError",
    "StoreError",
    "TimeLimitError",
]


class AnalyzerError(Exception):
    """analyzerd failed."""

    reference = "analyzer-error"
    hint: str | None = None
    temporary = False

    def __init__(self, message: str | None = None, *, hint: str | None = None) -> None:
        super().__init__(message or (self.__doc__ or "").strip())
        if hint is not None:
            self.hint = hint

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else ""


class ConfigError(AnalyzerError):
    """The configuration is invalid."""

    reference = "invalid-config"


class InvalidReferenceError(AnalyzerError):
    """The image reference cannot be parsed."""

    reference = "invalid-reference"
    hint = "Write references as [host[:port]/]repository[:tag][@sha256:digest], oci:DIR[:TAG]."


class InvalidJobError(AnalyzerError):
    """The job request is not valid."""

    reference = "invalid-job"

    def __init__(self, field: str, message: str, *, hint: str | None = None) -> None:
        super().__init__(f"{field}: {message}", hint=hint)
        self.field = field


class RegistryError(AnalyzerError):
    """The registry request failed."""

    reference = "registry-error"

    def __init__(
        self,
        message: str | None = None,
        *,
        status: int | None = None,
        code: str | None = None,
        temporary: bool = False,
        hint: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.status = status
        self.code = code
        self.temporary = temporary


class AuthError(RegistryError):
    """The registry refused the credentials."""

    reference = "unauthorized"


class NotFoundError(RegistryError):
    """The registry does not have what was asked for."""

    reference = "not-found"


class PlatformNotFoundError(AnalyzerError):
    """The image has no manifest for the platform asked for."""

    reference = "platform-not-found"


class InvalidArgumentError(AnalyzerError):
    """A command-line argument is invalid."""

    reference = "invalid-argument"


class ManifestError(AnalyzerError):
    """The image manifest cannot be used."""

    reference = "invalid-manifest"


class IntegrityError(AnalyzerError):
    """Downloaded bytes do not match the digest that names them."""

    reference = "digest-mismatch"
    # A flipped bit in transit is worth one more try; a registry that serves wrong bytes twice is not.
    temporary = True


class ArchiveError(AnalyzerError):
    """The layer archive is corrupt or unsupported."""

    reference = "corrupt-layer"


class LimitError(AnalyzerError):
    """The input crossed a configured limit."""

    reference = "limit-exceeded"


class TimeLimitError(LimitError):
    """The analysis ran past its wall-clock limit."""

    # Not temporary: the same image from the same registry would run out of time again.
    reference = "timeout"


class StoreError(AnalyzerError):
    """The results database failed."""

    reference = "database-error"
