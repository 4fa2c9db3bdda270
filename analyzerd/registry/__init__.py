"""Talking to OCI/Docker registries."""

from .client import RegistryClient, RetryPolicy

__all__ = ["RegistryClient", "RetryPolicy"]
