"""Client TLS towards a service: the CA it trusts and, for mTLS, the client's certificate."""

from __future__ import annotations

import os
import ssl
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass

from maestro_server.model.workflow import Service
from maestro_server.transports.base import CallError


@dataclass(frozen=True, slots=True)
class ClientTls:
    """PEM material for one service's connections."""

    ca: bytes | None
    cert: bytes | None
    key: bytes | None
    server_name: str | None

    @classmethod
    def of(cls, service: Service, secrets: Mapping[str, str]) -> ClientTls | None:
        """The TLS material of a service, or None for plaintext."""
        tls = service.tls
        if tls is None:
            return None
        try:
            cert = secrets[tls.client_cert_secret].encode() if tls.client_cert_secret else None
            key = secrets[tls.client_key_secret].encode() if tls.client_key_secret else None
        except KeyError as exc:
            raise CallError(
                "SCHEMA_ERROR",
                f"service '{service.name}': TLS secret {exc} is not set",
                service=service.name,
            ) from None
        ca = service.files.get(tls.ca_file) if tls.ca_file else None
        return cls(ca, cert, key, tls.server_name)

    def ssl_context(self) -> ssl.SSLContext:
        """An SSLContext for httpx: the CA (or the system's), and the client certificate."""
        context = ssl.create_default_context(cadata=self.ca.decode() if self.ca else None)
        if self.cert is not None and self.key is not None:
            # The ssl module loads certificates from files only: write them briefly, privately.
            with tempfile.TemporaryDirectory() as folder:
                cert, key = os.path.join(folder, "cert.pem"), os.path.join(folder, "key.pem")
                for path, data in ((cert, self.cert), (key, self.key)):
                    with open(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600), "wb") as file:
                        file.write(data)
                context.load_cert_chain(cert, key)
        return context
