import gc
import subprocess
import sys
import weakref
from collections.abc import Iterator

import pytest

from voxflow.garbage import freeze_at_exit, imports_uncollected


@pytest.fixture()
def collector_restored() -> Iterator[None]:
    enabled = gc.isenabled()
    yield
    gc.unfreeze()  # frozen objects return to the oldest generation: this test process collects them again
    (gc.enable if enabled else gc.disable)()


def test_imports_run_without_collection_and_what_they_made_is_frozen(collector_restored: None) -> None:
    gc.enable()
    gc.unfreeze()
    with imports_uncollected():
        assert not gc.isenabled()
        made = [[i] for i in range(1000)]  # container objects: tracked by the collector
    assert gc.isenabled()
    assert gc.get_freeze_count() >= len(made)


def test_cycles_made_after_the_block_are_still_collected(collector_restored: None) -> None:
    class Node:
        pass

    with imports_uncollected():
        kept = Node()
    later = Node()
    later.self = later
    probe = weakref.ref(later)
    del later
    gc.collect()
    assert probe() is None and kept is not None


def test_a_disabled_collector_stays_disabled_even_when_the_block_fails(collector_restored: None) -> None:
    gc.disable()
    with pytest.raises(ImportError), imports_uncollected():
        raise ImportError("no such module")
    assert not gc.isenabled()


def test_objects_are_frozen_before_the_interpreter_tears_them_down() -> None:
    # atexit runs handlers last-registered first: the probe registered before freeze_at_exit runs after it.
    code = (
        "import atexit, gc\n"
        "from voxflow.garbage import freeze_at_exit\n"
        "atexit.register(lambda: print('frozen at exit:', gc.get_freeze_count()))\n"
        "print('frozen before:', gc.get_freeze_count(), 'tracked:', len(gc.get_objects()))\n"
        "freeze_at_exit()\n"
    )
    lines = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.splitlines()
    before = lines[0].split()
    assert before[2] == "0"
    assert int(lines[1].split(": ")[1]) >= 0.95 * int(before[4])  # what was alive then (a few temporaries died since)


def test_freeze_at_exit_leaves_the_running_process_alone(collector_restored: None) -> None:
    gc.unfreeze()
    freeze_at_exit()
    assert gc.get_freeze_count() == 0
