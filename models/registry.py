"""Model artifacts on disk: content-addressed folders under the registry, then the shipped baseline.

Which version is champion is not decided here: the ``models`` collection says so (store/models.py).
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

from models.artifact import BOOSTER_FILE, CARD_FILE, TRAINING_HASHES_FILE, ModelBundle, ModelCard, read_bundle, save_model
from voxflow.errors import ModelError

if TYPE_CHECKING:
    import xgboost as xgb

SHIPPED_DIR = Path(__file__).resolve().parent / "baseline"
STAGING_PREFIX = ".staging-"
STALE_STAGING_S = 3600.0


def shipped_bundle() -> ModelBundle:
    """The baseline model shipped with voxflow: the champion while nothing was registered."""
    return read_bundle(SHIPPED_DIR)


def save_version(
    booster: xgb.Booster, card_fields: dict[str, Any], models_dir: Path, *, training_hashes: Iterable[str] | None = None
) -> ModelCard:
    """Write a model under ``models_dir/<version>`` (its content address); the folder then holds this save's
    booster, card and training list, whatever it held before.

    An existing folder of that version that reads back whole gets this save's files one by one, each replaced at
    once, so a process loading it meanwhile never finds it missing (the booster is the same bytes: the version
    says so); one that does not (a damaged artifact) is replaced whole. Each save stages in a folder of its own,
    so two processes saving at once never mix the files of two versions.
    """
    models_dir.mkdir(parents=True, exist_ok=True)
    _remove_stale_staging(models_dir)
    staging = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=models_dir))
    staging.chmod(0o755)  # mkdtemp's 0700 would become the version folder's
    damaged = models_dir / f"{staging.name}-damaged"
    try:
        card = save_model(booster, card_fields, staging, training_hashes=training_hashes)
        final = models_dir / card.version
        if _intact(final, card.version):
            _replace_files(staging, final)
            return card
        with contextlib.suppress(FileNotFoundError):  # absent, or moved aside by a save running beside this one
            final.rename(damaged)
        try:
            staging.rename(final)
        except OSError:
            if not _intact(final, card.version):  # another save put it there first; anything else is an error
                raise
        return card
    finally:
        shutil.rmtree(staging, ignore_errors=True)  # gone already once renamed
        shutil.rmtree(damaged, ignore_errors=True)


def _replace_files(staging: Path, final: Path) -> None:
    """Put ``staging``'s files in place of ``final``'s, the card last; a training list it lacks is removed."""
    for name in (BOOSTER_FILE, TRAINING_HASHES_FILE, CARD_FILE):
        if (staging / name).exists():
            (staging / name).replace(final / name)
        else:
            (final / name).unlink(missing_ok=True)


def _remove_stale_staging(models_dir: Path) -> None:
    """Remove staging folders a killed save left behind (an hour old: no save takes that long)."""
    cutoff = time.time() - STALE_STAGING_S
    for leftover in models_dir.glob(f"{STAGING_PREFIX}*"):
        with contextlib.suppress(OSError):  # gone meanwhile, or not ours to remove
            if leftover.stat().st_mtime < cutoff:
                shutil.rmtree(leftover)


def _intact(folder: Path, version: str) -> bool:
    try:
        return read_bundle(folder).card.version == version
    except ModelError:
        return False


def model_folder(models_dir: Path, version: str | None = None) -> Path:
    """The folder of ``version``: under ``models_dir``, else the shipped baseline's when it is that version (or None).

    Raises
    ------
    ModelError
        When the version is neither.
    """
    if version is not None and (models_dir / version / CARD_FILE).is_file():
        return models_dir / version
    if version is None or read_bundle(SHIPPED_DIR).card.version == version:
        return SHIPPED_DIR
    raise ModelError(f"model version {version!r} not found in {models_dir} nor shipped with voxflow")


def load_bundle(
    models_dir: Path, version: str | None = None, *, expected_sha256: str | None = None, expected_training_sha256: str | None = None
) -> ModelBundle:
    """Load ``version`` from ``models_dir`` (or the shipped baseline of that version); None gives the baseline.

    Parameters
    ----------
    expected_sha256, expected_training_sha256 : str, optional
        The booster's and the training list's checksums recorded in the registry; the artifact must match them
        as well as its own card.

    Raises
    ------
    ModelError
        When the version is unknown, its folder holds another version's files, or its artifact fails a checksum.
    """
    folder = model_folder(models_dir, version)
    bundle = read_bundle(folder)
    if version is not None and bundle.card.version != version:
        raise ModelError(f"model {version}: its folder {folder} holds another version's files ({bundle.card.version}), not its own")
    if expected_sha256 is not None and bundle.card.booster_sha256 != expected_sha256:
        raise ModelError(
            f"model {bundle.card.version}: artifact sha256 {bundle.card.booster_sha256[:12]} differs from the "
            f"registry's {expected_sha256[:12]}; the artifact was replaced"
        )
    listed = bundle.card.training_hashes_sha256
    if expected_training_sha256 is not None and listed != expected_training_sha256:
        raise ModelError(
            f"model {bundle.card.version}: the training list its card records ({(listed or 'none')[:12]}) differs from "
            f"the registry's {expected_training_sha256[:12]}; the artifact was replaced"
        )
    return bundle
