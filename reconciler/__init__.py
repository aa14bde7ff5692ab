"""fota-gitops: a declarative GitOps reconciler for LwM2M firmware-over-the-air updates.

Data flows one way: git -> desired model -> diff -> plan -> LwM2M actions -> observed
state -> store -> read-only API. See docs/contracts.md for the interfaces between layers.
"""

__version__ = "0.1.0"
