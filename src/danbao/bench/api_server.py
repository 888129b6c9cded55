"""A server process for `danbao bench api`: the danbao API, or a bare endpoint of the same
framework returning a constant JSON body (the framework's own ceiling).

It binds a loopback port, prints one JSON line ({"port": ..., "admin_key": ...}) when it
is ready, and serves until terminated. Run: python -m danbao.bench.api_server danbao URL
"""

from __future__ import annotations

import json
import socket
import sys

import uvicorn
from fastapi import FastAPI

from danbao.api.serving import ready_to_serve


def bare_app() -> FastAPI:
    # The framework configured as danbao configures it (FastAPI's own telemetry off), so
    # the two figures differ only by what danbao does.
    from danbao.api.app import TELEMETRY_OFF

    app = FastAPI(telemetry=TELEMETRY_OFF)

    # `async def`, as danbao's hot routes are: a plain `def` would add a thread-pool hop
    # per request (about 1.7x slower here) and understate the framework's ceiling.
    @app.get("/bare")
    async def bare() -> dict[str, bool]:
        return {"ok": True}

    return app


def main(kind: str, database_url: str) -> None:
    admin_key = None
    if kind == "bare":
        app = bare_app()
    else:
        from danbao.api import Services, create_app
        from danbao.api.keys import bootstrap_operator

        services = Services.open(database_url)
        issued = bootstrap_operator(services.keys, services.trades.parties)
        admin_key = issued.key if issued else None
        app = create_app(services)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(1024)
    # Both kinds are readied alike, so the ratio compares only what each app does.
    ready_to_serve()
    print(json.dumps({"port": sock.getsockname()[1], "admin_key": admin_key}), flush=True)
    server = uvicorn.Server(uvicorn.Config(app, log_level="error", access_log=False, lifespan="off", loop="uvloop", http="httptools"))
    server.run(sockets=[sock])


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "")
