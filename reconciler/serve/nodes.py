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
from reconciler.cluster.progress_feed import ProgressFeed
from reconciler.lwm2m.remote_offers import Find, RemoteOffers
from reconciler.lwm2m.server import Lwm2mServer
from reconciler.model.desired import DesiredState
from reconciler.model.lwm2m import FirmwareOffer
from reconciler.serve.settings import ServeSettings
from reconciler.store import Store

IMAGE_WAIT = 5.0  # seconds another node's offer waits for its image to be applied here
IMAGE_POLL = 0.1
FOLLOW_LEASES = 3  # a follower waits this many leases for the leader to apply a revision


@dataclass(frozen=True, slots=True)
class NodeParts:
    node: str
    ownership: Ownership
    lease: NodeLease
    leadership: Leadership
    apply_desired: Callable[[DesiredState], None]  # the Decider's, leader-aware
    feed: ProgressFeed | None = None  # the other nodes' records (a shared store)

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
    feed = None
    if isinstance(settings.state, str):
        # imported here: a SQLite node never loads psycopg (a quarter of a second of the
        # time a restarted server takes to answer its devices)
        from reconciler.store.pg.leader import PgLeadership

        leadership = PgLeadership(str(settings.store_location()), node, settings.lease,
                                  clock)
        feed = ProgressFeed(store)
        server.firmware.remote = RemoteOffers(
            server.firmware, store_offers(store, images, clock, server.plain_may_serve))
    return NodeParts(node, Ownership(store, node),
                     NodeLease(store.heartbeat, node, settings.lease, clock), leadership,
                     applier(store, leadership, FOLLOW_LEASES * settings.lease), feed)


def store_offers(store: Store, images: Callable[[str], Awaitable[bytes]],
                 clock: Callable[[], float], plain: Callable[[str], bool]) -> Find:
    """The offer at a token as the shared store has it, with this node's image bytes;
    only the plain listener looks offers up, so never a secured device's (`plain`)."""

    async def find(token: str) -> tuple[FirmwareOffer, bytes] | None:
        offer = await asyncio.to_thread(store.offer_by_token, token, clock())
        if offer is None or not plain(offer.endpoint):
            return None
        # The leader starts devices on a revision as soon as it has applied it; this
        # node follows a moment later (its own look at the repository, then the wait for
        # the leader's rows). A download sent here meanwhile waits for the image, bounded,
        # instead of a 4.04 that would fail the device's update for this image.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + IMAGE_WAIT
        while True:
            try:
                return offer, await images(offer.image_id)
            except (FileNotFoundError, KeyError):  # not in this node's desired state yet
                if loop.time() >= deadline:
                    return None
                await asyncio.sleep(IMAGE_POLL)  # an in-memory look; no event to await

    return find
