"""Errors of the ADB transports, in their own module so the sync protocol and the
transports can both raise them without importing each other."""

from __future__ import annotations

from collections.abc import Callable

Progress = Callable[[int, int], None]  # (bytes done, bytes total)


class TransportError(Exception):
    """Base of the transport errors; the message is one line."""


class ConnectionLost(TransportError):
    pass


class RemoteFailure(TransportError):
    pass


class DeviceUnreachable(TransportError):
    pass


class CommandTimeout(TransportError):
    pass
