"""shopkit: a small web-shop back office (the pytest-shadowfarm example library).

Submodules are not imported here, so that `from shopkit import pricing` stays
fast; only `shopkit.demand` (and what imports it) pulls in SciPy.
"""
