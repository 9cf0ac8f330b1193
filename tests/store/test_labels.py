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


def test_forget_deletes_the_labels_of_these_contents_only_and_says_which_had_one(mongo_db: Database) -> None:
    store = LabelStore(mongo_db)
    store.ensure_indexes()
    store.replace([{"audio_sha256": f"{i:064x}", "label": "healthy", "path": f"/c/{i}.wav", "subject_id": f"s{i % 3}"} for i in range(2500)])
    assert store.listed_under(subjects={"s1"}, paths={"/c/0.wav"}) == {(f"{i:064x}", f"/c/{i}.wav", f"s{i % 3}") for i in range(2500) if i % 3 == 1 or i == 0}
    named = {f"{i:064x}" for i in range(0, 2500, 2)} | {"f" * 64}  # across three batches, one never labelled
    assert store.forget(named, dry_run=True) == named - {"f" * 64} and store.count() == 2500
    assert store.forget(named) == named - {"f" * 64}
    assert [doc["audio_sha256"] for doc in store.all()] == [f"{i:064x}" for i in range(1, 2500, 2)]
