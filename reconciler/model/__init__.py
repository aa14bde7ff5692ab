"""Pure domain values shared by every layer; imports nothing else of ours.

`desired` holds the manifest-derived snapshot, `lwm2m` the protocol values (paths,
Object 5 enums, registrations), `status` the controller's update states and conditions,
`ids` the reference-style base-24 identifiers.
"""
