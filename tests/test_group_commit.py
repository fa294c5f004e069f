"""Group commit: concurrent callers share one batch; each gets its own answer or error."""

from __future__ import annotations

import threading
import time

import pytest

from relay.group_commit import GroupCommit
from tests.conftest import wait_until


class Interrupted(Exception):
    pass


class Stopped(BaseException):
    """What a killed greenlet or a gevent timeout raises in the sender."""


class Recorder:
    """A run_batch that records its batches; the first one can be held on the wire."""

    def __init__(self, hold_first: bool = False):
        self.batches: list[list[int]] = []
        self.on_the_wire = threading.Event()
        self.release = threading.Event()
        if not hold_first:
            self.release.set()

    def __call__(self, items):
        self.batches.append(list(items))
        self.on_the_wire.set()
        self.release.wait(10)
        return [item * 10 for item in items]


def recording(commit: GroupCommit, outcome: dict[int, object]):
    """A caller that records what its submit returned or raised, for the assertions."""

    def call(n: int) -> None:
        try:
            outcome[n] = commit.submit(n)
        except BaseException as exc:
            outcome[n] = exc

    return call


def test_a_lone_caller_makes_one_call_for_one_item():
    recorder = Recorder()
    commit = GroupCommit(recorder, Interrupted)
    assert commit.submit(4) == 40
    assert commit.submit(5) == 50
    assert recorder.batches == [[4], [5]]


def test_callers_that_arrive_while_a_batch_is_on_the_wire_share_the_next_one():
    recorder = Recorder(hold_first=True)
    commit = GroupCommit(recorder, Interrupted)
    answers: dict[int, int] = {}

    def call(n: int) -> None:
        answers[n] = commit.submit(n)

    first = threading.Thread(target=call, args=(1,))
    first.start()
    assert recorder.on_the_wire.wait(5)
    others = [threading.Thread(target=call, args=(n,)) for n in range(2, 7)]
    for thread in others:
        thread.start()
    wait_until(lambda: len(commit._process_state().queued) == 5, what="five queued callers")
    recorder.release.set()
    for thread in [first, *others]:
        thread.join(5)
    assert recorder.batches[0] == [1]
    assert sorted(recorder.batches[1]) == [2, 3, 4, 5, 6]
    assert len(recorder.batches) == 2
    assert answers == {n: n * 10 for n in range(1, 7)}


def test_an_error_for_one_item_reaches_only_its_caller():
    def run_batch(items):
        return [ValueError(f"bad {i}") if i == 2 else i for i in items]

    commit = GroupCommit(run_batch, Interrupted)
    assert commit.submit(1) == 1
    with pytest.raises(ValueError, match="bad 2"):
        commit.submit(2)


def test_a_failed_batch_fails_every_caller_of_it_and_the_next_batch_still_runs():
    calls = []

    def run_batch(items):
        calls.append(list(items))
        if len(calls) == 1:
            raise ConnectionError("redis went away")
        return list(items)

    commit = GroupCommit(run_batch, Interrupted)
    with pytest.raises(ConnectionError):
        commit.submit(1)
    assert commit.submit(2) == 2


def test_callers_whose_sender_was_stopped_get_an_error_not_a_silent_none():
    on_the_wire, release = threading.Event(), threading.Event()
    batches: list[list[int]] = []

    def run_batch(items):
        batches.append(list(items))
        if len(batches) == 1:  # held on the wire while the others queue up
            on_the_wire.set()
            release.wait(10)
            return list(items)
        raise Stopped()  # the second batch's sender is stopped mid-send

    commit = GroupCommit(run_batch, Interrupted)
    outcome: dict[int, object] = {}
    call = recording(commit, outcome)

    first = threading.Thread(target=call, args=(1,))
    first.start()
    assert on_the_wire.wait(5)
    others = [threading.Thread(target=call, args=(n,)) for n in (2, 3)]
    for thread in others:
        thread.start()
    wait_until(lambda: len(commit._process_state().queued) == 2, what="two queued callers")
    release.set()
    for thread in [first, *others]:
        thread.join(5)
    assert outcome[1] == 1
    assert sorted(batches[1]) == [2, 3]
    sender, follower = (2, 3) if isinstance(outcome[2], Stopped) else (3, 2)
    assert isinstance(outcome[sender], Stopped)  # the sender's own stop goes on up
    assert isinstance(outcome[follower], Interrupted)  # never None, never a hang


def test_a_caller_whose_deadline_passes_behind_a_stuck_batch_gives_up_unsent():
    recorder = Recorder(hold_first=True)
    commit = GroupCommit(recorder, Interrupted, expired=TimeoutError)
    first = threading.Thread(target=commit.submit, args=(1,))
    first.start()
    assert recorder.on_the_wire.wait(5)
    with pytest.raises(TimeoutError):
        commit.submit(2, deadline=time.monotonic() + 0.1)
    assert commit._process_state().queued == []  # it left the queue
    recorder.release.set()
    first.join(5)
    assert commit.submit(3, deadline=time.monotonic() + 5) == 30
    assert recorder.batches == [[1], [3]]  # 2 was never sent


def test_with_several_senders_a_caller_goes_out_while_a_batch_is_on_the_wire():
    recorder = Recorder(hold_first=True)
    commit = GroupCommit(recorder, Interrupted, senders=2)
    answers: dict[int, int] = {}
    callers = [
        threading.Thread(target=lambda n=n: answers.__setitem__(n, commit.submit(n)))
        for n in (1, 2)
    ]
    callers[0].start()
    assert recorder.on_the_wire.wait(5)
    callers[1].start()
    wait_until(lambda: len(recorder.batches) == 2, what="a second batch on the wire")
    assert recorder.batches == [[1], [2]]  # 2 did not wait for 1's answer
    recorder.release.set()
    for caller in callers:
        caller.join(5)
    assert answers == {1: 10, 2: 20}


class HeldBatches:
    """A run_batch whose every batch waits on the wire until the test lets it go."""

    def __init__(self):
        self.batches: list[list[int]] = []
        self.lets_go: list[threading.Event] = [threading.Event() for _ in range(10)]

    def __call__(self, items):
        n = len(self.batches)
        self.batches.append(list(items))
        self.lets_go[n].wait(10)
        return [item * 10 for item in items]


def test_with_several_senders_a_caller_waits_for_the_batch_that_took_its_item_along():
    held = HeldBatches()
    commit = GroupCommit(held, Interrupted, senders=2)
    answers: dict[int, int | None] = {}

    def call(n: int) -> None:
        answers[n] = commit.submit(n)

    callers = {n: threading.Thread(target=call, args=(n,)) for n in (1, 2, 3, 4)}
    for n in (1, 2):  # both turns taken, each batch held on the wire
        callers[n].start()
        wait_until(lambda n=n: len(held.batches) == n, what=f"batch {n} on the wire")
    for n in (3, 4):
        callers[n].start()
    wait_until(lambda: len(commit._process_state().queued) == 2, what="two queued callers")
    held.lets_go[0].set()  # the first turn passes on, with both queued items
    wait_until(lambda: len(held.batches) == 3, what="the queued items on the wire")
    held.lets_go[1].set()  # the other turn comes free while they are on the wire...
    callers[2].join(5)
    assert 3 not in answers and 4 not in answers  # ...and neither returns before its answer
    held.lets_go[2].set()
    for caller in callers.values():
        caller.join(5)
    assert held.batches == [[1], [2], [3, 4]]
    # Never None: an answer comes only from its batch.
    assert answers == {1: 10, 2: 20, 3: 30, 4: 40}


def test_a_turn_passes_to_the_first_caller_waiting_with_everything_queued():
    held = HeldBatches()
    commit = GroupCommit(held, Interrupted)
    answers: dict[int, int] = {}
    threads = []
    for n in range(1, 7):
        thread = threading.Thread(target=lambda n=n: answers.__setitem__(n, commit.submit(n)))
        thread.start()
        threads.append(thread)
        if n == 1:
            wait_until(lambda: len(held.batches) == 1, what="the first batch on the wire")
    wait_until(lambda: len(commit._process_state().queued) == 5, what="five queued callers")
    held.lets_go[0].set()
    wait_until(lambda: len(held.batches) == 2, what="the second batch on the wire")
    assert held.batches[1] == [2, 3, 4, 5, 6]  # in the order they came, sent by the first
    assert commit._process_state().queued == []
    held.lets_go[1].set()
    for thread in threads:
        thread.join(5)
    assert answers == {n: n * 10 for n in range(1, 7)}
    assert len(held.batches) == 2


class StoppedOnWaking(threading.Event):
    """The event of a caller stopped (a killed greenlet) just as its turn is handed to it."""

    def wait(self, timeout=None):
        woken = super().wait(timeout)
        if woken and threading.current_thread().name == "stopped":
            raise Stopped()
        return woken


def test_a_turn_handed_to_a_caller_that_is_stopped_goes_on_to_the_next(monkeypatch):
    monkeypatch.setattr("relay.group_commit._new_event", StoppedOnWaking)
    held = HeldBatches()
    commit = GroupCommit(held, Interrupted)
    outcome: dict[int, object] = {}
    call = recording(commit, outcome)

    first = threading.Thread(target=call, args=(1,))
    first.start()
    wait_until(lambda: len(held.batches) == 1, what="the first batch on the wire")
    stopped = threading.Thread(target=call, args=(2,), name="stopped")
    stopped.start()  # first in line: the turn goes to it
    wait_until(lambda: len(commit._process_state().queued) == 1, what="the first caller queued")
    others = [threading.Thread(target=call, args=(n,)) for n in (3, 4)]
    for thread in others:
        thread.start()
    wait_until(lambda: len(commit._process_state().queued) == 3, what="three queued callers")
    held.lets_go[0].set()
    held.lets_go[1].set()
    for thread in [first, stopped, *others]:
        thread.join(5)
    assert isinstance(outcome[2], Stopped)
    assert (outcome[1], outcome[3], outcome[4]) == (10, 30, 40)  # not left waiting
    assert held.batches == [[1], [3, 4]]  # the stopped caller's item left unsent
    held.lets_go[2].set()
    assert commit.submit(5) == 50  # and the turn is free again
