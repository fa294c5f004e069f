"""The recorder (relay/delivery/recorder.py): writes of answers that arrive together share
one round trip, and each caller gets its own results."""

from __future__ import annotations

import threading

import pytest
from redis import ResponseError

from relay.delivery.recorder import Recorder


def test_each_caller_gets_its_own_results(redis):
    recorder = Recorder(redis)
    assert recorder.write([lambda p: p.set("a", "1"), lambda p: p.get("a")]) == [True, b"1"]
    assert recorder.write([]) == []


def test_an_error_is_raised_in_its_own_caller(redis):
    recorder = Recorder(redis)
    redis.set("text", "x")
    with pytest.raises(ResponseError):
        recorder.write([lambda p: p.incr("text")])
    assert recorder.write([lambda p: p.incr("n")]) == [1]


def test_writes_arriving_together_share_round_trips(redis):
    recorder = Recorder(redis)
    batches: list[int] = []
    run = recorder._run

    def counting(batch):
        batches.append(len(batch))
        return run(batch)

    recorder._commit._run_batch = counting
    start = threading.Barrier(20)

    def write(n: int) -> None:
        start.wait()
        assert recorder.write([lambda p: p.incr(f"k{n}")]) == [1]

    threads = [threading.Thread(target=write, args=(n,)) for n in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(batches) == 20
    assert len(batches) < 20  # some went together
