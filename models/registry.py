"""Where model versions live: the user's registry folder, then the baseline shipped in the package."""

from __future__ import annotations

from pathlib import Path

from models.artifact import CARD_FILE, ModelBundle, read_bundle
from voxflow.errors import ModelError

SHIPPED_DIR = Path(__file__).resolve().parent / "baseline"
CHAMPION_FILE = "CHAMPION"


def champion_version(models_dir: Path) -> str | None:
    """The version named champion in ``models_dir``, or None when none was promoted there."""
    pointer = models_dir / CHAMPION_FILE
    return pointer.read_text().strip() if pointer.is_file() else None


def set_champion(models_dir: Path, version: str) -> None:
    """Make ``version`` (a folder under ``models_dir``) the model inference uses by default."""
    if not (models_dir / version / CARD_FILE).is_file():
        raise ModelError(f"cannot promote {version}: no such model in {models_dir}")
    tmp = models_dir / f".{CHAMPION_FILE}.tmp"
    tmp.write_text(version + "\n")
    tmp.replace(models_dir / CHAMPION_FILE)


def load_bundle(models_dir: Path, version: str | None = None) -> ModelBundle:
    """Load a model: the given version, else the champion, else the shipped baseline.

    Raises
    ------
    ModelError
        When the version is unknown or its artifact fails the checksum.
    """
    wanted = version or champion_version(models_dir)
    if wanted is None:
        return read_bundle(SHIPPED_DIR)
    if (models_dir / wanted / CARD_FILE).is_file():
        return read_bundle(models_dir / wanted)
    shipped = read_bundle(SHIPPED_DIR)
    if shipped.card.version == wanted:
        return shipped
    raise ModelError(f"model version {wanted!r} not found in {models_dir} nor shipped with voxflow")
