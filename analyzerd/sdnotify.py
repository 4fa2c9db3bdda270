"""systemd's service notification protocol (sd_notify(3)): a datagram of "KEY=value" lines to
the socket named by $NOTIFY_SOCKET. A few lines instead of a dependency. Outside systemd
(no $NOTIFY_SOCKET) every call does nothing."""

from __future__ import annotations

import os
import socket

__all__ = ["Notifier", "watchdog_interval"]


class Notifier:
    def __init__(self, address: str | None = None) -> None:
        address = os.environ.get("NOTIFY_SOCKET") if address is None else address
        if address and address.startswith("@"):
            address = "\0" + address[1:]  # Linux abstract namespace
        self._address = address or None

    @property
    def enabled(self) -> bool:
        return self._address is not None

    def notify(self, *states: str) -> None:
        """Send e.g. "READY=1", "STOPPING=1", "WATCHDOG=1", "STATUS=…". A failure to send
        is not an error of the daemon's: systemd may be gone during shutdown."""
        if self._address is None:
            return
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.sendto("\n".join(states).encode(), self._address)
        except OSError:
            pass


def watchdog_interval() -> float | None:
    """How often to send WATCHDOG=1 (half of $WATCHDOG_USEC, as sd_watchdog_enabled(3)
    advises), or None when systemd does not watch this process."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    try:
        return max(int(usec) / 2e6, 0.1)
    except ValueError:
        return None
