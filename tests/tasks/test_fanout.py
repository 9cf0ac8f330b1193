from tasks.fanout import balanced_chunk_size


def test_large_batches_use_the_configured_chunk() -> None:
    assert balanced_chunk_size(10_000, max_chunk=48, workers=4) == 48


def test_small_batches_spread_over_every_worker() -> None:
    assert balanced_chunk_size(45, max_chunk=48, workers=2) == 12  # 4 chunks for 2 workers
    assert balanced_chunk_size(1, max_chunk=48, workers=16) == 1
