"""Farm daemon: keeps pre-warmed shadow workers per project and serves the HTTP API."""
