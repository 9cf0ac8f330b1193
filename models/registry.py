"""Model artifacts on disk: content-addressed folders under the registry, then the shipped baseline.

Which version is champion is not decided here: the ``models`` collection says so (store/models.py).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from models.artifact import CARD_FILE, ModelBundle, ModelCard, read_bundle, save_model
from voxflow.errors import ModelError

if TYPE_CHECKING:
    import xgboost as xgb

SHIPPED_DIR = Path(__file__).resolve().parent / "baseline"
STAGING = ".staging"


def shipped_bundle() -> ModelBundle:
    """The baseline model shipped with voxflow: the champion while nothing was registered."""
    return read_bundle(SHIPPED_DIR)


def save_version(booster: xgb.Booster, card_fields: dict[str, Any], models_dir: Path) -> ModelCard:
    """Write a model under ``models_dir/<version>`` (its content address); an existing version is kept as is."""
    staging = models_dir / STAGING
    shutil.rmtree(staging, ignore_errors=True)
    card = save_model(booster, card_fields, staging)
    final = models_dir / card.version
    if final.exists():
        shutil.rmtree(staging)
    else:
        staging.rename(final)
    return card


def load_bundle(models_dir: Path, version: str | None = None, *, expected_sha256: str | None = None) -> ModelBundle:
    """Load ``version`` from ``models_dir`` (or the shipped baseline of that version); None gives the baseline.

    Parameters
    ----------
    expected_sha256 : str, optional
        The booster checksum recorded in the registry; the artifact must match it as well as its own card.

    Raises
    ------
    ModelError
        When the version is unknown or its artifact fails a checksum.
    """
    if version is None:
        bundle = shipped_bundle()
    elif (models_dir / version / CARD_FILE).is_file():
        bundle = read_bundle(models_dir / version)
    else:
        bundle = shipped_bundle()
        if bundle.card.version != version:
            raise ModelError(f"model version {version!r} not found in {models_dir} nor shipped with voxflow")
    if expected_sha256 is not None and bundle.card.booster_sha256 != expected_sha256:
        raise ModelError(
            f"model {bundle.card.version}: artifact sha256 {bundle.card.booster_sha256[:12]} differs from the "
            f"registry's {expected_sha256[:12]}; the artifact was replaced"
        )
    return bundle
