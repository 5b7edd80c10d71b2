"""Plugin side of the farm: profile keys, the HTTP client and the warm hand-off to xdist.

Nothing here imports fastapi: the daemon (``farm_server``) imports :mod:`.profile` and
:mod:`.wire` from here, so that both sides compute the same key and speak the same
hand-off protocol from one copy of the code.
"""
