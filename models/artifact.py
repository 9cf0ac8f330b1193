"""A screening model on disk: an XGBoost booster (UBJ) plus its model card (JSON). Never pickle."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

import numpy as np

from voxflow.errors import ModelError

if TYPE_CHECKING:  # xgboost (and the scikit-learn it pulls in) costs ~1.4 s of imports: only processes that score pay it
    import xgboost as xgb

BOOSTER_FILE = "model.ubj"
CARD_FILE = "card.json"
TRAINING_HASHES_FILE = "training_hashes.txt"  # the audio a model was trained on: what it never saw is a fair test of it
POSITIVE_LABEL = "pathological"
NEGATIVE_LABEL = "healthy"


@dataclass(frozen=True)
class ModelCard:
    """What a model is, what it was trained on and how well it did (everything but the weights)."""

    version: str
    feature_version: int
    feature_names: tuple[str, ...]
    threshold: float
    booster_sha256: str
    created_at: str
    training_hashes_sha256: str | None = None  # of TRAINING_HASHES_FILE; None: saved without it, or before 2026-12-07
    positive_label: str = POSITIVE_LABEL
    negative_label: str = NEGATIVE_LABEL
    training: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    # The training features' decile bins (models.drift.input_profile); empty on cards saved before 2026-12-07's fifth session.
    input_profile: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["feature_names"] = list(self.feature_names)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ModelCard":
        return cls(**{**data, "feature_names": tuple(data["feature_names"])})


@dataclass(frozen=True)
class ModelBundle:
    """The booster's raw UBJ bytes and its card: small, picklable by Dask, loaded once per worker."""

    booster_ubj: bytes
    card: ModelCard


@dataclass(frozen=True)
class Scored:
    """Scores and per-row explanations for one feature matrix."""

    scores: np.ndarray  # (n,) probability of the positive label
    labels: list[str]
    top_factors: list[list[dict[str, float | str]]]


def model_version(booster_ubj: bytes, feature_version: int, threshold: float) -> str:
    """Content-addressed model version, e.g. ``xgb-fv1-3f2a9c01d4``: of the booster and the threshold that
    turns its scores into labels (the same booster with another threshold labels clips differently)."""
    content = booster_ubj + f"threshold={float(threshold)!r}".encode()
    return f"xgb-fv{feature_version}-{hashlib.sha256(content).hexdigest()[:10]}"


def save_model(booster: xgb.Booster, card_fields: dict[str, Any], directory: Path, *, training_hashes: Iterable[str] | None = None) -> ModelCard:
    """Write ``model.ubj``, ``card.json`` and ``training_hashes.txt`` into ``directory`` and return the card.

    ``card_fields`` holds every ModelCard field except ``version``, ``booster_sha256`` and ``training_hashes_sha256``,
    which are derived from the booster bytes (and the threshold, for the version) and the training list.
    ``training_hashes`` are the sha256 of the audio it was trained on (one per line in the file; no file
    without them, which reads as "unknown", not as "trained on nothing").
    """
    raw = bytes(booster.save_raw(raw_format="ubj"))
    listed = None if training_hashes is None else "".join(f"{sha}\n" for sha in sorted(set(training_hashes))).encode()
    card = ModelCard(
        version=model_version(raw, card_fields["feature_version"], card_fields["threshold"]),
        booster_sha256=hashlib.sha256(raw).hexdigest(),
        training_hashes_sha256=None if listed is None else hashlib.sha256(listed).hexdigest(),
        **card_fields,
    )
    directory.mkdir(parents=True, exist_ok=True)
    (directory / BOOSTER_FILE).write_bytes(raw)
    if listed is None:
        (directory / TRAINING_HASHES_FILE).unlink(missing_ok=True)  # a former save's list is not this model's
    else:
        (directory / TRAINING_HASHES_FILE).write_bytes(listed)
    (directory / CARD_FILE).write_text(json.dumps(card.to_dict(), indent=2) + "\n")
    return card


def read_training_hashes(directory: Path, card: ModelCard) -> frozenset[str] | None:
    """The sha256 of the audio the model of ``card`` in ``directory`` was trained on; None when its card records no list.

    Raises
    ------
    ModelError
        When the list is missing or differs from the checksum its card records.
    """
    if card.training_hashes_sha256 is None:
        return None  # saved without a list, or before cards recorded its checksum: a file there is not trusted
    path = directory / TRAINING_HASHES_FILE
    try:
        listed = path.read_bytes()
    except FileNotFoundError as exc:
        raise ModelError(f"model folder {directory} is incomplete: {exc.filename} is missing") from exc
    actual = hashlib.sha256(listed).hexdigest()
    if actual != card.training_hashes_sha256:
        raise ModelError(
            f"model {card.version}: {path} has sha256 {actual[:12]}, not the card's {card.training_hashes_sha256[:12]}: "
            "the list of recordings it was trained on was emptied or edited; restore the folder from a backup, or save the model again"
        )
    return frozenset(listed.decode().split())


def read_bundle(directory: Path) -> ModelBundle:
    """Read a model folder, checking the booster against the sha256 its card records and the card against its version.

    The training list is not read: only a retrain reads it (:func:`read_training_hashes`, which checks it), and a
    damaged list must not stop scoring with an intact booster.

    Raises
    ------
    ModelError
        When the card or booster is missing, the card is unreadable, the booster bytes do not match, or the
        card's threshold, feature version or labels were edited.
    """
    try:
        card = ModelCard.from_dict(json.loads((directory / CARD_FILE).read_text()))
        raw = (directory / BOOSTER_FILE).read_bytes()
    except FileNotFoundError as exc:
        raise ModelError(f"model folder {directory} is incomplete: {exc.filename} is missing") from exc
    except (ValueError, TypeError, KeyError) as exc:
        raise ModelError(f"model card in {directory} is unreadable: {exc}") from exc
    actual = hashlib.sha256(raw).hexdigest()
    if actual != card.booster_sha256:
        raise ModelError(
            f"model {card.version}: booster sha256 {actual[:12]} does not match the card's "
            f"{card.booster_sha256[:12]}; the artifact is corrupt or was replaced"
        )
    # The version covers the threshold as well as the booster: an edited threshold (or a card copied
    # beside another booster) no longer matches the name the predictions would record. Versions made
    # before 2026-11-28 named the booster alone, and are still read.
    legacy = f"xgb-fv{card.feature_version}-{actual[:10]}"
    if card.version not in (model_version(raw, card.feature_version, card.threshold), legacy):
        raise ModelError(f"model {card.version}: its card's threshold or feature version was edited (they no longer give its version)")
    if (card.positive_label, card.negative_label) != (POSITIVE_LABEL, NEGATIVE_LABEL):
        raise ModelError(
            f"model {card.version}: its card labels scores {card.positive_label!r}/{card.negative_label!r}, "
            f"not {POSITIVE_LABEL!r}/{NEGATIVE_LABEL!r}"
        )
    return ModelBundle(booster_ubj=raw, card=card)


def check_feature_set(card: ModelCard, *, feature_version: int, feature_names: tuple[str, ...]) -> None:
    """Refuse a model trained on another feature set than the one this code computes.

    Raises
    ------
    ModelError
        Naming both versions and what to do; when they agree with the feature count, the first feature named differently.
    """
    todo = "retrain it (voxflow train / make model) or pin a compatible model"
    if card.feature_version != feature_version or len(card.feature_names) != len(feature_names):
        raise ModelError(
            f"model {card.version} was trained on feature version {card.feature_version} "
            f"({len(card.feature_names)} features) but this voxflow computes version {feature_version} "
            f"({len(feature_names)} features): {todo}"
        )
    differ = [i for i, (theirs, ours) in enumerate(zip(card.feature_names, feature_names)) if theirs != ours]
    if differ:
        first = differ[0]
        raise ModelError(
            f"model {card.version}: its card's feature names or their order differ from feature version {feature_version}'s "
            f"as this voxflow computes it: feature {first + 1} is {card.feature_names[first]!r} on the card, "
            f"{feature_names[first]!r} here: {todo}"
        )


@lru_cache(maxsize=4)
def _booster(raw: bytes) -> xgb.Booster:
    import xgboost as xgb

    booster = xgb.Booster(params={"nthread": 1})
    booster.load_model(bytearray(raw))
    return booster


def score(bundle: ModelBundle, features: np.ndarray, *, n_factors: int = 3) -> Scored:
    """Score a feature matrix and explain each score by its strongest feature contributions.

    Parameters
    ----------
    bundle : ModelBundle
        The model; its booster is deserialised once per process and cached.
    features : np.ndarray, shape (n, len(card.feature_names))
        Rows in the card's feature order; NaN marks a missing value (XGBoost handles it).
    n_factors : int
        How many SHAP contributions to keep per row, largest absolute first.

    Returns
    -------
    Scored
    """
    card = bundle.card
    if features.ndim != 2 or features.shape[1] != len(card.feature_names):
        raise ModelError(
            f"model {card.version} expects {len(card.feature_names)} features, got matrix of shape {features.shape}"
        )
    if len(features) == 0:
        return Scored(scores=np.empty(0), labels=[], top_factors=[])
    import xgboost as xgb

    booster = _booster(bundle.booster_ubj)
    matrix = xgb.DMatrix(features, feature_names=list(card.feature_names), missing=np.nan)
    scores = booster.predict(matrix)
    contributions = booster.predict(matrix, pred_contribs=True)[:, :-1]  # last column is the bias
    factors = []
    for row, contrib in zip(features, contributions):
        order = np.argsort(-np.abs(contrib))[:n_factors]
        factors.append(
            [
                # A feature a clip lacks (no voiced frame: no F0) is None: NaN is no JSON, and MongoDB servers may refuse it.
                {"feature": card.feature_names[i], "value": float(row[i]) if np.isfinite(row[i]) else None, "contribution": round(float(contrib[i]), 4)}
                for i in order
            ]
        )
    labels = [card.positive_label if s >= card.threshold else card.negative_label for s in scores]
    return Scored(scores=scores.astype(np.float64), labels=labels, top_factors=factors)
