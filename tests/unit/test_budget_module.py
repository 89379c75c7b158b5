"""The budget module's pure parts: what it refuses before calling AWS, and what it compares (tests/integration/
test_budget.py runs it against the local API)."""

from __future__ import annotations

import pytest

from tests.conftest import ROOT, load_module

budget = load_module(ROOT / "plugins/modules/budget.py")


@pytest.mark.parametrize("value", ["50", "0.01", "99999.99", "100000", " 12.5 ", 50, 12.25, "1e2"])
def test_amounts_accepted(value):
    assert budget.amount_problem(value) == ""


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("", "is empty"),
        (" ", "is empty"),
        (None, "is empty"),
        (True, "is not a number"),
        ("fifty", "is not a number"),
        ("nan", "is not a number"),
        ("Infinity", "is not a number"),
        ("0", "is not more than 0"),
        ("0.00", "is not more than 0"),
        ("-1", "is not more than 0"),
        ("100000.01", "is more than 100000 USD a month"),
        ("1e9", "is more than 100000 USD a month"),
        ("1.001", "has more than two decimals (cents)"),
        ("50,00", "is not a number"),
    ],
)
def test_amounts_refused(value, problem):
    assert budget.amount_problem(value) == problem


@pytest.mark.parametrize("value", ["me@example.org", "first.last+gpubox@mail.example.co.uk", "a_b@x-y.io"])
def test_addresses_accepted(value):
    assert budget.email_problem(value) == ""


@pytest.mark.parametrize(
    "value",
    [
        "me",
        "me@example",
        "@example.org",
        "me@.example.org",
        "me@example..org",
        "me..you@example.org",
        ".me@example.org",
        "me@-example.org",
        "me@example.org,you@example.org",
        "me@example.org you@example.org",
        "me@example.org\nBcc: you@example.org",
        "Me <me@example.org>",
        "me@example.123",
        "a" * 65 + "@example.org",
        "me@" + "a" * 250 + ".org",
    ],
)
def test_addresses_refused(value):
    assert budget.email_problem(value)


def test_refusal_names_the_value_and_the_fix_and_absent_needs_neither():
    params = {"name": "gpubox-demo", "amount": "12.345", "email": "me@example.org", "state": "present"}
    assert budget.refusal(params).startswith("gpubox_budget_usd is '12.345', which has more than two decimals")
    assert "-e gpubox_budget_usd=50" in budget.refusal(params)
    params.update(amount="50", email="me@example")
    assert budget.refusal(params).startswith("gpubox_budget_email is 'me@example', which is not a plain e-mail")
    assert budget.refusal({"name": "gpubox-demo", "amount": None, "email": None, "state": "absent"}) == ""
    assert budget.refusal({"name": "a/b", "amount": "50", "email": "me@example.org", "state": "present"})


def test_the_same_amount_written_otherwise_is_no_change():
    current = budget.wanted_budget("gpubox-demo", "50")
    current["BudgetLimit"]["Amount"] = "50.0"  # as AWS writes it
    assert budget.budget_changes(current, "gpubox-demo", "50.00") == []
    assert budget.budget_changes(current, "gpubox-demo", "51") == ["limit 50.0 USD -> 51 USD"]
    assert budget.budget_changes({**current, "CostFilters": {}}, "gpubox-demo", "50")[0].startswith("cost filter")


def test_an_update_keeps_what_budgets_computes_out_and_the_period_in():
    current = {
        **budget.wanted_budget("gpubox-demo", "40"),
        "TimePeriod": {"Start": 1, "End": 2},
        "CalculatedSpend": {"ActualSpend": {"Amount": "3", "Unit": "USD"}},
        "LastUpdatedTime": 5,
    }
    new = budget.updated_budget(current, "gpubox-demo", "50")
    assert new["BudgetLimit"] == {"Amount": "50", "Unit": "USD"}
    assert new["TimePeriod"] == {"Start": 1, "End": 2}
    assert "CalculatedSpend" not in new and "LastUpdatedTime" not in new


def test_notification_labels():
    keys = [budget.notification_key(n) for n in budget.wanted_notifications()]
    assert [budget.label(k) for k in keys] == ["ACTUAL > 50 %", "ACTUAL > 80 %", "ACTUAL > 100 %", "FORECASTED > 100 %"]
