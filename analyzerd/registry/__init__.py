"""Talking to OCI/Docker registries: ``client`` (aiohttp, I/O) and ``auth`` (pure)."""
