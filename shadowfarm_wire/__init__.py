"""What the plugin and the farm daemon both speak: standard library only.

``pytest_shadowfarm`` (the plugin) and ``farm_server`` (the daemon) each import this
package and neither imports the other, so either side can change without dragging the
other's dependencies in (the plugin never imports fastapi; the daemon never imports the plugin).

- :mod:`.profile`: the profile key that decides which warm worker a run may use;
- :mod:`.protocol`: the hand-off messages and the unix-socket framing;
- :mod:`.home`: the farm's state directory (token, daemon.json, sockets, logs);
- :mod:`.trust`: the farm's proof of identity and the ownership checks of its files;
- :mod:`.errors`: the errors both sides raise.

PYTEST_DONT_REWRITE: our modules are imported without assertion rewriting (see
:mod:`pytest_shadowfarm.rewrite`); the marker keeps pytest from warning that they were
imported before it could rewrite them.
"""

#: this distribution's top-level packages (the plugin, the daemon, what both speak)
OWN_PACKAGES = frozenset({"pytest_shadowfarm", "farm_server", "shadowfarm_wire"})
