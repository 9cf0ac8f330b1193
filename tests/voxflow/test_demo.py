"""The demo corpus: the same arguments write the same bytes, so a re-run of the demo scores nothing new."""

from pathlib import Path

import soundfile as sf

from voxflow.demo import OGG_SERIAL, with_ogg_serial, write_demo_corpus


def test_the_same_corpus_is_the_same_bytes(tmp_path: Path) -> None:
    # libsndfile drew a new Ogg serial number per write: every .ogg clip got a new sha256 and was scored again.
    first, second = write_demo_corpus(tmp_path / "a", n=6).parent, write_demo_corpus(tmp_path / "b", n=6).parent
    files = sorted(path.relative_to(first) for path in first.rglob("*") if path.is_file())
    assert any(path.suffix == ".ogg" for path in files)
    assert files == sorted(path.relative_to(second) for path in second.rglob("*") if path.is_file())
    assert [path for path in files if (first / path).read_bytes() != (second / path).read_bytes()] == []


def test_a_new_serial_keeps_the_audio_and_valid_pages(tmp_path: Path) -> None:
    clip = next((write_demo_corpus(tmp_path / "corpus", n=3).parent / "clips").glob("*.ogg"))
    data = clip.read_bytes()
    assert int.from_bytes(data[14:18], "little") == OGG_SERIAL
    assert with_ogg_serial(data, OGG_SERIAL) == data  # recomputed CRCs equal libsndfile's own
    other = tmp_path / "other.ogg"
    other.write_bytes(with_ogg_serial(data, 12345))
    assert (sf.read(other)[0] == sf.read(clip)[0]).all()  # libsndfile checks each page's CRC
