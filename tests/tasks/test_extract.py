"""The Dask unit of work, run in-process: one bad or slow file never stops its chunk."""

from dataclasses import replace
from pathlib import Path

import pytest
import soundfile as sf

import tasks.extract

from features.schema import FEATURE_NAMES
from features.synth import synth_vowel
from models.registry import SHIPPED_DIR
from models.artifact import read_bundle
from tasks.chunk import AudioPolicy
from tasks.extract import extract_chunk, score_chunk
from tasks.ingest import FileRef

POLICY = AudioPolicy(sample_rate=16_000, min_duration_s=0.5, max_duration_s=30.0, silence_dbfs=-60.0, clipping_fraction=0.01, file_timeout_s=30.0)


def _ref(path: Path, sha: str) -> FileRef:
    return FileRef(path=str(path), sha256=sha, size_bytes=path.stat().st_size)


def test_chunk_scores_good_files_and_quarantines_bad_ones(tmp_path: Path) -> None:
    sf.write(tmp_path / "good.wav", synth_vowel(f0_hz=140, duration_s=2.0, sr=16_000, jitter=0.01, hnr_db=20), 16_000)
    (tmp_path / "bad.wav").write_bytes(b"RIFF....not really")
    refs = [_ref(tmp_path / "good.wav", "a" * 64), replace(_ref(tmp_path / "bad.wav", "b" * 64), subject_id="S2", label="pathological")]
    result = score_chunk(3, refs, POLICY, read_bundle(SHIPPED_DIR))
    assert result.chunk_id == 3 and result.table.num_rows == 1
    row = result.table.to_pylist()[0]
    assert row["audio_sha256"] == "a" * 64 and 0.0 <= row["score"] <= 1.0 and row["label"] in {"healthy", "pathological"}
    assert set(FEATURE_NAMES) <= set(result.table.column_names)
    [rejected] = result.rejected
    assert rejected["stage"] == "decode" and rejected["audio_sha256"] == "b" * 64 and rejected["reason"]
    assert (rejected["subject_id"], rejected["reference_label"]) == ("S2", "pathological")  # the manifest's, for the recording to be redone


def test_per_file_time_limit_quarantines_the_slow_file(voiced_dir: Path) -> None:
    slow = AudioPolicy(**{**POLICY.__dict__, "file_timeout_s": 0.001})
    rows, rejected = extract_chunk([_ref(voiced_dir / "voice001.hea", "c" * 64)], slow)
    assert rows == [] and rejected[0]["stage"] == "timeout" and "per-file limit" in rejected[0]["reason"]


@pytest.mark.filterwarnings("ignore:overflow:RuntimeWarning", "ignore:invalid value:RuntimeWarning")
def test_a_file_whose_features_overflow_is_quarantined_not_its_chunk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # the quality gate refuses such a file; without it, its inf features made XGBoost refuse the whole chunk
    vowel = synth_vowel(f0_hz=140, duration_s=2.0, sr=16_000, jitter=0.01, hnr_db=20)
    sf.write(tmp_path / "good.wav", vowel, 16_000)
    sf.write(tmp_path / "huge.wav", 1e30 * vowel, 16_000, subtype="FLOAT")
    refs = [_ref(tmp_path / "good.wav", "a" * 64), _ref(tmp_path / "huge.wav", "b" * 64)]
    assert extract_chunk(refs[1:], POLICY)[1][0]["reason"].startswith("samples beyond full scale: peak 5e+29×")
    monkeypatch.setattr(tasks.extract, "quality_gate", lambda audio, **limits: ())
    result = score_chunk(4, refs, POLICY, read_bundle(SHIPPED_DIR))
    assert result.table.num_rows == 1 and result.table.to_pylist()[0]["audio_sha256"] == "a" * 64
    [rejected] = result.rejected
    assert rejected["stage"] == "features" and rejected["reason"].startswith("infinite feature values (")
