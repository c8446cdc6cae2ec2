"""What a handler of the Orchestrator service needs from its call, whichever face it came by.

grpc.aio's ServicerContext has this shape; the HTTP face (Connect) passes an adapter with the
same shape, so one set of handlers serves both.
"""

from __future__ import annotations

from typing import Any, Never, Protocol

import grpc


class CallContext(Protocol):
    """The request metadata, and the two ways to end a call with an error."""

    def invocation_metadata(self) -> Any:
        """The request's metadata as (key, value) pairs, keys in lower case."""
        ...

    async def abort(self, code: grpc.StatusCode, details: str = "") -> Never:
        """End the call with a status code and message."""
        ...

    async def abort_with_status(self, status: grpc.Status) -> Never:
        """End the call with a full status, its rich details in the trailing metadata."""
        ...
