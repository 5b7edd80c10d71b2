"""Farm daemon: keeps pre-warmed shadow workers per project and serves the HTTP API.

PYTEST_DONT_REWRITE: our modules are imported without assertion rewriting (see
:mod:`pytest_shadowfarm.rewrite`); the marker keeps pytest from warning that they were
imported before it could rewrite them.
"""
