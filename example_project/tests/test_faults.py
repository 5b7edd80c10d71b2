"""The EXAMPLE_FAULTS grammar used to plant faults in this suite."""

import pytest
from _cost import burn
from shopkit import _faults


def test_empty_means_no_faults():
    assert _faults.parse("") == _faults.Faults()
    assert _faults.parse(" , ,") == _faults.Faults()
    burn(5)


def test_fail_tokens_repeat_in_order():
    assert _faults.parse("fail=test_tax, fail=::TestCoupons").fail == ("test_tax", "::TestCoupons")
    burn(5)


def test_bug_tokens_name_modules():
    assert _faults.parse("bug=pricing,bug=tax,bug=pricing").bugs == {"pricing", "tax"}
    burn(5)


@pytest.mark.parametrize("flag", _faults.FLAGS)
def test_flags(flag):
    faults = _faults.parse(flag)
    assert getattr(faults, flag) is True
    assert sum(getattr(faults, other) for other in _faults.FLAGS) == 1
    burn(5)


@pytest.mark.parametrize("token", ["fail=", "bug=nowhere", "crash=1", "leaks", "FAIL=x"])
def test_bad_tokens_name_the_variable_and_the_grammar(token):
    with pytest.raises(
        ValueError, match=r"EXAMPLE_FAULTS: bad token .* allowed tokens are fail="
    ) as excinfo:
        _faults.parse(f"leak,{token}")
    assert repr(token) in str(excinfo.value)
    burn(5)


def test_this_run_has_a_valid_setting():
    assert isinstance(_faults.ACTIVE, _faults.Faults)
    assert _faults.ACTIVE.bugs <= set(_faults.MODULES)
    burn(5)
