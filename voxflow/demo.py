"""A small labelled demo corpus of synthetic sustained vowels, in every format voxflow reads."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf

from features.synth import synth_vowel

# (label, jitter, shimmer, HNR dB): textbook ranges for healthy and dysphonic sustained /a/.
VOICE_PROFILES = {
    "healthy": (0.004, 0.03, 24.0),
    "pathological": (0.02, 0.11, 9.0),
}
FORMATS = (("wav", 16_000), ("flac", 44_100), ("ogg", 22_050), ("mp3", 48_000), ("wav", 8_000))
# libsndfile gives each Ogg stream a random serial number: fixed here, so the same corpus is the same bytes
# (the same content hashes), and re-running the demo scores nothing new.
OGG_SERIAL = 0x766F7866


def _ogg_crc_table() -> tuple[int, ...]:
    """Per byte value, its CRC under the Ogg polynomial 0x04C11DB7 (not reflected)."""
    table = []
    for byte in range(256):
        crc = byte << 24
        for _ in range(8):
            crc = ((crc << 1) ^ 0x04C11DB7 if crc & 0x80000000 else crc << 1) & 0xFFFFFFFF
        table.append(crc)
    return tuple(table)


_OGG_CRC_TABLE = _ogg_crc_table()


def write_demo_corpus(folder: Path, *, n: int = 40, seed: int = 7) -> Path:
    """Write ``n`` labelled clips (wav/flac/ogg/mp3, 8-48 kHz, some stereo), a manifest, and bad files.

    The ``bad/`` subfolder holds files that must be quarantined (an empty file, a text file named
    ``.flac``, random bytes named ``.wav``, silence, a 50 ms clip) plus a non-audio note that is ignored.

    Returns
    -------
    Path
        The manifest CSV (``path``, ``subject_id``, ``label``).
    """
    rng = np.random.default_rng(seed)
    clips = folder / "clips"
    clips.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        label = "healthy" if i % 2 == 0 else "pathological"
        jitter, shimmer, hnr = VOICE_PROFILES[label]
        ext, rate = FORMATS[i % len(FORMATS)]
        f0 = float(rng.uniform(95, 140) if i % 4 < 2 else rng.uniform(180, 250))
        y = synth_vowel(f0_hz=f0, duration_s=float(rng.uniform(2.0, 4.0)), sr=rate, jitter=jitter * rng.uniform(0.7, 1.3),
                        shimmer=shimmer * rng.uniform(0.7, 1.3), hnr_db=hnr + rng.uniform(-3, 3), seed=seed * 1000 + i)
        if i % 7 == 3:
            y = np.stack([y, 0.8 * y], axis=1)
        name = f"subject{i:03d}_{label}.{ext}"
        sf.write(clips / name, y, rate)
        if ext == "ogg":
            (clips / name).write_bytes(with_ogg_serial((clips / name).read_bytes(), OGG_SERIAL))
        rows.append({"path": f"clips/{name}", "subject_id": f"subject{i:03d}", "label": label})
    _write_bad_files(folder / "bad")
    manifest = folder / "manifest.csv"
    pd.DataFrame(rows).to_csv(manifest, index=False)
    return manifest


def _ogg_crc(page: bytes | bytearray) -> int:
    """The CRC of an Ogg page (polynomial 0x04C11DB7, not reflected), its CRC field zeroed."""
    crc = 0
    for byte in page:
        crc = ((crc << 8) & 0xFFFFFFFF) ^ _OGG_CRC_TABLE[(crc >> 24) ^ byte]
    return crc


def with_ogg_serial(data: bytes, serial: int) -> bytes:
    """An Ogg file's bytes with every page's stream serial number set to ``serial`` and its CRC recomputed.

    Raises
    ------
    ValueError
        When ``data`` is not a sequence of whole Ogg pages.
    """
    out, pos = bytearray(data), 0
    while pos < len(out):
        if out[pos:pos + 4] != b"OggS" or pos + 27 > len(out):
            raise ValueError(f"no Ogg page at byte {pos}")
        segments = out[pos + 26]
        end = pos + 27 + segments + sum(out[pos + 27:pos + 27 + segments])
        out[pos + 14:pos + 18] = serial.to_bytes(4, "little")
        out[pos + 22:pos + 26] = bytes(4)
        out[pos + 22:pos + 26] = _ogg_crc(out[pos:end]).to_bytes(4, "little")
        pos = end
    return bytes(out)


def _write_bad_files(bad: Path) -> None:
    bad.mkdir(parents=True, exist_ok=True)
    (bad / "empty.wav").write_bytes(b"")
    (bad / "notes-named-as.flac").write_text("this is a text file, not audio\n")
    (bad / "random-bytes.wav").write_bytes(np.random.default_rng(0).bytes(4096))
    sf.write(bad / "silence.wav", np.zeros(16_000 * 2, dtype=np.float32), 16_000)
    sf.write(bad / "too-short.wav", synth_vowel(f0_hz=120.0, duration_s=0.05, sr=16_000), 16_000)
    (bad / "README.txt").write_text("Files here are broken on purpose: voxflow quarantines them with a reason.\n")
