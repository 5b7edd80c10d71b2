"""Profile keys: what makes a warm worker reusable by a run."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

import pytest

from shadowfarm_wire.profile import (
    Profile,
    cached_distributions_hash,
    current_profile,
    distributions_hash,
    installed_distributions,
    path_fingerprint,
)

DISTS = [("numpy", "1.26.4"), ("pytest", "9.2.0")]


def profile(**overrides: object) -> Profile:
    values: dict[str, object] = {
        "rootdir": "/src/proj",
        "distributions": DISTS,
        "executable": "/venv/bin/python",
        "version": "3.11.7",
    }
    values.update(overrides)
    rootdir = values.pop("rootdir")
    return current_profile(str(rootdir), **values)  # type: ignore[arg-type]


@dataclass
class FakeDist:
    name: str
    version: str
    metadata: dict[str, str] = field(init=False)

    def __post_init__(self) -> None:
        self.metadata = {"Name": self.name}


class TestProfileKey:
    def test_the_same_environment_gives_the_same_key(self):
        """Two computations of one environment agree (client and worker must)."""
        assert profile().key == profile().key

    def test_a_changed_distribution_gives_a_new_key_in_the_same_lineage(self):
        """Upgrading numpy changes the key but not the lineage (old workers get retired)."""
        upgraded = profile(distributions=[("numpy", "2.0.0"), ("pytest", "9.2.0")])
        assert upgraded.key != profile().key
        assert upgraded.lineage == profile().lineage

    def test_an_added_distribution_gives_a_new_key(self):
        """Installing one more distribution is a different profile."""
        assert profile(distributions=[*DISTS, ("idna", "3.7")]).key != profile().key

    @pytest.mark.parametrize(
        "change",
        [{"rootdir": "/src/other"}, {"executable": "/other/python"}, {"version": "3.12.1"}],
    )
    def test_rootdir_interpreter_and_version_are_part_of_the_key(self, change):
        """Each of rootdir, interpreter path and Python version changes the key."""
        assert profile(**change).key != profile().key

    def test_order_and_duplicates_do_not_change_the_key(self):
        """Distributions and warm modules are sets: their order does not matter."""
        a = profile(distributions=DISTS, warm_modules=["scipy", "numpy"])
        b = profile(distributions=[*reversed(DISTS), DISTS[0]], warm_modules=["numpy", "scipy"])
        assert a.key == b.key

    def test_warm_modules_are_part_of_the_key(self):
        """A project that configures other warm imports gets other workers."""
        assert profile(warm_modules=["scipy"]).key != profile().key

    def test_the_hash_covers_names_and_versions(self):
        """The distributions hash changes with either a name or a version."""
        base = distributions_hash(DISTS)
        assert distributions_hash([("numpy", "1.26.5"), DISTS[1]]) != base
        assert distributions_hash([("numpyx", "1.26.4"), DISTS[1]]) != base


class TestProfileSerialisation:
    def test_a_profile_survives_a_round_trip(self):
        """to_dict/from_dict keep every field, so the daemon spawns what the client asked."""
        original = profile(warm_modules=["numpy"])
        assert Profile.from_dict(original.to_dict()) == original

    def test_a_bad_field_is_named(self):
        """A missing or mistyped field raises ValueError naming it."""
        data = profile().to_dict()
        data["rootdir"] = 3
        with pytest.raises(ValueError, match="'rootdir' must be a non-empty string"):
            Profile.from_dict(data)
        data = profile().to_dict()
        data["warm_modules"] = "numpy"
        with pytest.raises(ValueError, match="'warm_modules' must be a list"):
            Profile.from_dict(data)


class TestCachedDistributionsHash:
    def test_a_known_fingerprint_answers_from_the_cache(self, tmp_path):
        """While no sys.path directory changed, the cached hash is used as is."""
        cache = tmp_path / "cache.json"
        cache.write_text(json.dumps({path_fingerprint(): "from-cache"}))
        assert cached_distributions_hash(cache) == "from-cache"

    def test_an_install_in_a_path_directory_changes_the_fingerprint(self, tmp_path, monkeypatch):
        """A new, upgraded or rewritten ``*.dist-info`` in a sys.path directory counts."""
        site = tmp_path / "site"
        (site / "foo-1.0.dist-info").mkdir(parents=True)
        monkeypatch.syspath_prepend(str(site))
        before = path_fingerprint()
        (site / "foo-1.0.dist-info").rename(site / "foo-1.1.dist-info")
        upgraded = path_fingerprint()
        assert upgraded != before
        os.utime(site / "foo-1.1.dist-info", ns=(1, 1))  # reinstalled in place
        assert path_fingerprint() != upgraded

    def test_other_files_in_a_path_directory_do_not_count(self, tmp_path, monkeypatch):
        """A report written into the project's directory (on sys.path) keeps the cache valid."""
        project = tmp_path / "project"
        project.mkdir()
        monkeypatch.syspath_prepend(str(project))
        monkeypatch.chdir(project)
        monkeypatch.syspath_prepend("")  # ``python -m pytest`` puts the cwd first
        before = path_fingerprint()
        (project / "report.json").write_text("{}")
        (project / "src").mkdir()
        assert path_fingerprint() == before

    def test_a_zip_on_the_path_counts_as_a_whole(self, tmp_path, monkeypatch):
        """An egg or zip on sys.path changes the fingerprint when the file changes."""
        egg = tmp_path / "foo.egg"
        egg.write_bytes(b"PK")
        monkeypatch.syspath_prepend(str(egg))
        before = path_fingerprint()
        egg.write_bytes(b"PK\x03\x04")
        assert path_fingerprint() != before

    def test_a_missing_or_corrupt_cache_is_rebuilt(self, tmp_path):
        """Garbage in the cache file: the hash is computed and the file rewritten."""
        cache = tmp_path / "cache.json"
        cache.write_text("not json")
        value = cached_distributions_hash(cache)
        assert value == distributions_hash(installed_distributions())
        assert json.loads(cache.read_text()) == {path_fingerprint(): value}


class TestInstalledDistributions:
    def test_names_are_normalised_and_the_first_on_the_path_wins(self):
        """Foo_Bar and foo-bar are one distribution; the first found is the importable one."""
        dists = [FakeDist("Foo_Bar", "2.0"), FakeDist("foo-bar", "1.0"), FakeDist("a", "1")]
        assert installed_distributions(lambda: dists) == [("a", "1"), ("foo-bar", "2.0")]  # type: ignore[arg-type, return-value]

    def test_the_real_environment_lists_pytest(self):
        """The venv's pytest is among the installed distributions."""
        assert any(name == "pytest" for name, _ in installed_distributions())
