"""Whether a failed job is tried again, and when: a pure policy.

Transient failures (a registry's 5xx or 429, a network error, a busy database) are retried
with exponential backoff up to ``max_attempts``; everything else (manifest unknown,
unauthorized, a corrupt layer, a limit crossed) fails the job at once.
"""

from __future__ import annotations

from typing import Final

from .errors import RegistryError, StoreError

__all__ = ["MAX_BACKOFF_SECONDS", "retry_delay"]

#: The longest wait between two tries of a job.
MAX_BACKOFF_SECONDS: Final = 600.0


def retry_delay(error: BaseException, attempts: int, max_attempts: int, backoff_seconds: float) -> float | None:
    """Seconds to wait before the next try, or None: the job fails now. ``attempts``: tries
    made so far, this one included."""
    if attempts >= max_attempts:
        return None
    transient = (isinstance(error, RegistryError) and error.temporary) or isinstance(error, StoreError) \
        or isinstance(error, OSError)
    if not transient:
        return None
    return min(MAX_BACKOFF_SECONDS, backoff_seconds * 2 ** (attempts - 1))
