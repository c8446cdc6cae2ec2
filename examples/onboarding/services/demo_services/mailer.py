"""The email service: templated mail, recorded instead of sent."""

from __future__ import annotations

import itertools
from typing import Any

import grpc

from demo_services.grpc_server import Context, DemoService, Rejected, load

protos, services = load("mailer/v1/mailer.proto")
SERVICE = "mailer.v1.MailerService"


class Mailer(DemoService, services.MailerServiceServicer):  # type: ignore[misc,name-defined]
    """Sent mail in memory."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sent: list[Any] = []
        self._ids = itertools.count(1)

    async def SendTemplate(self, request: Any, context: Context) -> Any:
        def act() -> Any:
            if not request.to or "@" not in request.to:
                raise Rejected(grpc.StatusCode.INVALID_ARGUMENT, f"bad address {request.to!r}")
            message_id = f"msg_{next(self._ids):04d}"
            self.sent.append(
                protos.SentEmail(
                    message_id=message_id,
                    to=request.to,
                    template=request.template,
                    vars=request.vars,
                )
            )
            return protos.SendTemplateResponse(message_id=message_id)

        return await self.guarded("SendTemplate", request, context, act)

    async def ListSent(self, request: Any, context: Context) -> Any:
        return protos.ListSentResponse(emails=self.sent)


def add(servicer: Mailer) -> Any:
    """The function that adds the servicer to a server."""
    return lambda server: services.add_MailerServiceServicer_to_server(servicer, server)
