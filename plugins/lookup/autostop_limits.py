# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""autostop_limits: the ranges the autostop agent accepts for its numeric settings, for the controller's checks.

Their one home is plugins/module_utils/autostop_limits.py, which the agent on the box carries too: a role that
refuses a value before it reaches a box (autostop, ec2_preflight) refuses exactly what the agent would. The test
autostop_within checks a value; this lookup gives the bounds for the refusal's text.
"""

from __future__ import annotations

DOCUMENTATION = r"""
name: autostop_limits
short_description: The lowest and highest value the autostop agent accepts for a numeric setting
description:
  - For each term, a setting of the agent (its own name, e.g. idle_minutes, without the role's autostop_ prefix),
    a dict with C(low) and C(high) (whole numbers as int) and C(range), both as text, C(LOW-HIGH) (a fraction of
    one as 1/N, e.g. C(1/60-744)).
  - With no term, every setting's such dict, in one dict by the setting's name.
options:
  _terms:
    description: The settings' names; none for all.
    required: false
"""

EXAMPLES = r"""
- name: Refuse a max_hours the agent would refuse
  ansible.builtin.assert:
    that: max_hours is gpubox.gpubox.autostop_within('max_hours')
    fail_msg: "max_hours must be 0 to {{ lookup('gpubox.gpubox.autostop_limits', 'max_hours').high }}"
"""

RETURN = r"""
_raw:
  description: One dict (low, high, range) per term; with no term, one dict of them all by name.
  type: list
  elements: dict
"""

from ansible.errors import AnsibleError  # noqa: E402
from ansible.plugins.lookup import LookupBase  # noqa: E402
from ansible_collections.gpubox.gpubox.plugins.module_utils.autostop_limits import RANGES  # noqa: E402


def number(value: float):
    """10080 rather than 10080.0, so that a refusal reads as the setting is written."""
    return int(value) if float(value).is_integer() else value


def shown(value: float) -> str:
    if float(value).is_integer():
        return str(int(value))
    if 0 < value < 1 and (1 / value) == round(1 / value):
        return f"1/{round(1 / value)}"  # max_hold_hours: one minute is 1/60 hours
    return f"{value:g}"


def limits(name: str) -> dict:
    low, high = RANGES[name]
    return {"low": number(low), "high": number(high), "range": f"{shown(low)}-{shown(high)}"}


class LookupModule(LookupBase):
    def run(self, terms, variables=None, **kwargs):
        unknown = [t for t in terms if t not in RANGES]
        if unknown:
            raise AnsibleError(f"autostop_limits knows {', '.join(RANGES)}, not {', '.join(map(repr, unknown))}")
        if not terms:
            return [{name: limits(name) for name in RANGES}]
        return [limits(term) for term in terms]
