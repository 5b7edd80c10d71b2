"""Predictive warm pool: demand per profile, forecasters, the pool policy, the replay simulator.

One code path: the daemon's pool asks the same :class:`~farm_server.forecast.policy.PoolPolicy`
objects for its targets that :func:`~farm_server.forecast.simulate.simulate` replays traces
against. Nothing here imports pytest; statsmodels is optional (a fallback model takes over).
"""
