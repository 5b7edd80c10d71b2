"""PopenSource and popen_template: new local workers like the run's first popen one."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import execnet
import pytest

from pytest_shadowfarm.workers.source import PopenSource, popen_template


@dataclass
class FakeGroup:
    allocated: list[Any] = field(default_factory=list)

    def allocate_id(self, spec: Any) -> None:
        spec.id = f"gw{len(self.allocated) + 1}"
        self.allocated.append(spec)


@dataclass
class FakeNodeManager:
    """xdist's NodeManager as PopenSource uses it: specs, group, setup_node."""

    specs: list[Any]
    group: FakeGroup = field(default_factory=FakeGroup)
    fail: Exception | None = None
    set_up: list[Any] = field(default_factory=list)

    def setup_node(self, spec: Any, putevent: Any) -> str:
        if self.fail is not None:
            raise self.fail
        self.set_up.append(spec)
        return f"node {spec.id}"


class TestPopenTemplate:
    def test_the_first_popen_spec_without_id_or_execmodel(self):
        """The template drops execmodel= and id= and keeps the rest."""
        specs = [
            execnet.XSpec("ssh=host//id=gw0"),
            execnet.XSpec("execmodel=main_thread_only//popen//dont_write_bytecode//id=gw1"),
        ]
        assert popen_template(specs) == "popen//dont_write_bytecode"

    def test_no_popen_spec_no_template(self):
        """Only remote specs: None."""
        assert popen_template([execnet.XSpec("ssh=host")]) is None


class TestPopenSource:
    def test_a_started_worker_counts_among_the_specs(self):
        """start() allocates an id, appends the spec (workercount) and sets the node up."""
        manager = FakeNodeManager([execnet.XSpec("popen//id=gw0")])
        node = PopenSource().start(manager, lambda event: None)
        assert node == "node gw1"
        [spec] = manager.set_up
        assert (spec.popen, spec.execmodel) == (True, "main_thread_only")
        assert len(manager.specs) == 2

    def test_a_failed_start_takes_its_spec_back(self):
        """If setup_node raises, the spec is removed again and the error goes up."""
        manager = FakeNodeManager([execnet.XSpec("popen")], fail=OSError("no fork"))
        with pytest.raises(OSError, match="no fork"):
            PopenSource().start(manager, lambda event: None)
        assert len(manager.specs) == 1

    def test_it_can_start_with_a_template_or_a_popen_spec(self):
        """can_start: a template of its own, or a popen spec to copy."""
        ssh_only = [execnet.XSpec("ssh=host")]
        assert PopenSource().can_start(ssh_only) is False
        assert PopenSource("popen").can_start(ssh_only) is True
        assert PopenSource().can_start([execnet.XSpec("popen")]) is True

    def test_it_serves_every_worker_and_gives_nothing_back(self):
        """A local source reserves all it is asked; release and lost are no-ops."""
        source = PopenSource()
        assert source.reserve(3) == 3
        assert source.release("gw0") is None
        assert source.lost("gw0", "x") is None
