"""The reconcile loop: joins desired state, the engine and the LwM2M layer.

`workqueue` (keyed level-triggered queue), `decide` (diff, gate, decide, persist),
`executor` (the only place effects are sequenced), `core.Controller` (triggers and the
reconcile loop), `rollout`, `reports`, `observers`. The process that runs it is
`reconciler.serve`; `fota plan` (`reconciler.review`) never touches it.
"""
