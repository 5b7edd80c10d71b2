"""A hosted worker becomes an xdist gateway, with the controller's paths rewritten.

xdist creates its workers with ``group.makegateway(spec)``; as the local hand-off does
(:mod:`pytest_shadowfarm.farm.handoff`), :func:`install` shadows that method on the
group *instance* for plain popen specs and returns ``execnet.Gateway(io, spec)`` over a
relay instead of a local process. The spec stays ``popen`` so xdist keeps popen
semantics (no rsync), but with a popen spec xdist sends the controller's ``sys.path``,
its invocation args and a basetemp under the controller's temp dir (``WorkerController
.setup``): all wrong on another host. :class:`RewritingChannel` rewrites that first
message to the shipped copy; the session's cwd is rewritten in the hello.

Uses execnet internals (``Gateway(io, spec)``, ``Group._register``): callers check
``compat.check_internals()`` first.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["PathMap", "RewritingChannel", "install"]


@dataclass(frozen=True)
class PathMap:
    """How the controller's paths read on one host."""

    #: controller directory -> its copy on the host, longest first
    pairs: tuple[tuple[str, str], ...]
    #: the host interpreter's own sys.path (site-packages and the standard library)
    host_sys_path: tuple[str, ...]
    #: a directory on the host for this worker's basetemp to be made in
    tmp: str

    def path(self, path: str) -> str | None:
        for local, remote in self.pairs:
            if path == local:
                return remote
            if path.startswith(local.rstrip(os.sep) + os.sep):
                return remote + path[len(local.rstrip(os.sep)) :]
        return None

    def arg(self, arg: str) -> str:
        """A command-line argument: absolute paths (also ``--opt=PATH``, ``PATH::test``)."""
        head, eq, value = arg.partition("=") if arg.startswith("-") else ("", "", arg)
        path, sep, rest = value.partition("::")
        mapped = self.path(path) if os.path.isabs(path) else None
        if mapped is None:
            return arg
        return f"{head}{eq}{mapped}{sep}{rest}"

    def cwd(self, cwd: str) -> str:
        return self.path(cwd) or self.pairs[-1][1]

    def sys_path(self, entries: Sequence[str]) -> list[str]:
        """The project's entries moved to the copy; the host's own entries for the rest."""
        mapped = [m for e in entries if (m := self.path(e)) is not None]
        return [*dict.fromkeys([*mapped, *self.host_sys_path])]


class RewritingChannel:
    """A channel whose first ``send`` (xdist's worker set-up tuple) is rewritten."""

    def __init__(self, channel: Any, paths: PathMap, name: str) -> None:
        self._channel = channel
        self._paths = paths
        self._name = name
        self._first = True

    def send(self, item: Any) -> None:
        if self._first and isinstance(item, tuple) and len(item) == 4:
            self._first = False
            workerinput, args, option_dict, sys_path = item
            args = [self._paths.arg(str(a)) for a in args]
            option_dict = dict(option_dict)
            if "basetemp" in option_dict:
                option_dict["basetemp"] = os.path.join(self._paths.tmp, self._name)
            if sys_path is not None:
                sys_path = self._paths.sys_path(sys_path)
            item = (workerinput, args, option_dict, sys_path)
        self._channel.send(item)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._channel, name)


def install(
    group: Any,
    connect: Callable[[Any, Any], tuple[Any, PathMap, dict[str, Any]] | None],
    eligible: Callable[[Any], bool],
) -> None:
    """Make ``group.makegateway`` serve eligible popen specs with ``connect(spec, execmodel)``.

    ``connect`` returns the gateway's IO, the host's path map and attributes for the
    gateway (read by the session writer: warm, engine, host), or None: that spec starts
    the original (cold, local) way.
    """
    import execnet
    from execnet.gateway import Gateway

    original = group.makegateway

    def makegateway(spec: Any = None) -> Any:
        if isinstance(spec, str):
            spec = execnet.XSpec(spec)
        if not (isinstance(spec, execnet.XSpec) and eligible(spec)):
            return original(spec)
        if spec.id is None:
            group.allocate_id(spec)
        if spec.execmodel is None:
            spec.execmodel = group.remote_execmodel.backend
        got = connect(spec, group.execmodel)
        if got is None:
            return original(spec)
        io, paths, attrs = got
        gateway = Gateway(io, spec)
        gateway.spec = spec
        group._register(gateway)
        for key, value in attrs.items():
            setattr(gateway, f"shadowfarm_{key}", value)
        remote_exec = gateway.remote_exec

        def rewriting_remote_exec(source: Any, **kwargs: Any) -> Any:
            channel = remote_exec(source, **kwargs)
            if getattr(source, "__name__", "") != "xdist.remote":
                return channel  # rinfo, telemetry: nothing to rewrite
            return RewritingChannel(channel, paths, f"popen-{spec.id}")

        gateway.remote_exec = rewriting_remote_exec  # type: ignore[method-assign]
        return gateway

    group.makegateway = makegateway
