"""A node's name in the shared store: `--node-id`, or host name and process id.

The default changes with every start, so a restarted node on a shared store resumes no
device another node might have taken meanwhile (its devices re-register: 4.04 to their
next Update); a stable `--node-id` per machine lets it resume its own at once. Read by
`reconciler.serve.settings`.
"""

from __future__ import annotations

import os
import socket


def default_node_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"
