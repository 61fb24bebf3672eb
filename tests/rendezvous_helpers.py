"""A rendezvous server on loopback in a background thread, for tests and benchmarks."""

from __future__ import annotations

import asyncio
import threading
from contextlib import contextmanager
from typing import Callable, Iterator

from rendezvous.cli import new_event_loop
from rendezvous.server import RendezvousServer, ServerConfig


@contextmanager
def running_server(loop_factory: Callable[[], asyncio.AbstractEventLoop] = new_event_loop,
                   **config) -> Iterator[RendezvousServer]:
    """Start a server on 127.0.0.1 (ephemeral ports), on the event loop the CLI uses, and stop it afterwards."""
    loop = loop_factory()
    server = RendezvousServer(ServerConfig(host="127.0.0.1", port=0, health_port=0, **config))
    ready = threading.Event()

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(server.start())
        ready.set()
        loop.run_forever()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    ready.wait(10)
    try:
        yield server
    finally:
        async def shutdown() -> None:
            await server.close()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(shutdown(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def address(server: RendezvousServer) -> str:
    return f"127.0.0.1:{server.ports[0]}"
