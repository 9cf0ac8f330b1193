from hypothesis import given
from hypothesis import strategies as st

from tasks.fanout import MIN_CHUNK, plan_chunks


def test_large_batches_use_the_configured_chunk_then_taper() -> None:
    sizes = [len(chunk) for chunk in plan_chunks(list(range(10_000)), max_chunk=48, workers=4)]
    assert sizes[:200] == [48] * 200
    tail = sizes[sizes.index(next(s for s in sizes if s < 48)) :]
    assert tail == sorted(tail, reverse=True)  # shrinking toward the end
    assert tail[-2] == MIN_CHUNK


def test_the_last_round_leaves_no_worker_a_long_chunk_alone() -> None:
    # 500 files on 2 workers: the old fixed 48-file chunks ended on a lone chunk of ~2 s.
    sizes = [len(chunk) for chunk in plan_chunks(list(range(500)), max_chunk=48, workers=2)]
    assert max(sizes[-4:]) <= MIN_CHUNK


def test_small_batches_spread_over_every_worker() -> None:
    assert [len(c) for c in plan_chunks(list(range(45)), max_chunk=48, workers=2)] == [12, 9, 6, 5, 4, 4, 4, 1]
    assert plan_chunks([7], max_chunk=48, workers=16) == [[7]]
    assert plan_chunks([], max_chunk=48, workers=2) == []


@given(n=st.integers(0, 3_000), max_chunk=st.integers(1, 200), workers=st.integers(1, 32))
def test_chunks_cover_the_batch_in_order_within_bounds(n: int, max_chunk: int, workers: int) -> None:
    chunks = plan_chunks(list(range(n)), max_chunk=max_chunk, workers=workers)
    assert [item for chunk in chunks for item in chunk] == list(range(n))
    assert all(1 <= len(chunk) <= max_chunk for chunk in chunks)
    assert all(len(chunk) >= min(MIN_CHUNK, max_chunk) for chunk in chunks[:-1])
