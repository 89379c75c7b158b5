#!/usr/bin/python
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A project's AWS Budgets cost budget: monthly, on what carries gpubox's cost allocation tag, with e-mail
notifications (amazon.aws has no Budgets module)."""

from __future__ import annotations

DOCUMENTATION = r"""
module: budget
short_description: A monthly AWS Budgets cost budget on gpubox's tagged resources, with e-mail notifications
author:
  - gpubox maintainers (!UNKNOWN)
description:
  - Creates, updates in place or deletes one AWS Budgets budget, named I(name), and touches no other.
  - The budget is a monthly COST budget in USD, filtered by the cost allocation tag C(ManagedBy=gpubox)
    (C(user:ManagedBy$gpubox)), with e-mail notifications to I(email) at 50, 80 and 100 % of actual spend and at
    100 % of forecast spend. Notifications of the budget that are not these are removed.
  - M(gpubox.gpubox.budget_info) reads it.
  - The amount and the address are checked before any call to AWS.
options:
  name:
    description: The budget's name (C(gpubox-PROJECT)).
    type: str
    required: true
  amount:
    description:
      - Monthly limit in USD, more than 0, at most 100000, at most two decimals. Required with I(state=present).
    type: str
  email:
    description: Where the notifications go. Required with I(state=present).
    type: str
  state:
    description: C(present) makes the budget so, C(absent) deletes it.
    type: str
    choices: [present, absent]
    default: present
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
"""

EXAMPLES = r"""
- name: A budget of 50 USD a month for project demo
  gpubox.gpubox.budget:
    region: us-east-1
    name: gpubox-demo
    amount: "50"
    email: me@example.org

- name: No budget for project demo
  gpubox.gpubox.budget:
    region: us-east-1
    name: gpubox-demo
    state: absent
"""

RETURN = r"""
exists:
  description: Whether the budget exists (after the change; in check mode, whether it would).
  returned: always
  type: bool
budget:
  description: The budget as Budgets describes it (limit, actual and forecast spend in USD); empty when none.
  returned: always
  type: dict
  sample: {"name": "gpubox-demo", "limit": "50.0", "actual": "12.31", "forecast": "40.2", "unit": "USD"}
changes:
  description: What was (in check mode, would be) changed.
  returned: always
  type: list
  elements: str
  sample: ["limit 40.0 USD -> 50 USD", "notification ACTUAL > 80 %: e-mail to me@example.org"]
"""

import contextlib  # noqa: E402 - Ansible modules document themselves before their imports
import re  # noqa: E402
from decimal import Decimal, InvalidOperation  # noqa: E402

from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule  # noqa: E402
from ansible_collections.gpubox.gpubox.plugins.module_utils.budgets import Budgets, account_of, summary  # noqa: E402
from ansible_collections.gpubox.gpubox.plugins.module_utils.gpubox_ec2 import error_text  # noqa: E402

with contextlib.suppress(ImportError):  # AnsibleAWSModule reports a missing botocore
    import botocore.exceptions

MAX_USD = Decimal(100000)
# The cost allocation tag every gpubox resource carries (activated in the Billing console to be counted).
COST_FILTERS = {"TagKeyValue": ["user:ManagedBy$gpubox"]}
# (type, percent of the limit) of each notification.
THRESHOLDS = (("ACTUAL", 50), ("ACTUAL", 80), ("ACTUAL", 100), ("FORECASTED", 100))
# A plain address: a local part of the common characters, a domain of labels, a top-level domain of letters.
EMAIL = re.compile(
    r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}"
)
NAME = re.compile(r"[A-Za-z0-9_.-]{1,100}")


def amount_problem(value) -> str:
    """Why value is not a budget amount in USD ('' when it is)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return "is empty"
    text = "" if isinstance(value, bool) else str(value).strip()
    try:
        amount = Decimal(text)
    except InvalidOperation:
        return "is not a number"
    if not amount.is_finite():
        return "is not a number"
    if amount <= 0:
        return "is not more than 0"
    if amount > MAX_USD:
        return f"is more than {MAX_USD} USD a month"
    if amount.as_tuple().exponent < -2:
        return "has more than two decimals (cents)"
    return ""


def email_problem(value) -> str:
    """Why value is not an e-mail address gpubox sends notifications to ('' when it is)."""
    if not isinstance(value, str) or not value:
        return "is empty"
    if len(value) > 254 or not EMAIL.fullmatch(value) or len(value.split("@", 1)[0]) > 64:
        return "is not a plain e-mail address (name@example.org)"
    return ""


def refusal(params: dict) -> str:
    """The message that refuses these parameters before any call to AWS ('' when they are fine)."""
    if not NAME.fullmatch(params["name"] or ""):
        return f"The budget name {params['name']!r} is not letters, digits, '_', '.' and '-' (at most 100)."
    if params["state"] != "present":
        return ""
    problem = amount_problem(params["amount"])
    if problem:
        return (
            f"gpubox_budget_usd is {params['amount']!r}, which {problem}. Set the monthly limit in USD, for example "
            "-e gpubox_budget_usd=50 (more than 0, at most 100000, at most two decimals)."
        )
    problem = email_problem(params["email"])
    if problem:
        return (
            f"gpubox_budget_email is {params['email']!r}, which {problem}. Set where the notifications go, for "
            "example -e gpubox_budget_email=me@example.org."
        )
    return ""


def wanted_budget(name: str, amount: str) -> dict:
    return {
        "BudgetName": name,
        "BudgetLimit": {"Amount": str(Decimal(amount)), "Unit": "USD"},
        "CostFilters": COST_FILTERS,
        "TimeUnit": "MONTHLY",
        "BudgetType": "COST",
    }


def wanted_notifications() -> list[dict]:
    return [
        {
            "NotificationType": kind,
            "ComparisonOperator": "GREATER_THAN",
            "Threshold": float(percent),
            "ThresholdType": "PERCENTAGE",
        }
        for kind, percent in THRESHOLDS
    ]


def notification_key(notification: dict) -> tuple:
    return (
        notification.get("NotificationType"),
        notification.get("ComparisonOperator"),
        float(notification.get("Threshold", 0)),
        notification.get("ThresholdType", "PERCENTAGE"),
    )


def label(key: tuple) -> str:
    """ACTUAL > 80 % for a notification's key."""
    kind, operator, threshold, unit = key
    sign = {"GREATER_THAN": ">", "LESS_THAN": "<", "EQUAL_TO": "="}.get(operator, operator)
    return f"{kind} {sign} {threshold:g}{' %' if unit == 'PERCENTAGE' else ' USD'}"


def budget_changes(current: dict, name: str, amount: str) -> list[str]:
    """What differs between the budget as described and the one wanted (the settings gpubox owns)."""
    changes = []
    limit = current.get("BudgetLimit", {})
    try:
        same_amount = Decimal(str(limit.get("Amount"))) == Decimal(amount)
    except InvalidOperation:
        same_amount = False
    if not same_amount or limit.get("Unit") != "USD":
        changes.append(f"limit {limit.get('Amount')} {limit.get('Unit')} -> {Decimal(amount)} USD")
    if current.get("CostFilters") != COST_FILTERS:
        changes.append(f"cost filter {current.get('CostFilters')} -> {COST_FILTERS}")
    for key, value in (("TimeUnit", "MONTHLY"), ("BudgetType", "COST")):
        if current.get(key) != value:
            changes.append(f"{key} {current.get(key)} -> {value}")
    return changes


def updated_budget(current: dict, name: str, amount: str) -> dict:
    """The NewBudget of UpdateBudget: the current one with gpubox's settings; what Budgets computes left out."""
    kept = {k: v for k, v in current.items() if k in ("CostTypes", "TimePeriod")}
    return {**kept, **wanted_budget(name, amount)}


def converge(api: Budgets, params: dict, check: bool) -> tuple[list[str], bool]:
    """Make the budget what params say; returns (changes, exists afterwards)."""
    name, amount, email, state = params["name"], params["amount"], params["email"], params["state"]
    current = api.describe()
    subscriber = [{"SubscriptionType": "EMAIL", "Address": email}]
    if state == "absent":
        if not current:
            return [], False
        if not check:
            api.client.delete_budget(AccountId=api.account, BudgetName=name)
        return [f"deleted budget {name}"], False
    if not current:
        if not check:
            api.client.create_budget(
                AccountId=api.account,
                Budget=wanted_budget(name, amount),
                NotificationsWithSubscribers=[
                    {"Notification": n, "Subscribers": subscriber} for n in wanted_notifications()
                ],
            )
        return [f"created budget {name}: {Decimal(amount)} USD a month, notifications to {email}"], True
    changes = budget_changes(current, name, amount)
    if changes and not check:
        api.client.update_budget(AccountId=api.account, NewBudget=updated_budget(current, name, amount))
    wanted = {notification_key(n): n for n in wanted_notifications()}
    have = {notification_key(n): n for n in api.notifications()}
    for key, notification in have.items():
        if key not in wanted:
            changes.append(f"removed notification {label(key)}")
            if not check:
                api.client.delete_notification(AccountId=api.account, BudgetName=name, Notification=notification)
        elif [(s.get("SubscriptionType"), s.get("Address")) for s in api.subscribers(notification)] != [
            ("EMAIL", email)
        ]:
            # One subscriber, this address: the notification is made again with it (its subscribers go with it).
            changes.append(f"notification {label(key)}: e-mail to {email}")
            if not check:
                api.client.delete_notification(AccountId=api.account, BudgetName=name, Notification=notification)
                api.client.create_notification(
                    AccountId=api.account, BudgetName=name, Notification=wanted[key], Subscribers=subscriber
                )
    for key, notification in wanted.items():
        if key not in have:
            changes.append(f"added notification {label(key)}: e-mail to {email}")
            if not check:
                api.client.create_notification(
                    AccountId=api.account, BudgetName=name, Notification=notification, Subscribers=subscriber
                )
    return changes, True


def main() -> None:
    module = AnsibleAWSModule(
        argument_spec={
            "name": {"type": "str", "required": True},
            "amount": {"type": "str"},
            "email": {"type": "str"},
            "state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
        },
        supports_check_mode=True,
    )
    params = module.params
    problem = refusal(params)
    if problem:
        module.fail_json(msg=problem)
    config = {"retries": {"max_attempts": 5}, "connect_timeout": 5, "read_timeout": 10}
    try:
        api = Budgets(module.client("budgets", config=config), account_of(module, config), params["name"])
        changes, exists = converge(api, params, module.check_mode)
        budget = {} if module.check_mode or not exists else api.describe()
    except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError, ValueError) as e:
        module.fail_json(msg=f"AWS Budgets refused budget {params['name']}: {error_text(e)}")
    module.exit_json(changed=bool(changes), exists=exists, budget=summary(budget), changes=changes)


if __name__ == "__main__":
    main()
