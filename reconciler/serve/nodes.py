"""This node's place among the nodes that share its store: its name, the devices it
owns, its lease on the store and whether it applies desired revisions (the leader).

`node_parts(settings, store)` builds them for `service._run`: on the SQLite store (one
writer, by its flock) the node leads alone and its heartbeats go to the local file, so
the code paths are those of several nodes, trivially satisfied. docs/scaling.md.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from reconciler.cluster.leadership import Leadership, SoleLeader, applier
from reconciler.cluster.lease import NodeLease
from reconciler.cluster.node import default_node_id
from reconciler.cluster.ownership import Ownership
from reconciler.lwm2m.remote_offers import Find, RemoteOffers
from reconciler.lwm2m.server import Lwm2mServer
from reconciler.model.desired import DesiredState
from reconciler.model.lwm2m import FirmwareOffer
from reconciler.serve.settings import ServeSettings
from reconciler.store import Store
from reconciler.store.pg.leader import PgLeadership

FOLLOW_LEASES = 3  # a follower waits this many leases for the leader to apply a revision


@dataclass(frozen=True, slots=True)
class NodeParts:
    node: str
    ownership: Ownership
    lease: NodeLease
    leadership: Leadership
    apply_desired: Callable[[DesiredState], None]  # the Decider's, leader-aware

    async def settle(self) -> None:
        """Before the first revision: whether this node leads, and its first heartbeat."""
        await self.leadership.settle()
        await self.lease.beat_once()

    def tasks(self, stop: asyncio.Event) -> list[asyncio.Task[None]]:
        return [asyncio.create_task(self.lease.run(stop), name="node-lease"),
                asyncio.create_task(self.leadership.run(stop), name="leadership")]


def node_parts(settings: ServeSettings, store: Store, clock: Callable[[], float],
               server: Lwm2mServer, images: Callable[[str], Awaitable[bytes]]) -> NodeParts:
    """A shared database (`postgresql://`): its leadership lock, and downloads another
    node offered served here. A SQLite file: the node leads alone."""
    node = settings.node_id or default_node_id()
    leadership: Leadership = SoleLeader()
    if isinstance(settings.state, str):
        leadership = PgLeadership(settings.state, node, settings.lease, clock)
        server.firmware.remote = RemoteOffers(server.firmware,
                                              _offers_of(store, images, clock))
    return NodeParts(node, Ownership(store, node),
                     NodeLease(store.heartbeat, node, settings.lease, clock), leadership,
                     applier(store, leadership, FOLLOW_LEASES * settings.lease))


def _offers_of(store: Store, images: Callable[[str], Awaitable[bytes]],
               clock: Callable[[], float]) -> Find:
    """The offer at a token as the shared store has it, with this node's image bytes."""

    async def find(token: str) -> tuple[FirmwareOffer, bytes] | None:
        offer = await asyncio.to_thread(store.offer_by_token, token, clock())
        if offer is None:
            return None
        try:
            return offer, await images(offer.image_id)
        except (FileNotFoundError, KeyError):  # not in this node's desired state (yet)
            return None

    return find
