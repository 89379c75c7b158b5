"""The project's budget against the local API (moto's Budgets, with UpdateBudget and DescribeSubscribersForNotification
added by tests/ground/moto_server.py): budget.yml makes it, changes nothing on a rerun, updates the amount and the
address in place, deletes it with state=absent, never touches another project's budget or one made by hand, and
refuses a bad amount, address or state before anything is made; list.yml and costs.yml show it.

One ordered story (pytest runs a module's tests in order) on a local API of its own."""

from __future__ import annotations

import json

import pytest

from tests.conftest import noise
from tests.ground.ec2api import TEST_AGENT, api_client, recorded_requests
from tests.integration.ec2play import home_env, playbook

PROJECT = "pytest-budget"
NAME = f"gpubox-{PROJECT}"
ACCOUNT = "123456789012"  # moto's
# Someone else's budgets in the same account: another project's, and one made by hand.
OTHERS = {
    "gpubox-pytest-budget-other": "20",
    "team-monthly": "1000",
}
ACTUAL = [("ACTUAL", 50.0), ("ACTUAL", 80.0), ("ACTUAL", 100.0), ("FORECASTED", 100.0)]


@pytest.fixture(scope="module")
def budgets(api):
    """The tests' own Budgets client (its calls are not the playbooks')."""
    client = api_client("budgets", api.endpoint)
    for name, amount in OTHERS.items():
        client.create_budget(
            AccountId=ACCOUNT,
            Budget={
                "BudgetName": name,
                "BudgetLimit": {"Amount": amount, "Unit": "USD"},
                "TimeUnit": "MONTHLY",
                "BudgetType": "COST",
            },
            NotificationsWithSubscribers=[
                {
                    "Notification": {
                        "NotificationType": "ACTUAL",
                        "ComparisonOperator": "GREATER_THAN",
                        "Threshold": 90.0,
                        "ThresholdType": "PERCENTAGE",
                    },
                    "Subscribers": [{"SubscriptionType": "EMAIL", "Address": "finance@example.org"}],
                }
            ],
        )
    return client


@pytest.fixture(scope="module")
def env(api, tmp_path_factory):
    return home_env(api.env, tmp_path_factory.mktemp("budget") / "home")


def state(client) -> dict:
    """Every budget of the account: its limit, filters, notifications and their subscribers."""
    found = {}
    for budget in client.describe_budgets(AccountId=ACCOUNT).get("Budgets", []):
        name = budget["BudgetName"]
        notes = client.describe_notifications_for_budget(AccountId=ACCOUNT, BudgetName=name)["Notifications"]
        found[name] = {
            "limit": (budget["BudgetLimit"]["Amount"], budget["BudgetLimit"]["Unit"]),
            "type": (budget["BudgetType"], budget["TimeUnit"]),
            "filters": budget.get("CostFilters", {}),
            "notifications": sorted(
                (
                    n["NotificationType"],
                    n["ComparisonOperator"],
                    float(n["Threshold"]),
                    n["ThresholdType"],
                    json.dumps(
                        client.describe_subscribers_for_notification(
                            AccountId=ACCOUNT, BudgetName=name, Notification=n
                        )["Subscribers"]
                    ),
                )
                for n in notes
            ),
        }
    return found


def others(client) -> dict:
    return {name: value for name, value in state(client).items() if name != NAME}


def budget_run(env, *args: str, amount="50", email="me@example.org", project=PROJECT):
    extra = {"gpubox_project": project, "gpubox_budget_usd": amount, "gpubox_budget_email": email}
    return playbook("budget", env, *args, extra=extra)


def expected(amount: str, email: str) -> dict:
    subscriber = json.dumps([{"SubscriptionType": "EMAIL", "Address": email}])
    return {
        "limit": (amount, "USD"),
        "type": ("COST", "MONTHLY"),
        "filters": {"TagKeyValue": ["user:ManagedBy$gpubox"]},
        "notifications": sorted((kind, "GREATER_THAN", pct, "PERCENTAGE", subscriber) for kind, pct in ACTUAL),
    }


def quiet(run) -> bool:
    """No warning but Ansible's own about an inventory without hosts (a project without boxes)."""
    return not [line for line in noise(run.output) if "provided hosts list is empty" not in line]


def shown(run, task: str) -> str:
    (msg,) = [result["msg"] for name, result in run.tasks() if name == task]
    return msg


def test_budget_is_made_for_the_project_only_and_a_rerun_changes_nothing(env, budgets):
    before = others(budgets)
    assert NAME not in state(budgets)

    run = budget_run(env)
    assert run.rc == 0, run.output[-3000:]
    assert run.stats["changed"] == 1
    assert state(budgets)[NAME] == expected("50", "me@example.org")

    again = budget_run(env)
    assert again.rc == 0, again.output[-3000:]
    assert again.stats["changed"] == 0
    assert state(budgets)[NAME] == expected("50", "me@example.org")
    assert others(budgets) == before


def test_check_mode_says_what_would_change_and_changes_nothing(env, budgets):
    before = state(budgets)
    run = budget_run(env, "--check", amount="75", email="new@example.org")
    assert run.rc == 0, run.output[-3000:]
    assert run.stats["changed"] == 1
    assert "50 USD -> 75 USD" in shown(run, "budget : Print the budget")
    assert state(budgets) == before


def budget_calls(api) -> list[str]:
    """The Budgets calls the playbooks made so far (CreateBudget, UpdateBudget...)."""
    targets = [{k.lower(): v for k, v in r.get("headers", {}).items()} for r in recorded_requests(api.workdir)]
    return [
        h["x-amz-target"].rsplit(".", 1)[-1]
        for h in targets
        if "Budget" in h.get("x-amz-target", "") and TEST_AGENT not in h.get("user-agent", "")
    ]


def test_a_new_amount_and_address_update_the_budget_in_place(env, budgets, api):
    before = others(budgets)
    calls = len(budget_calls(api))
    run = budget_run(env, amount="75.5", email="new@example.org")
    assert run.rc == 0, run.output[-3000:]
    assert run.stats["changed"] == 1
    assert state(budgets)[NAME] == expected("75.5", "new@example.org")
    assert others(budgets) == before
    # in place: UpdateBudget, never a delete and a new budget
    made = budget_calls(api)[calls:]
    assert "UpdateBudget" in made and "DeleteBudget" not in made and "CreateBudget" not in made, made
    assert budget_run(env, amount="75.50", email="new@example.org").stats["changed"] == 0


@pytest.mark.parametrize(
    ("amount", "email", "named"),
    [
        ("0", "me@example.org", "gpubox_budget_usd is '0', which is not more than 0"),
        ("-5", "me@example.org", "gpubox_budget_usd is '-5', which is not more than 0"),
        ("fifty", "me@example.org", "gpubox_budget_usd is 'fifty', which is not a number"),
        ("NaN", "me@example.org", "gpubox_budget_usd is 'NaN', which is not a number"),
        ("100001", "me@example.org", "gpubox_budget_usd is '100001', which is more than 100000"),
        ("12.345", "me@example.org", "gpubox_budget_usd is '12.345', which has more than two decimals"),
        ("50", "me", "gpubox_budget_email is 'me', which is not a plain e-mail address"),
        ("50", "me@example", "gpubox_budget_email is 'me@example', which is not a plain e-mail address"),
        (
            "50",
            "me@example.org,you@example.org",
            "gpubox_budget_email is 'me@example.org,you@example.org', which is not a plain e-mail",
        ),
        ("50", "", "gpubox_budget_email is '', which is empty"),
    ],
)
def test_a_bad_amount_or_address_is_refused_before_anything_is_made(env, budgets, amount, email, named):
    before = state(budgets)
    run = budget_run(env, amount=amount, email=email, project="pytest-budget-refused")
    assert run.rc != 0
    assert named in run.failure(), run.failure()
    assert "Set " in run.failure()  # and how to fix it
    assert state(budgets) == before


def test_a_bad_state_is_refused(env, budgets):
    before = state(budgets)
    run = budget_run(env, "-e", "gpubox_budget_state=gone")
    assert run.rc != 0
    assert 'gpubox_budget_state is "gone"' in run.failure()
    assert state(budgets) == before


def test_list_and_costs_show_the_budget_and_what_is_spent(env, budgets):
    spent = "pytest-budget-spent"
    budgets.create_budget(
        AccountId=ACCOUNT,
        Budget={
            "BudgetName": f"gpubox-{spent}",
            "BudgetLimit": {"Amount": "40", "Unit": "USD"},
            "TimeUnit": "MONTHLY",
            "BudgetType": "COST",
            "CalculatedSpend": {
                "ActualSpend": {"Amount": "10.5", "Unit": "USD"},
                "ForecastedSpend": {"Amount": "33.25", "Unit": "USD"},
            },
        },
    )
    run = playbook("list", env, extra={"gpubox_project": spent})
    assert run.rc == 0, run.output[-3000:]
    assert quiet(run)
    text = " ".join(shown(run, "ec2_list : Print the boxes").split())
    assert f"Budget gpubox-{spent}: 40 USD a month" in text
    assert "spent this month 10.5 USD (26 %), forecast 33.25 USD" in text

    run = playbook("costs", env, "-e", "gpubox_regions=us-west-2", extra={"gpubox_project": PROJECT})
    assert run.rc == 0, run.output[-3000:]
    text = " ".join(shown(run, "ec2_list : Print what gpubox created and what it costs").split())
    assert f"Budget {NAME}: 75.5 USD a month" in text
    assert "spent this month 0 USD (0 %)" in text


def test_list_is_quiet_without_a_budget_and_says_one_line_when_budgets_does_not_answer(env, budgets):
    run = playbook("list", env, extra={"gpubox_project": "pytest-budget-none"})
    assert run.rc == 0, run.output[-3000:]
    assert quiet(run)
    assert "Budget" not in shown(run, "ec2_list : Print the boxes")

    run = playbook("costs", env, "-e", "gpubox_regions=us-west-2", extra={"gpubox_project": "pytest-budget-none"})
    assert "Budget: none; playbooks/budget.yml makes one" in shown(
        run, "ec2_list : Print what gpubox created and what it costs"
    )

    # Budgets alone unreachable (botocore's per-service endpoint): list.yml still lists, with one line about it.
    unreachable = dict(env, AWS_ENDPOINT_URL_BUDGETS="http://127.0.0.1:9")
    run = playbook("list", unreachable, extra={"gpubox_project": PROJECT})
    assert run.rc == 0, run.output[-3000:]
    assert quiet(run)
    lines = [line for line in shown(run, "ec2_list : Print the boxes").splitlines() if "Budget" in line]
    assert len(lines) == 1 and lines[0].startswith("Budget: not read ("), lines


def test_absent_deletes_the_project_budget_only(env, budgets):
    before = others(budgets)
    run = playbook("budget", env, "-e", "gpubox_budget_state=absent", extra={"gpubox_project": PROJECT})
    assert run.rc == 0, run.output[-3000:]
    assert run.stats["changed"] == 1
    assert NAME not in state(budgets)
    assert others(budgets) == before
    again = playbook("budget", env, "-e", "gpubox_budget_state=absent", extra={"gpubox_project": PROJECT})
    assert again.rc == 0 and again.stats["changed"] == 0
