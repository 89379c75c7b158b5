"""The one polling loop of the EC2 modules (plugins/module_utils/gpubox_ec2.py: poll, wait_instance): an answer once
it is done, a failure that names the last answer once the time is up, or at once in a state it never leaves."""

from __future__ import annotations

import pytest

from tests.conftest import ROOT, load_module

ec2 = load_module(ROOT / "plugins/module_utils/gpubox_ec2.py", "gpubox_ec2_polling")


class Clock:
    """A clock that moves only when the loop sleeps."""

    def __init__(self):
        self.now, self.slept = 0.0, []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_poll_answers_once_done():
    answers, clock = iter(["pending", "pending", "ready"]), Clock()
    got = ec2.poll(lambda: next(answers), lambda a: a == "ready", 60, str, sleep=clock.sleep, clock=clock, pause=2)
    assert got == "ready" and clock.slept == [2, 2]


def test_poll_fails_with_the_last_answer_once_the_time_is_up():
    clock = Clock()
    with pytest.raises(ec2.Ec2BoxError, match="still pending after 10 s"):
        ec2.poll(
            lambda: "pending", lambda a: False, 10, lambda a: f"still {a} after 10 s", sleep=clock.sleep, clock=clock
        )
    assert clock.now >= 10


def test_poll_fails_at_once_in_a_broken_state():
    clock = Clock()
    with pytest.raises(ec2.Ec2BoxError, match="error"):
        ec2.poll(
            lambda: "error",
            lambda a: a == "completed",
            600,
            str,
            broken=lambda a: a == "error",
            sleep=clock.sleep,
            clock=clock,
        )
    assert clock.now == 0


class Ec2:
    """describe_instances answers the given states in turn, then the last one again."""

    def __init__(self, *states: str):
        self.states = list(states)

    def describe_instances(self, InstanceIds):  # noqa: N803 - boto3's name
        state = self.states.pop(0) if len(self.states) > 1 else self.states[0]
        return {"Reservations": [{"Instances": [{"InstanceId": InstanceIds[0], "State": {"Name": state}}]}]}


def test_wait_instance_reads_the_state():
    clock = Clock()
    got = ec2.wait_instance(
        Ec2("stopping", "stopping", "stopped"), "i-1", lambda now: now != "stopping", 60, sleep=clock.sleep, clock=clock
    )
    assert got["State"]["Name"] == "stopped" and len(clock.slept) == 2
    clock = Clock()
    with pytest.raises(ec2.Ec2BoxError, match="Instance i-1 is still stopped after 5 s"):
        ec2.wait_instance(Ec2("stopped"), "i-1", lambda now: now == "running", 5, sleep=clock.sleep, clock=clock)
