"""Run one demo service: `python -m demo_services billing|email|crm --port N [--fail M=CODE[xN]]`.

Prints `READY <port>` once serving (port 0 picks a free one), then serves until stopped.
"""

from __future__ import annotations

import argparse
import asyncio
import signal

from demo_services import billing, crm, mailer
from demo_services.behaviour import Faults
from demo_services.grpc_server import start


async def _serve_grpc(name: str, faults: Faults, port: int, host: str) -> None:
    module = billing if name == "billing" else mailer
    servicer = billing.Billing(faults) if name == "billing" else mailer.Mailer(faults)
    server, bound = await start([module.SERVICE], module.add(servicer), port, host)
    print(f"READY {bound}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.stop(grace=1)


def main() -> None:
    parser = argparse.ArgumentParser(prog="demo_services")
    parser.add_argument("service", choices=["billing", "email", "crm"])
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
    args = parser.parse_args()
    faults = Faults.from_flags(args.fail, args.delay)
    if args.service == "crm":
        server = crm.Crm(faults).serve(args.port, args.host)
        print(f"READY {server.server_address[1]}", flush=True)
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
    asyncio.run(_serve_grpc(args.service, faults, args.port, args.host))


if __name__ == "__main__":
    main()
