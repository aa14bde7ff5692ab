"""`fota serve`: the process that runs the reconcile loop.

`settings` (one pydantic model from flags and `FOTA_*` variables), `service.run_service`
(git source, LwM2M server, controller and HTTP API in one event loop), `cmd` (the
subcommand, signals, exit codes) and `loghandler` (log lines batched per loop pass).
Wired into `fota` by `reconciler.cli`; tests and the demo call `run_service`.
"""
