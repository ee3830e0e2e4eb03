"""The GIL self-test's decision from its trials' clocks (gil.decide)."""
import pytest

from advanced_rest import gil

T = gil.Trial


@pytest.mark.parametrize("trials, decision", [
    ([T(1.0, 1.5, 2.0)], gil.RELEASED),  # the waiter ran during the call: only a released GIL lets it
    ([T(1.0, 2.5, 2.0), T(3.0, 3.5, 4.0)], gil.RELEASED),  # one such trial is proof enough
    ([T(1.0, 2.5, 2.0)] * 3, gil.KEPT),  # always after the call
    ([T(1.0, 2.5, 2.0), T(3.0, None, 4.0), T(5.0, 6.5, 6.0)], None),  # a waiter that never ran: not proof
    ([T(1.0, 0.5, 2.0)] * 3, None),  # ran before the call: the trial proves nothing
    ([], None),
], ids=["during", "once-during", "always-after", "never-ran", "before", "no-trial"])
def test_decide(trials, decision):
    assert gil.decide(trials) == decision
