# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What gpubox's Budgets modules share: the reads of one account's budget of one name, and the summary they
return (modules budget and budget_info)."""

from __future__ import annotations

import contextlib

with contextlib.suppress(ImportError):  # AnsibleAWSModule reports a missing botocore
    import botocore.exceptions


def account_of(module, config: dict) -> str:
    """The caller's account: every Budgets call names it."""
    return module.client("sts", config=config).get_caller_identity()["Account"]


def spend(budget: dict, key: str) -> str:
    return str(budget.get("CalculatedSpend", {}).get(key, {}).get("Amount", ""))


def summary(budget: dict) -> dict:
    if not budget:
        return {}
    return {
        "name": budget.get("BudgetName", ""),
        "limit": str(budget.get("BudgetLimit", {}).get("Amount", "")),
        "unit": budget.get("BudgetLimit", {}).get("Unit", ""),
        "actual": spend(budget, "ActualSpend"),
        "forecast": spend(budget, "ForecastedSpend"),
        "filters": budget.get("CostFilters", {}),
    }


class Budgets:
    """The calls on one account's budget of one name."""

    def __init__(self, client, account: str, name: str):
        self.client, self.account, self.name = client, account, name

    def describe(self) -> dict:
        try:
            return self.client.describe_budget(AccountId=self.account, BudgetName=self.name)["Budget"]
        except botocore.exceptions.ClientError as e:
            if e.response.get("Error", {}).get("Code") == "NotFoundException":
                return {}
            raise

    def notifications(self) -> list[dict]:
        found, token = [], None
        while True:
            page = self.client.describe_notifications_for_budget(
                AccountId=self.account, BudgetName=self.name, **({"NextToken": token} if token else {})
            )
            found += page.get("Notifications", [])
            token = page.get("NextToken")
            if not token:
                return found

    def subscribers(self, notification: dict) -> list[dict]:
        page = self.client.describe_subscribers_for_notification(
            AccountId=self.account, BudgetName=self.name, Notification=notification
        )
        return page.get("Subscribers", [])
