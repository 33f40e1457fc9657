"""How the app holds its state backend and circuit breakers across config reloads.

``prepare(gw, config)`` is called by ``Switchyard.install`` before the new runtime is built:

- ``gw.state`` (``gateway.state``) is built from ``config.state`` at start-up and kept across
  reloads; a reload that changes the ``state`` section builds a new backend, and the old one is
  closed once requests that may still use it had time to finish;
- ``gw.circuits`` (``Circuits``) is kept across reloads: deployments whose id survives keep their
  breaker; it is rebuilt only with a new state backend;
- with a shared backend, ``/health/ready`` gets a ``redis`` check (``degraded`` while Redis is down).
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from gateway.config import Config
from gateway.resilience.circuits import Circuits
from gateway.state import StateBackend, build_state

if TYPE_CHECKING:
    from gateway.app import Switchyard

log = logging.getLogger("switchyard")


async def prepare(gw: Switchyard, config: Config) -> Circuits:
    state: StateBackend | None = getattr(gw, "state", None)
    circuits: Circuits | None = getattr(gw, "circuits", None)
    if state is not None and circuits is not None and state.config == config.state:
        circuits.configure(config)
        return circuits
    new_state = build_state(config.state, gw.metrics)
    await new_state.start()
    new_circuits = Circuits(config, gw.metrics, new_state)
    await new_circuits.start()
    gw.state, gw.circuits = new_state, new_circuits
    if new_state.shared:
        async def redis_ready() -> bool:
            return new_state.up
        gw.readiness_checks["redis"] = redis_ready
    else:
        gw.readiness_checks.pop("redis", None)
    if state is not None or circuits is not None:
        grace = config.server.shutdown_grace_seconds or 1
        asyncio.get_running_loop().call_later(grace, lambda: asyncio.ensure_future(_close(circuits, state)))
    return new_circuits


async def close(gw: Switchyard) -> None:
    await _close(getattr(gw, "circuits", None), getattr(gw, "state", None))


async def _close(circuits: Circuits | None, state: StateBackend | None) -> None:
    try:
        if circuits is not None:
            await circuits.close()
        if state is not None:
            await state.close()
    except Exception:
        log.exception("closing the state backend failed")
