from pathlib import Path

import pytest

from ingest.spool import Spool, SpoolFull


def test_records_replay_in_order_and_survive_reopen(tmp_path: Path) -> None:
    s = Spool(tmp_path, 1 << 20)
    for i in range(5):
        s.append(("batch", i))
    assert s.peek() == ("batch", 0)
    s.pop()
    s.close()
    s2 = Spool(tmp_path, 1 << 20)
    assert len(s2) == 4  # a fresh process sees what was not popped
    got = []
    while (r := s2.peek()) is not None:
        got.append(r[1])
        s2.pop()
    assert got == [1, 2, 3, 4]
    assert len(s2) == 0 and s2.bytes == 0
    s2.append(("batch", 5))
    assert s2.peek() == ("batch", 5)
    s2.close()


def test_full_spool_refuses_and_recovers(tmp_path: Path) -> None:
    s = Spool(tmp_path, 2000)
    s.append(b"x" * 1500)
    with pytest.raises(SpoolFull):
        s.append(b"y" * 1500)
    assert s.peek() == b"x" * 1500
    s.pop()
    s.append(b"y" * 1500)
    assert s.peek() == b"y" * 1500
    s.close()


def test_torn_tail_is_ignored(tmp_path: Path) -> None:
    s = Spool(tmp_path, 1 << 20)
    s.append("good")
    s.close()
    seg = next(tmp_path.glob("*.seg"))
    with seg.open("ab") as f:
        f.write(b"\x10\x00\x00\x00garbage")
    s2 = Spool(tmp_path, 1 << 20)
    assert s2.peek() == "good"
    assert len(s2) == 1
    s2.close()
