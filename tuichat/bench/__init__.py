"""`tuichat-bench`: fan-out throughput, latency and memory of tuichat, beside an IRC server."""
