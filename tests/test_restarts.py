"""The supervisor's restart schedule: each process backs off on its own, a healthy run resets it."""

from __future__ import annotations

from iot.restarts import RestartPolicy, RestartSchedule


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_quick_exits_double_the_delay_up_to_the_maximum() -> None:
    clock = Clock()
    schedule: RestartSchedule[int] = RestartSchedule(RestartPolicy(1.0, 30.0, 60.0), clock)
    delays = []
    for _ in range(7):
        schedule.started(0)
        clock.now += 0.5  # dies at once
        delays.append(schedule.exited(0))
        clock.now += delays[-1]
    assert delays == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]


def test_a_healthy_run_resets_the_backoff() -> None:
    clock = Clock()
    schedule: RestartSchedule[int] = RestartSchedule(RestartPolicy(1.0, 30.0, healthy_after=5.0), clock)
    for _ in range(4):  # backoff grows to 8 s
        schedule.started(0)
        clock.now += 1.0
        schedule.exited(0)
    schedule.started(0)
    clock.now += 4.9  # not healthy yet: keeps growing
    assert schedule.exited(0) == 16.0
    schedule.started(0)
    clock.now += 5.0  # ran the healthy period
    assert schedule.exited(0) == 1.0
    schedule.started(0)
    clock.now += 0.1
    assert schedule.exited(0) == 2.0  # and grows again from there


def test_each_process_has_its_own_deadline() -> None:
    clock = Clock()
    schedule: RestartSchedule[int] = RestartSchedule(RestartPolicy(1.0, 30.0, 60.0), clock)
    for k in (0, 1):
        schedule.started(k)
    for _ in range(4):  # process 0 dies again and again: its next wait is 16 s
        clock.now += 1.0
        schedule.exited(0)
        clock.now += 10.0
        assert schedule.due() == [0]
        schedule.started(0)
    clock.now += 1.0
    assert schedule.exited(0) == 16.0
    assert schedule.exited(1) == 1.0  # process 1 dies once: 1 s, whatever process 0 waits for
    assert schedule.waiting(0) and schedule.waiting(1)
    assert schedule.due() == []
    clock.now += 1.0
    assert schedule.due() == [1]
    schedule.started(1)
    assert not schedule.waiting(1) and schedule.due() == []
    clock.now += 15.0
    assert schedule.due() == [0]
