import hashlib
import zipfile

import numpy as np
import pytest
import torch

from backdoorlab.data import DATASETS, load_dataset
from backdoorlab.data import gtsrb as gtsrb_module
from backdoorlab.data.images import decode_ppm
from backdoorlab.errors import DataError


def ppm(h, w, value):
    return f"P6\n# comment\n{w} {h}\n255\n".encode() + bytes([value]) * (h * w * 3)


def write_gtsrb(root):
    with zipfile.ZipFile(root / "GTSRB_Final_Training_Images.zip", "w") as zf:
        for cls in (0, 2):
            folder = f"GTSRB/Final_Training/Images/{cls:05d}"
            rows = ["Filename;Width;Height;Roi.X1;Roi.Y1;Roi.X2;Roi.Y2;ClassId"]
            for i in range(3):
                name = f"00000_{i:05d}.ppm"
                zf.writestr(f"{folder}/{name}", ppm(40 + i, 35, 10 * cls + i))
                rows.append(f"{name};35;{40 + i};5;5;30;30;{cls}")
            zf.writestr(f"{folder}/GT-{cls:05d}.csv", "\n".join(rows) + "\n")
    with zipfile.ZipFile(root / "GTSRB_Final_Test_Images.zip", "w") as zf:
        for i in range(4):
            zf.writestr(f"GTSRB/Final_Test/Images/{i:05d}.ppm", ppm(50, 50, 200))
    with zipfile.ZipFile(root / "GTSRB_Final_Test_GT.zip", "w") as zf:
        rows = ["Filename;Width;Height;Roi.X1;Roi.Y1;Roi.X2;Roi.Y2;ClassId"]
        rows += [f"{i:05d}.ppm;50;50;5;5;45;45;{i * 10}" for i in range(4)]
        zf.writestr("GT-final_test.csv", "\n".join(rows) + "\n")


def test_official_layout_resized_to_32(tmp_path):
    write_gtsrb(tmp_path)
    s = load_dataset(
        DATASETS.entry("gtsrb").config(name="gtsrb", root=str(tmp_path), check_md5=False)
    )
    assert s.train.images.shape == (6, 3, 32, 32) and s.train.num_classes == 43
    assert sorted(s.train.labels.tolist()) == [0, 0, 0, 2, 2, 2]
    assert s.test.labels.tolist() == [0, 10, 20, 30]
    assert torch.all(s.test.images == 200)  # constant images stay constant through resizing


def test_checksums_are_the_official_ones(tmp_path):
    write_gtsrb(tmp_path)
    with pytest.raises(DataError, match="md5"):
        load_dataset(DATASETS.entry("gtsrb").config(name="gtsrb", root=str(tmp_path)))
    ours = hashlib.md5((tmp_path / "GTSRB_Final_Test_GT.zip").read_bytes()).hexdigest()
    assert gtsrb_module.ARCHIVES["test_gt"][1] != ours


def test_truncated_zip(tmp_path):
    write_gtsrb(tmp_path)
    f = tmp_path / "GTSRB_Final_Training_Images.zip"
    f.write_bytes(f.read_bytes()[:100])
    with pytest.raises(DataError, match="not a readable zip"):
        load_dataset(
            DATASETS.entry("gtsrb").config(name="gtsrb", root=str(tmp_path), check_md5=False)
        )


def test_decode_ppm():
    arr = decode_ppm(ppm(2, 3, 7), "t")
    assert arr.shape == (2, 3, 3) and np.all(arr == 7)
    with pytest.raises(DataError, match="truncated"):
        decode_ppm(ppm(2, 3, 7)[:-1], "t")
