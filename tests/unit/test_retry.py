"""The retry policy: transient failures are tried again with exponential backoff up to
max_attempts; permanent ones fail the job at once."""

import pytest

from analyzerd.errors import (ArchiveError, AuthError, IntegrityError, LimitError, ManifestError, NotFoundError,
                              RegistryError, StoreError)
from analyzerd.retry import MAX_BACKOFF_SECONDS, retry_delay


@pytest.mark.parametrize("error, attempts, expected", [
    (RegistryError("503 from the registry", temporary=True), 1, 10.0),
    (RegistryError("429 too many requests", temporary=True), 2, 20.0),
    (RegistryError("connection refused", temporary=True), 3, None),  # max_attempts reached
    (StoreError("database is locked"), 1, 10.0),
    (ConnectionResetError("reset by peer"), 2, 20.0),
    (RegistryError("400 bad request", temporary=False), 1, None),
    (NotFoundError("manifest unknown"), 1, None),
    (AuthError("unauthorized"), 1, None),
    (IntegrityError("digest mismatch"), 1, None),  # a corrupt layer stays corrupt
    (ArchiveError("truncated gzip"), 1, None),
    (ManifestError("no such platform"), 1, None),
    (LimitError("more than 2000000 entries"), 1, None),
    (ValueError("a bug"), 1, None),
])
def test_retry_decisions(error, attempts, expected):
    assert retry_delay(error, attempts, max_attempts=3, backoff_seconds=10) == expected


def test_the_backoff_is_capped():
    error = RegistryError("503", temporary=True)
    assert retry_delay(error, 30, max_attempts=100, backoff_seconds=10) == MAX_BACKOFF_SECONDS
