"""`fota plan`: reviews a desired-state change before it is merged.

`summary` (pure: per collection, who moves, who is already there, who is blocked and
why), `cmd` (the subcommand: load the proposed state, summarise, render) and
`observed` (what a running reconciler last saw, from its state file or its API). Reads
the store and the sources only; it never runs or imports the reconcile loop.
"""
