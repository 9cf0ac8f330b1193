"""Shared by the task tests: models registered for real (tests.helpers stays light: a probe imports it in a CLI's process)."""

from __future__ import annotations

import numpy as np

from features.schema import FEATURE_NAMES, FEATURE_VERSION
from models.registry import save_version
from models.train import fit_booster
from store.models import ModelStore
from tasks.model_registry import model_document
from voxflow.settings import Settings


def register_model(store: ModelStore, settings: Settings, seed: int, *, training_hashes: list[str] | None = None) -> str:
    """Train a small real booster on random features, save it under ``settings.models_dir`` and register it; its version."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, 40)
    booster = fit_booster(rng.normal(size=(40, len(FEATURE_NAMES))) + labels[:, None], labels, rounds=5, seed=seed)
    fields = {"feature_version": FEATURE_VERSION, "feature_names": FEATURE_NAMES, "threshold": 0.5, "created_at": "2026-12-06T00:00:00+00:00"}
    card = save_version(booster, fields, settings.models_dir, training_hashes=training_hashes)
    store.register(model_document(card, settings.models_dir))
    return card.version
