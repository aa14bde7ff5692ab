"""`fota status`: a running reconciler seen from the terminal, over its HTTP API only.

`cmd` (the subcommand), `client` (urllib GETs and the /events stream), `rollout` (pure
reading of /status: progress and the rollout's outcome), `render` (rich on a terminal,
plain lines otherwise), `follow` (`--watch`: driven by /events, polling when it drops).
Imports nothing of ours but the model: it is a client, like a browser or curl.
"""
