"""pytest entry point (``pytest -p shadowfarm``): options and hooks only.

Installed, the plugin is loaded by pytest's autoload but stays inert until it is asked
for: named with ``-p shadowfarm`` (on the command line, in ``addopts`` or
``PYTEST_ADDOPTS``), given any explicit ``--sf-*`` option, or enabled with
``enabled = true`` in ``[tool.shadowfarm]``. An installed test tool must not reorder or
write anything in projects that did not ask; a user who typed ``--sf-order test`` did.
"""

from __future__ import annotations

import os

import pytest

from pytest_shadowfarm.compat import distributing
from pytest_shadowfarm.errors import ConfigError
from pytest_shadowfarm.rewrite import skip_own_modules
from pytest_shadowfarm.settings import OPTIONS, Settings, read_pyproject_table, resolve

# The feature modules are imported in the hooks, and only where they apply: installed
# but not named, the plugin costs its options alone; a run in one process does not
# import the xdist scheduler, the swarm or the farm client.

#: the names under which ``-p`` may enable us
PLUGIN_NAMES = frozenset({"shadowfarm", "pytest_shadowfarm.plugin"})

#: the controller's features of this run, by the name each is registered under
features_key = pytest.StashKey[list[tuple[str, object]]]()
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
    # Before any feature module is imported: they are not assertion-rewritten.
    skip_own_modules()
    # Always, even when inert: a conftest that implements pytest_shadowfarm_warmup must
    # not fail pytest's "unknown hook" check in runs without -p shadowfarm.
    from pytest_shadowfarm import newhooks

    pluginmanager.add_hookspecs(newhooks)


def is_enabled(config: pytest.Config) -> bool:
    """True when asked for: ``-p shadowfarm``, an explicit ``--sf-*`` option, or config.

    ``-p`` and ``--sf-*`` count from the command line, ``addopts`` or ``PYTEST_ADDOPTS``;
    config is ``enabled = true`` in ``[tool.shadowfarm]``. A ``-p shadowfarm`` given
    under ``PYTEST_DISABLE_PLUGIN_AUTOLOAD`` loads us too, and is seen here the same way.
    """
    named = getattr(config.option, "plugins", None) or []
    if any(name in PLUGIN_NAMES for name in named):
        return True
    if any(getattr(config.option, opt.dest, None) is not None for opt in OPTIONS):
        return True
    try:
        table = read_pyproject_table(config.rootpath)
    except ConfigError:
        return False  # nothing asked for us; the TOML error is pytest's or the project's
    enabled = table.get("enabled", False)
    if not isinstance(enabled, bool):
        msg = (
            f"pytest-shadowfarm: {config.rootpath / 'pyproject.toml'} [tool.shadowfarm] "
            f"enabled={enabled!r} is not valid: write enabled = true or enabled = false"
        )
        raise pytest.UsageError(msg)
    return enabled


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
        _configure_worker(config, settings)
        return
    features = compose(config, settings)
    config.stash[features_key] = features
    for name, feature in features:
        config.pluginmanager.register(feature, name)


def _configure_worker(config: pytest.Config, settings: Settings) -> None:
    if settings.shard is not None:  # workers collect, so they deselect other shards
        from pytest_shadowfarm.shard_plugin import ShardPlugin

        shard = ShardPlugin.for_worker(settings, settings.shard, config)
        config.pluginmanager.register(shard, "shadowfarm-shard")
    _open_worker_channels(config)


#: plugins a worker registers for channels the controller put in its workerinput
_CHANNEL_PLUGINS = ("shadowfarm-markers", "shadowfarm-telemetry")


def _open_worker_channels(config: pytest.Config) -> None:
    from pytest_shadowfarm.sched import plugin as sched_plugin
    from pytest_shadowfarm.swarm import plugin as swarm_plugin

    sched_plugin.configure_worker(config)
    swarm_plugin.configure_worker(config)


def pytest_shadowfarm_prepared_handoff(config: pytest.Config) -> None:
    # A farm worker configured this config for a run like this one before the run began:
    # the channels in workerinput are this run's only now. (The shard, part of what was
    # collected, was compared before the hand-off.)
    if not is_enabled(config) or not hasattr(config, "workerinput"):
        return
    for name in _CHANNEL_PLUGINS:
        plugin = config.pluginmanager.get_plugin(name)
        if plugin is not None:
            config.pluginmanager.unregister(plugin)
    _open_worker_channels(config)


def compose(config: pytest.Config, settings: Settings) -> list[tuple[str, object]]:
    """The controller's features for this run, each built with the run and what it uses.

    The one place that knows every feature: they are made here, in the order their hooks
    must be registered, and never look each other up.
    """
    from pytest_shadowfarm.ordering import IMPORT_CACHE, OrderingPlugin, pythonpath, weights_of
    from pytest_shadowfarm.priority.plan import ChangeSettings, Planner
    from pytest_shadowfarm.report import github_plugin
    from pytest_shadowfarm.run import Run
    from pytest_shadowfarm.session import SessionWriter, emit_warning
    from pytest_shadowfarm.workers.source import PopenSource, WorkerSource

    run = Run(settings, warn=lambda message: emit_warning(config, message))
    planner = Planner(
        run.plan,
        weights=weights_of(settings),
        half_life=settings.half_life,
        changes=ChangeSettings(
            rootdir=settings.rootdir,
            base=settings.base,
            search_paths=pythonpath(config),
            cache_path=settings.rootdir.joinpath(*IMPORT_CACHE),
            enabled=settings.weight_change != 0,
        ),
    )
    distributed = distributing(config)
    farm = None
    dask = None
    if distributed and settings.farm.startswith("dask"):
        from pytest_shadowfarm.dask import plugin as dask_plugin

        dask = dask_plugin.make_controller(config, run, pythonpath(config))
    elif distributed:
        from pytest_shadowfarm.farm import plugin as farm_plugin

        farm = farm_plugin.make_controller(config, run)
    source: WorkerSource = (
        farm.source if farm is not None else dask.source if dask is not None else PopenSource()
    )
    writer = SessionWriter(config, run, planner, source=source)
    features: list[tuple[str, object]] = [
        ("shadowfarm-session", writer),
        ("shadowfarm-ordering", OrderingPlugin(config, run, planner)),
    ]
    if distributed:
        from pytest_shadowfarm.sched import plugin as sched_plugin

        features.append(
            ("shadowfarm-scheduler", sched_plugin.make_controller(config, run, planner))
        )
        features.append(("shadowfarm-farm", farm or dask))
    if distributed or settings.workers is not None:
        from pytest_shadowfarm.swarm import plugin as swarm_plugin

        swarm = swarm_plugin.make_controller(config, run, source=source, farm=farm)
        features.append(("shadowfarm-swarm", swarm))
    if distributed:
        from pytest_shadowfarm.workers import watch

        features.append(("shadowfarm-health", watch.make_controller(config, run, source)))
    if settings.shard is not None:
        from pytest_shadowfarm.shard_plugin import ShardPlugin

        features.append(
            ("shadowfarm-shard", ShardPlugin.for_controller(settings, settings.shard, run))
        )
    # job summary + annotations in GitHub Actions
    features.append(("shadowfarm-github", github_plugin.make(config, run, writer)))
    return [(name, feature) for name, feature in features if feature is not None]


def pytest_unconfigure(config: pytest.Config) -> None:
    features = config.stash.get(features_key, None)
    if features is not None:
        del config.stash[features_key]
        for _, feature in features:
            if config.pluginmanager.is_registered(feature):
                config.pluginmanager.unregister(feature)
