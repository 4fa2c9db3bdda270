"""What a job request must be, wherever it comes from: ``analyzerd submit`` and
``POST /v1/jobs`` both check their input here, so both refuse the same things with the
same words (the message names the field)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from .errors import InvalidJobError, InvalidReferenceError
from .model import Platform
from .reference import canonical_source, parse_reference

__all__ = ["JobRequest", "MAX_PLATFORM_LENGTH", "validate_job_request"]

#: The longest platform accepted: real ones are a few words (linux/arm64/v8); this only
#: keeps a hostile request's value out of the job table and the logs.
MAX_PLATFORM_LENGTH: Final = 100


@dataclass(frozen=True, slots=True, kw_only=True)
class JobRequest:
    """Images to queue, each reference as given, and the platform, normalized."""

    references: tuple[str, ...]
    platform: str | None = None


def validate_job_request(references: object, platform: object = None, *, max_references: int | None = None,
                         references_field: str = "images", platform_field: str = "platform") -> JobRequest:
    """Check references (a non-empty list of image reference strings) and platform (None or
    ``os/arch[/variant]``); raises InvalidJobError naming the field (``images[2]``,
    ``platform``, or the names given: the CLI's are ``REF`` and ``--platform``)."""
    if not isinstance(references, (list, tuple)) or not references:
        raise InvalidJobError(references_field, "expected a list of one or more image references")
    if max_references is not None and len(references) > max_references:
        raise InvalidJobError(references_field, f"at most {max_references} images per request, "
                                                f"got {len(references)}")
    canonical = []
    for i, reference in enumerate(references):
        where = f"{references_field}[{i}]"
        if not isinstance(reference, str):
            raise InvalidJobError(where, f"expected an image reference (a string), got {type(reference).__name__}")
        try:
            reference = canonical_source(reference)
            canonical.append(reference)
            parse_reference(reference)
        except InvalidReferenceError as exc:
            error = InvalidJobError(where, exc.message, hint=exc.hint)
            error.reference = exc.reference  # the documented code for a bad reference stays
            raise error from None
    if platform is None:
        return JobRequest(references=tuple(canonical))
    if not isinstance(platform, str):
        raise InvalidJobError(platform_field, f"expected os/architecture[/variant] (a string), "
                                              f"got {type(platform).__name__}")
    if len(platform) > MAX_PLATFORM_LENGTH:
        raise InvalidJobError(platform_field, f"longer than {MAX_PLATFORM_LENGTH} characters")
    try:
        parsed = Platform.parse(platform)
    except ValueError as exc:
        raise InvalidJobError(platform_field, str(exc), hint="for example linux/amd64 or linux/arm64/v8") from None
    return JobRequest(references=tuple(canonical), platform=str(parsed))
