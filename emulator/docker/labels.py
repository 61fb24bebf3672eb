"""Labels on everything a run creates, and the teardown that finds objects by them.

Every container and network of a run carries ``lambdatwin.run=<run id>`` (and
``lambdatwin.role``), so ``teardown(run_id)`` — called on success, failure and
Ctrl-C — and ``lambdatwin emulate down`` remove exactly what lambdatwin made,
never anything else on the engine.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

LABEL_RUN = "lambdatwin.run"
LABEL_ROLE = "lambdatwin.role"
LABEL_IMAGE_HASH = "lambdatwin.content-hash"


def new_topology_id() -> str:
    """A short id for one topology when no run id is given (part of container and network names)."""
    return uuid.uuid4().hex[:10]


def run_labels(run_id: str, role: str, **extra: str) -> dict[str, str]:
    """The labels of one object of a run."""
    return {LABEL_RUN: run_id, LABEL_ROLE: role, **{f"lambdatwin.{k}": v for k, v in extra.items()}}


@dataclass
class TeardownReport:
    """What :func:`teardown` removed (and what it could not)."""

    containers: list[str] = field(default_factory=list)
    networks: list[str] = field(default_factory=list)
    volumes: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def removed(self) -> int:
        return len(self.containers) + len(self.networks) + len(self.volumes)


def teardown(client: Any, run_id: str | None = None) -> TeardownReport:
    """Remove the containers, then the networks and volumes, of one run (all runs when None).

    Containers go first: a network with endpoints cannot be removed.
    Idempotent: objects already gone are skipped.
    """
    from docker.errors import APIError, NotFound

    selector = f"{LABEL_RUN}={run_id}" if run_id else LABEL_RUN
    filters = {"label": selector}
    report = TeardownReport()
    for container in client.containers.list(all=True, filters=filters):
        try:
            container.remove(force=True, v=True)
            report.containers.append(container.name)
        except NotFound:
            pass
        except APIError as exc:
            report.errors.append(f"container {container.name}: {exc.explanation or exc}")
    for network in client.networks.list(filters=filters):
        try:
            network.remove()
            report.networks.append(network.name)
        except NotFound:
            pass
        except APIError as exc:
            report.errors.append(f"network {network.name}: {exc.explanation or exc}")
    for volume in client.volumes.list(filters=filters):
        try:
            volume.remove(force=True)
            report.volumes.append(volume.name)
        except NotFound:
            pass
        except APIError as exc:
            report.errors.append(f"volume {volume.name}: {exc.explanation or exc}")
    return report
