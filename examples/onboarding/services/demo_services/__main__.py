"""Run one demo service: `python -m demo_services billing|email|inventory|crm --port N
[--fail M=CODE[xN]]`.

Prints `READY <port>` once serving (port 0 picks a free one), then serves until stopped; with
`--admin-port N`, `READY <port> ADMIN <admin port>` and the admin API of admin.py.
"""

from __future__ import annotations

import argparse
import asyncio
import signal

from demo_services import billing, crm, inventory, mailer
from demo_services.admin import serve_admin
from demo_services.behaviour import Faults, Ledger
from demo_services.grpc_server import start


def _ready(port: int, faults: Faults, ledger: Ledger, admin_port: int | None, host: str) -> None:
    """Print `READY <port>`, plus ` ADMIN <port>` when the admin API is on."""
    if admin_port is None:
        print(f"READY {port}", flush=True)
        return
    admin = serve_admin(faults, ledger, admin_port, host)
    print(f"READY {port} ADMIN {admin.server_address[1]}", flush=True)


async def _serve_grpc(
    name: str, faults: Faults, port: int, host: str, admin_port: int | None
) -> None:
    servicer: billing.Billing | mailer.Mailer | inventory.Inventory
    if name == "billing":
        servicer = billing.Billing(faults)
        service_name, add = billing.SERVICE, billing.add(servicer)
    elif name == "email":
        servicer = mailer.Mailer(faults)
        service_name, add = mailer.SERVICE, mailer.add(servicer)
    else:
        servicer = inventory.Inventory(faults)
        service_name, add = inventory.SERVICE, inventory.add(servicer)
    server, bound = await start([service_name], add, port, host)
    _ready(bound, faults, servicer.ledger, admin_port, host)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.stop(grace=1)


def main() -> None:
    parser = argparse.ArgumentParser(prog="demo_services")
    parser.add_argument("service", choices=["billing", "email", "inventory", "crm"])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument(
        "--fail",
        action="append",
        default=[],
        metavar="METHOD=CODE[xN]",
        help="fail METHOD with CODE (the next N calls, or always)",
    )
    parser.add_argument("--delay", action="append", default=[], metavar="METHOD=SECONDS")
    parser.add_argument(
        "--admin-port", type=int, default=None, help="serve the admin API (ledger, faults)"
    )
    args = parser.parse_args()
    faults = Faults.from_flags(args.fail, args.delay)
    if args.service == "crm":
        service = crm.Crm(faults)
        server = service.serve(args.port, args.host)
        _ready(server.server_address[1], faults, service.ledger, args.admin_port, args.host)
        stop = asyncio.Event()

        async def wait() -> None:
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
            await stop.wait()

        asyncio.run(wait())
        server.shutdown()
        server.server_close()
        return
    asyncio.run(_serve_grpc(args.service, faults, args.port, args.host, args.admin_port))


if __name__ == "__main__":
    main()
