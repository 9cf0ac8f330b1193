"""The labels collection: one label per audio content, later imports replace earlier ones."""

from pymongo.database import Database

from store.labels import LabelStore


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
