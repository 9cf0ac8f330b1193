"""The registry as flows use it: model files (models/registry.py) plus the ``models`` collection (store/models.py)."""

from __future__ import annotations

import hashlib
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

import voxflow
from features.schema import FEATURE_NAMES, FEATURE_VERSION
from models.artifact import ModelBundle, ModelCard, check_feature_set
from models.registry import load_bundle
from store.cache import connect_redis
from store.locks import hold_lock
from store.models import ModelStore
from store.mongo import open_database
from voxflow import services
from voxflow.errors import ModelError
from voxflow.settings import Settings

_RECIPE = Path(__file__).resolve().parents[1] / "models" / "train.py"
MODELS_LOCK = "models"
MODELS_LOCK_WAIT_S = 10.0  # a promotion or rollback is a few writes: one in progress is waited for, not refused


def code_version() -> str:
    """voxflow's version and a short hash of the training recipe's source, e.g. ``0.1.0+3f2a9c01``."""
    return f"{voxflow.__version__}+{hashlib.sha256(_RECIPE.read_bytes()).hexdigest()[:8]}"


def model_document(card: ModelCard, models_dir: Path) -> dict[str, Any]:
    """The ``models`` document of a saved model (status is set by the store)."""
    return {
        "version": card.version,
        "booster_sha256": card.booster_sha256,
        "training_hashes_sha256": card.training_hashes_sha256,
        "feature_version": card.feature_version,
        "data_hash": card.training.get("data_hash"),
        "code_version": card.training.get("code_version"),
        "metrics": card.metrics,
        "threshold": card.threshold,
        "positive_label": card.positive_label,
        "training": card.training,
        "params": card.params,
        "path": str(models_dir / card.version),
    }


def registered_checksums(doc: dict[str, Any] | None) -> dict[str, str | None]:
    """The checksums a ``models`` document records, as :func:`models.registry.load_bundle` checks them (none for
    no document; a document from before training lists were checksummed records none for its list)."""
    doc = doc or {}
    return {"expected_sha256": doc.get("booster_sha256"), "expected_training_sha256": doc.get("training_hashes_sha256")}


def resolve_bundle(store: ModelStore, models_dir: Path, version: str | None = None) -> ModelBundle:
    """Load ``version``, else the champion the ``models`` collection names, else the shipped baseline.

    A registered version must match the booster sha256 recorded in the collection.
    """
    wanted = version
    if wanted is None:
        champion = store.champion()
        wanted = champion["version"] if champion else None
    doc = store.find(wanted) if wanted else None
    try:
        return load_bundle(models_dir, wanted, **registered_checksums(doc))
    except ModelError as exc:
        if version is not None or wanted is None:
            raise
        # Nothing can score, or retrain, until the champion loads: say the way out.
        raise ModelError(f"{exc.reason}; it is the champion: `voxflow models rollback` makes the previous one champion again, "
                         "`voxflow models promote VERSION` another, or restore its folder from a backup") from exc


def load_champion(models: ModelStore, models_dir: Path, version: str | None = None) -> ModelBundle:
    """The model inference uses: ``version`` when pinned, else the registered champion, else the shipped baseline.

    ``models`` is the run's own ``models`` collection (``Stores.models``): no connection of its own.
    """
    bundle = resolve_bundle(models, models_dir, version)
    check_feature_set(bundle.card, feature_version=FEATURE_VERSION, feature_names=FEATURE_NAMES)
    return bundle


class FollowedChampion:
    """The champion of the moment, for a run that scores batch after batch (a drain may linger for hours).

    :meth:`current` asks the ``models`` collection which version is champion (one small query) and loads it
    only after a promotion or rollback named another one since; so inference always uses the champion.
    """

    def __init__(self, models: ModelStore, models_dir: Path) -> None:
        self._models, self._models_dir = models, models_dir
        self._named = self._champion_named()  # read before loading: a change in between is seen by the next call
        self.bundle = load_champion(models, models_dir)

    def _champion_named(self) -> str | None:
        champion = self._models.champion()
        return champion["version"] if champion else None  # None: the shipped baseline

    def current(self) -> tuple[ModelBundle, bool]:
        """The champion's bundle now, and whether it changed since the previous call."""
        named = self._champion_named()
        if named == self._named:
            return self.bundle, False
        self._named, self.bundle = named, load_champion(self._models, self._models_dir)
        return self.bundle, True


@contextmanager
def registry_changes(settings: Settings) -> Iterator[None]:
    """Hold the ``models`` Redis lock while the champion changes: a promotion or rollback is several
    writes, and two at once could leave no champion or two.

    Raises
    ------
    LockError
        When another change still holds the lock after ``MODELS_LOCK_WAIT_S``.
    """
    with connect_redis(services.redis_url(settings)) as client, hold_lock(
        client, MODELS_LOCK, ttl_s=settings.lock_ttl_s, wait_s=MODELS_LOCK_WAIT_S
    ):
        yield


def usable_artifact(settings: Settings) -> Callable[[dict[str, Any]], None]:
    """A check for a registered model about to become champion: its artifact loads, matches the registry's
    sha256 and fits the features this code computes (raises ModelError otherwise)."""

    def check(doc: dict[str, Any]) -> None:
        bundle = load_bundle(settings.models_dir, doc["version"], **registered_checksums(doc))
        check_feature_set(bundle.card, feature_version=FEATURE_VERSION, feature_names=FEATURE_NAMES)

    return check


def register_model(card: ModelCard, settings: Settings, *, promote: bool = False, reason: str = "trained from a manifest") -> dict[str, Any]:
    """Record a saved model in the ``models`` collection as challenger, or champion when ``promote``."""
    with open_database(services.mongo_uri(settings), settings.mongo_db) as db:
        store = ModelStore(db)
        store.ensure_indexes()
        store.register({**model_document(card, settings.models_dir), "reason": reason})
        if not promote:
            return store.get(card.version)
        with registry_changes(settings):
            return store.promote(card.version, f"{reason}; promoted by hand", check=usable_artifact(settings))
