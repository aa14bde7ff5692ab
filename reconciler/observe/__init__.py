"""What one `fota serve` process counts about itself, for /metrics (issue 11).

`metrics.Metrics` holds the process's own Prometheus registry (never the library's global
one, so tests can run several servers in one interpreter) and the counters and histograms
the other layers feed through plain callables; `looplag.watch` samples the event loop's
lag. Imports nothing of ours: the layers that count get callables, not this package.
"""
