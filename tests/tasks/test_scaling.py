from tasks.scaling import cluster_load


def test_cluster_load_means_cpu_and_memory_share() -> None:
    workers = {
        "a": {"metrics": {"cpu": 150.0, "memory": 500}, "memory_limit": 1000},  # psutil can exceed 100 %: cap it
        "b": {"metrics": {"cpu": 50.0, "memory": 100}, "memory_limit": 1000},
    }
    cpu, memory = cluster_load(workers)
    assert cpu == 75.0 and memory == 30.0
    assert cluster_load({}) == (None, None)
