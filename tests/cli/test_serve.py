"""`modelyard serve` refuses bad options before it binds a port (the server itself is tested
end to end in tests/serving/test_server.py)."""

from __future__ import annotations

from tests.cli.test_registry import home, run

_ = home  # the autouse fixture: a fresh MODELYARD_HOME per test


def test_bad_canary_share() -> None:
    code, _, err = run("serve", "fraud@production", "--canary", "fraud:2=lots")
    assert code == 2 and "expected REF=SHARE such as fraud:4=10%" in err


def test_out_of_range_option() -> None:
    code, _, err = run("serve", "fraud", "--log-sample", "2")
    assert code == 1 and "--log-sample: Input should be less than or equal to 1" in err


def test_bad_reference_and_canary_share_range() -> None:
    code, _, err = run("serve", "fraud@@x")
    assert code == 1 and "invalid reference" in err
    code, _, err = run("serve", "fraud", "--canary", "fraud:2=150%")
    assert code == 1 and "between 0 and 1, got 1.5" in err
