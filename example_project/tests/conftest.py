"""Shared fixtures and the test-level planted faults of the example suite.

See shopkit/_faults.py for the EXAMPLE_FAULTS grammar; `fail=<substring>`
is applied here, the other faults live next to the tests they affect.
"""

import pytest
from _cost import burn
from shopkit import _faults
from shopkit.catalog import demo_catalog


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_call(item: pytest.Item) -> None:
    """Fail, instead of running it, every test matched by a fail=<substring> token."""
    for needle in _faults.ACTIVE.fail:
        if needle in item.nodeid:
            pytest.fail(f"planted fault: EXAMPLE_FAULTS has fail={needle}", pytrace=False)


@pytest.fixture(scope="module")
def catalog():
    """The 240-product demo catalogue; loading it stands for ~0.2 s of setup."""
    burn(200)
    return demo_catalog(240)
