"""One resolver for every setting: CLI > environment > ``[tool.shadowfarm]`` > pytest ini > default.

:func:`resolve` turns the raw values of the four sources into one frozen :class:`Settings`;
a bad value raises :class:`~pytest_shadowfarm.errors.ConfigError` naming the source it came
from and what is allowed. The options themselves are described in
:mod:`pytest_shadowfarm.options`. Nothing here imports pytest: the plugin passes the raw
values in.
"""

from __future__ import annotations

import dataclasses
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_shadowfarm.errors import ConfigError
from pytest_shadowfarm.options import OPTIONS, Option, WorkerRange
from pytest_shadowfarm.priority.weights import DEFAULT_HALF_LIFE, DEFAULT_WEIGHTS

if TYPE_CHECKING:
    from pytest_shadowfarm.shard import ShardSpec

__all__ = ["OPTIONS", "Option", "Settings", "read_pyproject_table", "resolve"]


@dataclass(frozen=True)
class Settings:
    """Every resolved setting of one run; ``sources`` says where each value came from."""

    rootdir: Path
    history: Path
    report_json: Path | None = None
    timeline: Path | None = None
    history_keep: int = 50
    order: str = "grouped"
    base: str | None = None
    explain: int = 0
    half_life: float = DEFAULT_HALF_LIFE
    weight_base: float = DEFAULT_WEIGHTS.base
    weight_marker: float = DEFAULT_WEIGHTS.marker
    weight_failure: float = DEFAULT_WEIGHTS.failure
    weight_change: float = DEFAULT_WEIGHTS.change
    weight_new: float = DEFAULT_WEIGHTS.new
    github: str = "auto"
    shard: ShardSpec | None = None
    dist: str = "on"
    workers: WorkerRange | None = None
    budget: float | None = None
    target: float | None = None
    telemetry_interval: float = 0.2
    scale_up: float = 0.8
    scale_down: float = 0.5
    farm: str = "auto"
    farm_home: Path | None = None
    warm_imports: tuple[str, ...] = ()
    shadow_budget: float = 3.0
    health: str = "on"
    memory_limit: int | None = None
    health_prepare: float = 0.5
    health_swap: float = 0.8
    sources: Mapping[str, str] = field(default_factory=dict, compare=False)

    def describe(self, name: str) -> str:
        return self.sources.get(name, "default")


def read_pyproject_table(rootdir: Path) -> dict[str, Any]:
    """Return ``[tool.shadowfarm]`` of ``<rootdir>/pyproject.toml`` ({} if absent)."""
    path = rootdir / "pyproject.toml"
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        return {}
    except (OSError, tomllib.TOMLDecodeError) as exc:
        msg = f"{path}: cannot read [tool.shadowfarm] ({exc}); fix the TOML syntax"
        raise ConfigError(msg) from exc
    table = data.get("tool", {}).get("shadowfarm", {})
    if not isinstance(table, dict):
        msg = f"{path}: [tool.shadowfarm] must be a table"
        raise ConfigError(msg)
    return table


def _toml_lookup(table: Mapping[str, Any], dotted: str) -> Any:
    node: Any = table
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


#: ``[tool.shadowfarm]`` keys that are not options: ``enabled`` turns the plugin on
#: without ``-p shadowfarm`` (read by the plugin before any setting is resolved)
TOML_ONLY_KEYS = frozenset({"enabled"})


def _known_toml_keys() -> set[str]:
    return {opt.toml for opt in OPTIONS} | TOML_ONLY_KEYS


def _check_unknown_toml_keys(table: Mapping[str, Any], pyproject: Path) -> None:
    known = _known_toml_keys()
    prefixes = {key.split(".")[0] for key in known if "." in key}
    for key, value in table.items():
        if key in prefixes and isinstance(value, Mapping):
            for sub in value:
                if f"{key}.{sub}" not in known:
                    msg = f"{pyproject} [tool.shadowfarm.{key}]: unknown key {sub!r}"
                    raise ConfigError(msg)
        elif key not in known:
            allowed = ", ".join(sorted(known))
            msg = f"{pyproject} [tool.shadowfarm]: unknown key {key!r}; known keys: {allowed}"
            raise ConfigError(msg)


def resolve(
    *,
    rootdir: Path,
    invocation_dir: Path,
    cli: Mapping[str, Any],
    env: Mapping[str, str],
    toml: Mapping[str, Any],
    ini: Mapping[str, Any],
) -> Settings:
    """Resolve every option from its four sources (first one set wins).

    ``cli`` and ``ini`` are keyed by option name; ``env`` is the process environment;
    ``toml`` is the ``[tool.shadowfarm]`` table. Unset values are None (or "" for ini).
    """
    pyproject = rootdir / "pyproject.toml"
    _check_unknown_toml_keys(toml, pyproject)
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for opt in OPTIONS:
        candidates = (
            (cli.get(opt.name), opt.flag, invocation_dir),
            (env.get(opt.env), opt.env, invocation_dir),
            (_toml_lookup(toml, opt.toml), f"{pyproject} [tool.shadowfarm] {opt.toml}", rootdir),
            (ini.get(opt.name), f"ini option {opt.ini}", rootdir),
        )
        for raw, source, base in candidates:
            if raw is None or raw == "":
                continue
            try:
                value = opt.parse(raw)
            except ValueError as exc:
                msg = f"{source}={raw!r} is not valid: {exc} ({opt.help})"
                raise ConfigError(msg) from None
            if opt.is_path and isinstance(value, Path) and not value.is_absolute():
                value = base / value
            values[opt.name] = value
            sources[opt.name] = source
            break
        else:
            values[opt.name] = opt.default
    if values.get("history") is None:
        values["history"] = rootdir / ".shadowfarm" / "history.sqlite"
    fields = {f.name for f in dataclasses.fields(Settings)}
    return Settings(
        rootdir=rootdir,
        sources=sources,
        **{k: v for k, v in values.items() if k in fields},
    )
