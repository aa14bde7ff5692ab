"""Several `fota serve` nodes on one shared store (issue 13): who owns which device, the
node's lease on the store, and which node applies each desired revision.

`ownership.Ownership` (the epochs this node holds, the fences its progress writes carry),
`lease.NodeLease` (a heartbeat through the store; without it the node stops acting on
devices and says so), `leadership` (`SoleLeader` for one node; a store that several
nodes share offers a lease-held leader), `slots.SharedSlots` (`maxConcurrent` counted
across every node, checked by the store in the write that puts a device in flight) and
`progress_feed.ProgressFeed` (the other nodes' progress writes, read every second into
this node's rollout index, so guards and status count the whole fleet). On SQLite a
single node always owns, leads and holds its lease: the same code paths, trivially true.
Of ours it imports model, engine (`slots`: a refused slot becomes the rollout gate's
`Gate`) and side_thread (`lease`: the heartbeat's own thread), and reaches the store only
through the protocols its modules declare; pyproject's layers contract puts it above
engine, sources, store and lwm2m. Wired by `reconciler.serve`, used by the controller.
docs/scaling.md tells the model.
"""
