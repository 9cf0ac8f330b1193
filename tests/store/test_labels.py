"""The labels collection: one label per audio content, later imports replace earlier ones, a refused write removes none."""

import pytest
from pymongo.database import Database

from store.labels import LabelStore
from voxflow.errors import ServiceError


def test_replace_overwrites_by_hash(mongo_db: Database) -> None:
    store = LabelStore(mongo_db)
    store.ensure_indexes()
    first = [{"audio_sha256": f"{i:064x}", "label": "healthy", "source": "a"} for i in range(1500)]
    assert store.replace(first) == 1500
    corrected = [{"audio_sha256": f"{i:064x}", "label": "pathological", "source": "b"} for i in range(1000, 2000)]
    assert store.replace(corrected) == 1000
    docs = store.all()
    assert store.count() == 2000 and len(docs) == 2000 and "_id" not in docs[0]
    assert docs[999]["label"] == "healthy" and docs[1000]["label"] == "pathological" and docs[1000]["source"] == "b"


def test_refused_write_keeps_the_earlier_label(mongo_db: Database) -> None:
    store = LabelStore(mongo_db)
    store.ensure_indexes()
    first, second = "a" * 64, "b" * 64
    store.replace([{"audio_sha256": sha, "label": "healthy", "source": "a"} for sha in (first, second)])
    refused = {"audio_sha256": second, "label": "pathological", "source": "b", "metadata": {"vhi": float("inf")}}  # nx-27017 refuses inf
    with pytest.raises(ServiceError, match="refused 1 labels .*audio bbbbbbbbbbbb.*no stored label was removed"):
        store.replace([{"audio_sha256": first, "label": "pathological", "source": "b"}, refused])
    assert [(doc["label"], doc["source"]) for doc in store.all()] == [("pathological", "b"), ("healthy", "a")]
