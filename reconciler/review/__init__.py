"""`fota plan`: reviews a desired-state change before it is merged.

`cmd` (the subcommand: load the proposed state, summarise per collection, render) and
`observed` (what a running reconciler last saw, from its state file or its API). Reads
the store and the sources only; it never runs or imports the reconcile loop.
"""
