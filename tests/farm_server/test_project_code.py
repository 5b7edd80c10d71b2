"""A warm worker drops its own modules' names before pytest configures a run."""

from __future__ import annotations

import sys
import types

from farm_server.project_code import forget_own_modules


def test_own_modules_go_but_a_prepared_configs_stay(monkeypatch):
    for name in ("farm_server.fake_a", "shadowfarm_wire.fake_b", "pytest_shadowfarm.fake_c"):
        monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
    monkeypatch.setitem(sys.modules, "third_party_fake", types.ModuleType("third_party_fake"))
    saved = dict(sys.modules)
    try:
        forget_own_modules(keep={"pytest_shadowfarm.fake_c"})
        assert "farm_server.fake_a" not in sys.modules
        assert "shadowfarm_wire.fake_b" not in sys.modules
        assert "pytest_shadowfarm.fake_c" in sys.modules
        assert "third_party_fake" in sys.modules
    finally:
        sys.modules.clear()
        sys.modules.update(saved)
