"""The controller: joins desired state, the engine and the LwM2M layer into the product.

`workqueue` (keyed level-triggered queue), `decide` (diff, gate, decide, persist),
`executor` (the only place effects are sequenced), `core.Controller` (triggers and the
reconcile loop), `service.run_service` (everything in one event loop), and the `fota
serve` / `fota plan` commands (`serve_cmd`, `plan_cmd`).
"""
