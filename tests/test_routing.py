from ingest.decoding.decode import Decoder
from ingest.routing import DEADLETTERS, TIMESERIES, Router


def test_a_batch_is_cut_by_bytes_as_well_as_by_count() -> None:
    router = Router(Decoder(), batch_size=1000, flush_interval=1.0, max_batch_bytes=10_000)
    oversize = b"x" * 4_000
    assert router.handle("devices/d1/bogus", oversize, 0, 1_764_000_000 * 10**9) is None
    assert router.handle("devices/d1/bogus", oversize, 1, 1_764_000_000 * 10**9) is None
    full = router.handle("devices/d1/bogus", oversize, 2, 1_764_000_000 * 10**9)
    assert full is not None and full.dest == DEADLETTERS and len(full.items) == 3


def test_points_batch_is_cut_at_batch_size() -> None:
    router = Router(Decoder(), batch_size=3, flush_interval=1.0)
    now = 1_764_000_000 * 10**9
    results = [
        router.handle("devices/d1/telemetry", b'{"ts": %d, "t": 1}' % (now // 10**6 - i), i, now) for i in range(3)
    ]
    assert results[:2] == [None, None]
    assert results[2] is not None and results[2].dest == TIMESERIES and results[2].tokens == [0, 1, 2]
