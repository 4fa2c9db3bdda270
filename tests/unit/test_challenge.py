"""WWW-Authenticate challenges as registries write them, and as a hostile one might."""

from __future__ import annotations

from analyzerd.registry.auth import parse_challenge


def test_bearer_challenge_with_quoted_and_bare_values() -> None:
    # Docker Hub's form, with an escaped quote and a bare value as RFC 7235 allows
    challenge = parse_challenge('Bearer realm="https://auth.docker.io/token",service=registry.docker.io,'
                                'scope="repository:library/debian:pull",error="a \\"b\\""')
    assert challenge.scheme == "bearer"
    assert challenge.params == {"realm": "https://auth.docker.io/token", "service": "registry.docker.io",
                                "scope": "repository:library/debian:pull", "error": 'a \\"b\\"'}


def test_a_key_starts_only_where_a_word_starts() -> None:
    # "xrealm=..." is not a realm; a value's text is not read as keys
    challenge = parse_challenge('Basic xrealm="evil", realm="ok", service="a realm=evil"')
    assert challenge.params == {"xrealm": "evil", "realm": "ok", "service": "a realm=evil"}


def test_unterminated_quote_is_a_bare_value() -> None:
    assert parse_challenge('Bearer realm="https://r/token').params == {"realm": '"https://r/token'}
