"""Data-parallel training over torchrun-style ranks, on CPU with gloo (two processes)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from backdoorlab.data import DATASETS, load_dataset
from backdoorlab.data.iterator import Augment, BatchIterator
from backdoorlab.defenses.dpsgd import DPSGDConfig, DPSGDHook
from backdoorlab.errors import ConfigError
from backdoorlab.models import MODELS, build_model
from backdoorlab.records.files import load_tensors, save_tensors
from backdoorlab.train import TrainConfig, fit
from backdoorlab.train.distributed import agree, distributed, world

ROOT = Path(__file__).resolve().parents[2]


def _data():
    cfg = DATASETS.entry("synthetic").config(
        name="synthetic", num_classes=4, size=12, train_size=192, test_size=32
    )
    return load_dataset(cfg).train


def _model(data, norm: str):
    torch.manual_seed(0)
    cfg = MODELS.entry("small_cnn").config(name="small_cnn", width=8, stages=2, norm=norm)
    return build_model(cfg, data.spec)


CFG = TrainConfig(epochs=2, batch_size=32, lr=0.05, crop_padding=2, flip=True)


def _train(norm: str, dpsgd: bool):
    data = _data()
    model = _model(data, norm)
    hooks = [DPSGDHook(DPSGDConfig(name="dpsgd", noise_multiplier=0.5), seed=0)] if dpsgd else []
    state = fit(model, data, CFG, hooks, seed=1, progress=False)
    return model, state


def _worker(rank: int, size: int, port: int, out: str, norm: str, dpsgd: bool) -> None:
    os.environ.update(
        RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(size),
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port),
    )  # fmt: skip
    torch.set_num_threads(1)
    with distributed(cuda=False) as w:
        assert (w.rank, w.size) == (rank, size)
        model, state = _train(norm, dpsgd)
    save_tensors(Path(out) / f"rank{rank}.safetensors", model.state_dict())
    (Path(out) / f"rank{rank}.json").write_text(json.dumps(state.history))
    # Leave without the interpreter's teardown: a gloo thread still joinable when torch's C++
    # objects are destroyed at exit aborts the process ("terminate called without an active
    # exception", SIGABRT) after its work is written: seen once in 2 CI runs of this session.
    os._exit(0)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _two_ranks(tmp_path: Path, norm: str, dpsgd: bool):
    mp.spawn(_worker, args=(2, _free_port(), str(tmp_path), norm, dpsgd), nprocs=2)
    states = [load_tensors(tmp_path / f"rank{r}.safetensors") for r in (0, 1)]
    histories = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    return states, histories


def test_shards_deal_out_the_global_batch_with_its_augmentation():
    data = _data()
    aug = Augment(crop_padding=2, flip=True)
    whole = list(BatchIterator(data, 40, shuffle=True, augment=aug, seed=5))
    shards = [
        list(BatchIterator(data, 40, shuffle=True, augment=aug, seed=5, shard=(r, 2)))
        for r in (0, 1)
    ]
    assert len(shards[0]) == len(shards[1]) == len(whole) == 5  # 192 = 4 x 40 + 32
    for (x, y, idx), (x0, y0, i0), (x1, y1, i1) in zip(whole, *shards, strict=True):
        assert len(i0) == len(i1) == len(idx) // 2
        assert torch.equal(y0, y[0::2]) and torch.equal(y1, y[1::2])
        assert torch.equal(i0, idx[0::2]) and torch.equal(i1, idx[1::2])
        assert torch.equal(x0, x[0::2]) and torch.equal(x1, x[1::2])


def test_an_uneven_last_batch_is_topped_up_so_ranks_take_equal_steps():
    data = _data()  # 192 images: the last batch of 50 holds 42
    shards = [list(BatchIterator(data, 50, shuffle=True, seed=0, shard=(r, 5))) for r in range(5)]
    assert {len(s) for s in shards} == {4}
    last = [s[-1][2] for s in shards]
    assert {len(i) for i in last} == {9}  # 42 topped up to 45
    seen = torch.cat([torch.cat([b[2] for b in s]) for s in shards])
    assert set(seen.tolist()) == set(range(192))


def test_a_global_batch_that_does_not_split_is_refused():
    with pytest.raises(ConfigError, match="does not split evenly over 3 processes"):
        BatchIterator(_data(), 32, shard=(0, 3))


@pytest.mark.parametrize("dpsgd", [False, True], ids=["ddp-step", "hook-step-dpsgd"])
def test_two_ranks_train_the_model_one_process_trains(tmp_path, dpsgd):
    """GroupNorm (per-sample) model, global batch 32 = 2 x 16: DDP's averaged gradients (and,
    for DP-SGD's own step, the loop's all-reduce with noise from rank 0) equal one process's."""
    states, histories = _two_ranks(tmp_path, "group", dpsgd)
    reference, ref_state = _train("group", dpsgd)
    assert world().size == 1
    for name, want in reference.state_dict().items():
        assert torch.equal(states[0][name], states[1][name]), name  # ranks agree exactly
        torch.testing.assert_close(states[0][name], want, rtol=1e-4, atol=1e-5, msg=name)
    for r0, r1 in zip(*histories, strict=True):  # loss and accuracy summed over both ranks
        assert {**r0, "seconds": 0} == {**r1, "seconds": 0}
    for got, want in zip(histories[0], ref_state.history, strict=True):
        assert got["loss"] == pytest.approx(want["loss"], rel=1e-4)
        assert got["train_acc"] == pytest.approx(want["train_acc"])


def test_batchnorm_ranks_end_with_rank_zeros_statistics(tmp_path):
    states, _ = _two_ranks(tmp_path, "batch", False)
    for name in states[0]:
        assert torch.equal(states[0][name], states[1][name]), name


def test_torchrun_cli_run_writes_one_run_folder(tmp_path, tiny_config):
    cfg = dict(tiny_config, defense={"name": "none"})
    path = tmp_path / "tiny.json"
    path.write_text(json.dumps(cfg))
    out = tmp_path / "runs" / "ddp"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2",
        "--master-port", str(_free_port()),
        "-m", "backdoorlab", "run", str(path), "--out", str(out), "--quiet",
    ]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.count("saved to") == 1
    assert sorted(p.name for p in out.parent.iterdir()) == ["ddp", "results.db"]
    record = json.loads((out / "result.json").read_text())
    assert record["processes"] == 2
    assert record["metrics"]["acc"] > 50  # 4 classes: it learned


def test_torchrun_refuses_a_batch_that_does_not_split_and_writes_nothing(tmp_path, tiny_config):
    cfg = dict(tiny_config, defense={"name": "none"})
    cfg["train"] = dict(cfg["train"], batch_size=63)
    path = tmp_path / "tiny.json"
    path.write_text(json.dumps(cfg))
    out = tmp_path / "runs" / "ddp"
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2",
        "--master-port", str(_free_port()),
        "-m", "backdoorlab", "run", str(path), "--out", str(out), "--quiet",
    ]  # fmt: skip
    env = dict(os.environ, OMP_NUM_THREADS="1")
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
    assert done.returncode != 0
    said = done.stdout + done.stderr
    assert "error: train.batch_size: 63 does not split evenly over 2 processes" in said
    assert not (tmp_path / "runs").exists()


def _agree_worker(rank: int, size: int, port: int, out: str) -> None:
    os.environ.update(
        RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(size),
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port),
    )  # fmt: skip
    with distributed(cuda=False):
        mine = [(torch.full((2,), float(rank)), rank)]
        got = agree(mine, torch.device("cpu"))
        stop = agree(rank == 1)
    save_tensors(Path(out) / f"agree{rank}.safetensors", {"t": got[0][0]})
    (Path(out) / f"agree{rank}.json").write_text(json.dumps([got[0][1], stop]))


def test_agree_hands_every_rank_rank_zeros_value(tmp_path):
    mp.spawn(_agree_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2)
    for r in (0, 1):
        assert torch.equal(load_tensors(tmp_path / f"agree{r}.safetensors")["t"], torch.zeros(2))
        assert json.loads((tmp_path / f"agree{r}.json").read_text()) == [0, False]


def _cache_worker(rank: int, size: int, port: int, out: str, cfg: dict) -> None:
    from backdoorlab.errors import ConfigError
    from backdoorlab.experiment import run

    os.environ.update(
        RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(size),
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port),
    )  # fmt: skip
    torch.set_num_threads(1)
    try:
        run(cfg, save=False, progress=False, cache=Path(out) / "cache")
        said = "ran"
    except ConfigError as e:
        said = str(e)
    (Path(out) / f"cache{rank}.txt").write_text(said)
    os._exit(0)  # as _worker: no interpreter teardown after gloo


def test_a_cache_folder_under_torchrun_is_refused_before_any_work(tmp_path, tiny_config):
    cfg = dict(tiny_config, defense={"name": "ft", "epochs": 1})
    mp.spawn(_cache_worker, args=(2, _free_port(), str(tmp_path), cfg), nprocs=2)
    for r in (0, 1):
        said = (tmp_path / f"cache{r}.txt").read_text()
        assert said.startswith("`cache`: ") and "uses no stage cache" in said, said
    assert not (tmp_path / "cache").exists()
