from ingest.mqtt.acks import AckTracker


def test_acks_released_in_receive_order_only() -> None:
    t = AckTracker()
    a, b, c = t.add(10), t.add(11), t.add(12)
    assert t.done([b]) == []
    assert t.done([c]) == []
    assert t.done([a]) == [10, 11, 12]
    assert t.outstanding == 0


def test_tokens_of_an_old_connection_are_ignored() -> None:
    t = AckTracker()
    old = t.add(1)
    t.reset()
    new = t.add(1)
    assert t.done([old]) == []
    assert t.outstanding == 1
    assert t.done([new]) == [1]
