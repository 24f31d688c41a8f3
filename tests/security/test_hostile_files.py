"""Hostile files cost one line and little memory: each is loaded in a process of its own (forked
after the imports) that reports the error and its peak memory growth (which must stay under
300 MB)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.security import hostile

REPO = Path(__file__).resolve().parents[2]
LIMIT_MB = 300


@pytest.fixture(scope="module")
def _server():
    """One interpreter that imports backdoorlab once and forks a process per probe."""
    server = subprocess.Popen(
        [sys.executable, "-m", "tests.security.hostile", "--serve"],
        cwd=REPO,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    yield server
    server.stdin.close()
    server.wait(timeout=60)


@pytest.fixture
def probe(_server):
    def ask(kind: str, path: Path) -> dict:
        _server.stdin.write(f"{kind}\t{path}\n")
        _server.stdin.flush()
        answer = json.loads(_server.stdout.readline())
        assert "crash" not in answer, answer["crash"]
        return answer

    return ask


def _assert_refused(result: dict, *words: str) -> None:
    error = result["error"]
    assert error is not None, result
    assert "\n" not in error, error
    for w in words:
        assert w in error, error
    assert result["growth_mb"] < LIMIT_MB, result


def test_an_idx_gzip_that_inflates_past_its_header_is_refused_early(probe, tmp_path):
    # 1.2 GB of zeros behind a header that promises 10 images: past the file cap and the memory
    # bound, so a reader that inflated everything before refusing would fail here
    path = hostile.idx_gzip_bomb(tmp_path / "t10k-images-idx3-ubyte.gz")
    assert path.stat().st_size < 2_000_000
    _assert_refused(probe("idx", path), "more data than its header says")


def test_a_config_that_asks_for_petabytes_is_refused_before_allocating(probe):
    config = REPO / "configs" / "quickstart.yaml"
    _assert_refused(probe("padding", config), "train.crop_padding", "limit")


def test_an_idx_header_that_promises_more_than_the_file_holds_is_one_line(probe, tmp_path):
    path = hostile.idx_lying_header(tmp_path / "t10k-images-idx3-ubyte.gz")
    _assert_refused(probe("idx", path), "784,000,000", "truncated")


@pytest.mark.parametrize(
    "make,words",
    [
        (hostile.npz_lying_header, ["x", "784,000,000,000,000 bytes", "holds 700"]),
        (hostile.safetensors_lying_header, ["not a readable safetensors file"]),
    ],
)
def test_array_headers_that_lie_are_one_line(probe, tmp_path, make, words):
    suffix = ".npz" if make is hostile.npz_lying_header else ".safetensors"
    _assert_refused(probe("arrays", make(tmp_path / f"liar{suffix}")), *words)


def test_a_result_json_past_its_cap_is_not_parsed(probe, tmp_path):
    run_dir = hostile.json_past_the_cap(tmp_path / "run")
    _assert_refused(probe("run", run_dir), "result.json", "limit")


def test_a_cifar_member_whose_header_says_4gib_is_one_line_and_not_read(probe, tmp_path):
    # tarfile walks the headers first and finds the data missing; nothing is inflated
    hostile.cifar_lying_member(tmp_path)
    _assert_refused(probe("cifar", tmp_path), "data_batch_1", "unexpected end of data")


def test_the_tar_member_cap_refuses_before_extracting(tmp_path, monkeypatch):
    """The cap itself, at a size a test can write: members past it are never extracted."""
    import tarfile

    from backdoorlab.data import cifar
    from backdoorlab.errors import DataError
    from tests.data.test_cifar import write_cifar10

    write_cifar10(tmp_path / "c.tar.gz")
    monkeypatch.setattr(cifar, "MAX_FILE_BYTES", 1000)  # each pickled batch is about 25 kB
    monkeypatch.setattr(tarfile.TarFile, "extractfile", lambda *a: pytest.fail("extracted"))
    with tarfile.open(tmp_path / "c.tar.gz") as tar, pytest.raises(DataError, match="limit"):
        cifar._load_batch(tar, "cifar-10-batches-py/data_batch_1", "cifar10")


def test_idx_dimensions_that_overflow_are_one_line(probe, tmp_path):
    path = hostile.idx_overflowing_header(tmp_path / "t10k-images-idx3-ubyte")
    _assert_refused(probe("idx", path), "limit")


def test_a_gtsrb_member_that_inflates_to_1200mb_is_not_decompressed(probe, tmp_path):
    root = tmp_path / "gtsrb"
    hostile.gtsrb_zip_bomb(root)
    _assert_refused(probe("gtsrb", root), "00000_00000.ppm", "limit")


@pytest.fixture(scope="module")
def bombs(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("bombs")
    return {
        # past twice Pillow's limit: Pillow raises DecompressionBombError on open
        "pillow": hostile.png(d / "pillow-bomb.png", 14_000, 14_000),
        # just under Pillow's limit: Pillow would decode it (81 MB, then 1.3 GB as floats)
        "under": hostile.png(d / "under-pillow.png", 9_000, 9_000),
    }


@pytest.mark.parametrize("which", ["pillow", "under"])
def test_an_oversized_image_in_an_image_folder_is_one_line(probe, tmp_path, bombs, which):
    for cls in ("a", "b"):
        (tmp_path / cls).mkdir()
        hostile.png(tmp_path / cls / "ok.png", 8, 8)
    (tmp_path / "a" / "big.png").write_bytes(bombs[which].read_bytes())
    _assert_refused(probe("imagefolder", tmp_path), "big.png")


@pytest.mark.parametrize("which", ["pillow", "under"])
def test_an_oversized_blended_key_image_is_one_line(probe, bombs, which):
    _assert_refused(probe("key", bombs[which]), "attack.key")
