"""Several `fota serve` nodes on one shared store (issue 13): who owns which device, the
node's lease on the store, and which node applies each desired revision.

`ownership.Ownership` (the epochs this node holds, the fences its progress writes carry),
`lease.NodeLease` (a heartbeat through the store; without it the node stops acting on
devices and says so), `leadership` (`SoleLeader` for one node; a store that several
nodes share offers a lease-held leader). On SQLite a single node always owns, leads and
holds its lease: the same code paths, trivially true. Imports only model and errors;
wired by `reconciler.serve`, used by the controller. docs/scaling.md tells the model.
"""
