"""pytest entry point (``pytest -p shadowfarm``): options and hooks only.

Installed, the plugin is loaded by pytest's autoload but stays inert until it is named
with ``-p shadowfarm`` (on the command line, in ``addopts`` or ``PYTEST_ADDOPTS``): an
installed test tool must not reorder or write anything in projects that did not ask.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import pytest

from pytest_shadowfarm.compat import distributing
from pytest_shadowfarm.errors import ConfigError
from pytest_shadowfarm.settings import OPTIONS, Settings, read_pyproject_table, resolve

if TYPE_CHECKING:
    from pytest_shadowfarm.controller import ShadowFarmPlugin

# The feature modules are imported in the hooks, and only where they apply: installed
# but not named, the plugin costs its options alone; a run in one process does not
# import the xdist scheduler, the swarm or the farm client.

#: the names under which ``-p`` may enable us
PLUGIN_NAMES = frozenset({"shadowfarm", "pytest_shadowfarm.plugin"})

plugin_key: pytest.StashKey[ShadowFarmPlugin] = pytest.StashKey()
settings_key = pytest.StashKey[Settings]()

MARKER = (
    "shadowfarm(priority): importance of a test for pytest-shadowfarm's ordering: "
    "critical, high, normal, low or a number"
)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("shadowfarm", "pytest-shadowfarm (enable with -p shadowfarm)")
    for opt in OPTIONS:
        group.addoption(opt.flag, dest=opt.dest, metavar=opt.metavar, default=None, help=opt.help)
        parser.addini(opt.ini, help=opt.help, default="")


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    # Always, even when inert: a conftest that implements pytest_shadowfarm_warmup must
    # not fail pytest's "unknown hook" check in runs without -p shadowfarm.
    from pytest_shadowfarm import newhooks

    pluginmanager.add_hookspecs(newhooks)


def is_enabled(config: pytest.Config) -> bool:
    """True when ``-p shadowfarm`` was given (command line, addopts or PYTEST_ADDOPTS)."""
    named = getattr(config.option, "plugins", None) or []
    return any(name in PLUGIN_NAMES for name in named)


def load_settings(config: pytest.Config, env: dict[str, str] | None = None) -> Settings:
    """Resolve the settings of this run; a bad value is a UsageError naming its source."""
    rootdir = config.rootpath
    try:
        return resolve(
            rootdir=rootdir,
            invocation_dir=config.invocation_params.dir,
            cli={opt.name: config.getoption(opt.dest) for opt in OPTIONS},
            env=os.environ if env is None else env,
            toml=read_pyproject_table(rootdir),
            ini={opt.name: config.getini(opt.ini) for opt in OPTIONS},
        )
    except ConfigError as exc:
        raise pytest.UsageError(f"pytest-shadowfarm: {exc}") from None


@pytest.hookimpl(wrapper=True)
def pytest_cmdline_main(config: pytest.Config) -> object:
    # A wrapper runs before xdist's own tryfirst pytest_cmdline_main turns -n into --tx.
    if is_enabled(config):
        settings = load_settings(config)
        if settings.workers is not None:
            from pytest_shadowfarm.swarm import plugin as swarm_plugin

            swarm_plugin.cmdline_main(config, settings)
    return (yield)


def pytest_configure(config: pytest.Config) -> None:
    # The marker is registered even when inert, so that --strict-markers accepts
    # @pytest.mark.shadowfarm in projects that enable us only in some runs.
    config.addinivalue_line("markers", MARKER)
    if not is_enabled(config):
        return
    settings = load_settings(config)
    config.stash[settings_key] = settings
    # xdist workers only run tests: the controller owns history and reporting (one
    # writer per history file; see pytest-xdist's ``workerinput`` convention).
    if hasattr(config, "workerinput"):
        from pytest_shadowfarm.sched import plugin as sched_plugin
        from pytest_shadowfarm.swarm import plugin as swarm_plugin

        if settings.shard is not None:  # workers collect, so they deselect other shards
            from pytest_shadowfarm.shard_plugin import ShardPlugin

            shard = ShardPlugin.for_worker(settings, settings.shard, config)
            config.pluginmanager.register(shard, "shadowfarm-shard")
        sched_plugin.configure_worker(config)
        swarm_plugin.configure_worker(config)
        return
    from pytest_shadowfarm.controller import ShadowFarmPlugin
    from pytest_shadowfarm.ordering import OrderingPlugin
    from pytest_shadowfarm.report import github_plugin

    plugin = ShadowFarmPlugin(config, settings)
    config.stash[plugin_key] = plugin
    config.pluginmanager.register(plugin, "shadowfarm-controller")
    config.pluginmanager.register(OrderingPlugin(config, settings, plugin), "shadowfarm-ordering")
    if distributing(config):
        from pytest_shadowfarm.farm import plugin as farm_plugin
        from pytest_shadowfarm.sched import plugin as sched_plugin

        sched_plugin.configure_controller(config, settings, plugin)
        farm_plugin.configure_controller(config, settings, plugin)
    if distributing(config) or settings.workers is not None:
        from pytest_shadowfarm.swarm import plugin as swarm_plugin

        swarm_plugin.configure_controller(config, settings, plugin)
    if settings.shard is not None:
        from pytest_shadowfarm.shard_plugin import ShardPlugin

        shard = ShardPlugin.for_controller(settings, settings.shard, plugin)
        config.pluginmanager.register(shard, "shadowfarm-shard")
    github_plugin.register(config, settings, plugin)  # job summary + annotations in Actions


def pytest_unconfigure(config: pytest.Config) -> None:
    plugin = config.stash.get(plugin_key, None)
    if plugin is not None:
        del config.stash[plugin_key]
        config.pluginmanager.unregister(plugin)
