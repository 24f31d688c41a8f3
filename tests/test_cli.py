import json
import os
import subprocess
import sys

import pytest
import yaml

from backdoorlab.cli import main


@pytest.fixture
def config_file(tiny_config, tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(tiny_config))
    return path


def test_run_prints_table_and_writes_result(config_file, tmp_path, capsys):
    out = tmp_path / "runs" / "one"
    assert (
        main(["run", str(config_file), "--out", str(out), "--quiet", "--set", "train.epochs=1"])
        == 0
    )
    text = capsys.readouterr().out
    assert "ACC" in text and "ASR" in text and str(out) in text.replace("\n", "")
    result = json.loads((out / "result.json").read_text())
    assert result["config"]["train"]["epochs"] == 1
    assert (tmp_path / "runs" / "results.db").is_file()


def test_list_names_every_registered_component(capsys):
    assert main(["list"]) == 0
    text = capsys.readouterr().out
    assert "[control: data, training]" in text and "[training-time]" in text
    for name in (
        "digits",
        "mnist",
        "cifar10",
        "cifar100",
        "gtsrb",
        "imagefolder",
        "synthetic",
        "small_cnn",
        "resnet18",
        "preact_resnet18",
        "wrn16_1",
        "badnets",
        "blended",
    ):
        assert name in text


def test_triggers_writes_png(config_file, tmp_path):
    assert main(["triggers", str(config_file), "--out", str(tmp_path / "t.png")]) == 0
    assert (tmp_path / "t.png").stat().st_size > 1000


@pytest.mark.parametrize(
    "args,message",
    [
        (["--set", "attack.name=nope"], "unknown attack 'nope'"),
        (["--set", "attack.rate=1.5"], "attack.rate"),
        (["--set", "attack.target=12"], "attack.target: class 12 does not exist"),
        (
            ["--set", "dataset={name: mnist, root: /nonexistent/mnist}"],
            "/nonexistent/mnist does not exist",
        ),
        (["--set", "train.lr"], "expected section.key=value"),
        (
            ["--set", "attack={name: wanet, control: training}", "--set", "defense.name=cat"],
            "attack.control: 'training' (attack 'wanet' trains the model) cannot go with "
            "defense 'cat', a training-time defense",
        ),
        (
            ["--set", "attack={name: iad, control: training}", "--set", "defense.name=dpsgd"],
            "cannot go with defense 'dpsgd'",
        ),
        (
            ["--set", "attack.control=training"],
            "attack.control: 'training' is not implemented by attack 'badnets'",
        ),
    ],
)
def test_bad_input_is_one_line_nonzero_and_writes_no_row(
    config_file, tmp_path, capsys, args, message
):
    out = tmp_path / "runs" / "bad"
    assert main(["run", str(config_file), "--out", str(out), "--quiet", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "runs").exists()


def test_an_analysis_refuses_a_flag_it_does_not_take(tmp_path, capsys):
    """No option is dropped silently: t-SNE takes no PGD budget."""
    out = tmp_path / "a"
    assert main(["analyze", "tsne", "--run", str(tmp_path), "--out", str(out), "--eps", "0.1"]) == 2
    err = capsys.readouterr().err.strip()
    assert "analyze tsne: --eps does not apply (it takes --count, --seed)" in err
    assert len(err.splitlines()) == 1 and not out.exists()


def test_malformed_yaml_and_truncated_archive(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("dataset: {name: digits\n  model: [\n")
    assert main(["run", str(bad), "--out", str(tmp_path / "r")]) == 2
    assert "malformed YAML" in capsys.readouterr().err

    archive = tmp_path / "cifar-10-python.tar.gz"
    archive.write_bytes(b"\x1f\x8b\x08\x00" + b"\x00" * 50)
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        yaml.safe_dump(
            {
                "dataset": {"name": "cifar10", "root": str(tmp_path)},
                "model": {"name": "small_cnn"},
                "attack": {"name": "badnets"},
            }
        )
    )
    assert main(["run", str(cfg), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip()
    assert "md5" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "r").exists() and not (tmp_path / "results.db").exists()


def test_console_script_exits_nonzero_without_traceback(config_file):
    env = {**os.environ, "COLUMNS": "200"}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "backdoorlab.cli",
            "run",
            str(config_file),
            "--set",
            "attack.name=nope",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and "unknown attack 'nope'" in proc.stderr


def test_report_of_plain_runs_prints_them_or_writes_a_page(tiny_config, tmp_path, capsys):
    from backdoorlab.experiment import run

    for name in ("a", "b"):
        run({**tiny_config, "name": name}, out=tmp_path / name, progress=False)
    db = str(tmp_path / "results.db")
    assert main(["report", db, "--run", "b", "--format", "console"]) == 0
    out = capsys.readouterr().out
    assert "badnets" in out and "ACC" in out and "│ b " in out and "│ a " not in out
    assert not list(tmp_path.glob("report*"))  # console writes nothing
    assert main(["report", db, "--out", str(tmp_path / "page")]) == 0
    text = (tmp_path / "page.md").read_text()
    assert "| a | badnets |" in text and "| b | badnets |" in text
    assert main(["report", db, "--run", "missing", "--format", "console"]) == 2
    assert "holds no run 'missing'" in capsys.readouterr().err


@pytest.mark.parametrize(
    "override,words",
    [
        ("model.width=1000000", ["parameters", "limit"]),  # was a 36 TB allocation
        ("train.crop_padding=1000000", ["train.crop_padding", "GiB", "limit"]),  # was 5.7 PB
        ("train.schedule=x[/bold]", ["x[/bold]"]),  # was a MarkupError in the error printer
        ("name=x[/x]", ["x[/x]"]),  # was a traceback after the run folder was written
    ],
)
def test_refused_values_are_one_line_even_with_markup(
    config_file, tmp_path, capsys, override, words
):
    out = tmp_path / "never"
    assert main(["run", str(config_file), "--set", override, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error:"), err
    assert all(w in err for w in words), err
    assert not out.exists() and not (tmp_path / "results.db").exists()


def test_a_write_that_fails_is_one_line(config_file, tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")  # --out inside a regular file cannot be created
    assert main(["run", str(config_file), "--out", str(blocker / "r"), "--quiet"]) != 0
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error:"), err


def test_every_analysis_option_has_a_flag_and_help_lists_the_registries():
    import backdoorlab
    from backdoorlab.cli import build_parser, flags_of

    parser = build_parser()
    analyze_flags = flags_of(parser, "analyze")
    options = {o for a in backdoorlab.ANALYSES.values() for o in a.options}
    assert options <= set(analyze_flags), options - set(analyze_flags)  # none dropped silently
    (sub,) = (a for a in parser._actions if a.dest == "command")
    repair_help = sub.choices["repair"].format_help()
    repairs = [e.name for e in backdoorlab.DEFENSES if e.obj.post_training and e.name != "none"]
    assert all(name in repair_help for name in repairs)
    assert "cat" not in repairs and "abl" not in repairs  # training-time defenses are not offered


def test_repair_takes_autos_settings_from_the_apis_signature():
    import inspect

    import backdoorlab
    from backdoorlab.cli import REPAIR_AUTO, build_parser, flags_of

    parser = build_parser()
    flags = flags_of(parser, "repair")
    params = inspect.signature(backdoorlab.repair).parameters
    expected = {"--references", "--fpr", "--rounds", "--min-steps", "--cache", "--scan-screen",
                "--unlearn-small"}  # fmt: skip
    assert {flags[n] for n in REPAIR_AUTO} == expected
    (sub,) = (a for a in parser._actions if a.dest == "command")
    base = ["repair", "--model", "m.pt", "--arch", "lenet", "--data", "d", "--out", "o"]
    defaults = sub.choices["repair"].parse_args(base[1:])
    assert all(getattr(defaults, n) == params[n].default for n in REPAIR_AUTO)
    given = parser.parse_args([*base, "--references", "16", "--min-steps", "320", "--fpr", "0.1",
                               "--unlearn-small"])  # fmt: skip
    assert (given.references, given.min_steps, given.fpr) == (16, 320, 0.1)
    assert given.unlearn_small is True


def test_repair_gives_auto_its_plan_and_each_repair_its_settings():
    import backdoorlab
    from backdoorlab.cli import _repair_settings, build_parser

    parser = build_parser()
    base = ["repair", "--model", "m.pt", "--arch", "lenet", "--data", "d", "--out", "o"]
    args = parser.parse_args([*base, "--plan", "aft,nc", "--set", "defense.aft.eps=0.2",
                              "--set", "defense.nc.epochs=3"])  # fmt: skip
    assert _repair_settings(args) == {
        "plan": ["aft", "nc"], "plan_options": {"aft": {"eps": 0.2}, "nc": {"epochs": 3}}
    }  # fmt: skip
    assert _repair_settings(parser.parse_args(base)) == {}
    named = parser.parse_args([*base, "--defense", "aft", "--set", "defense.eps=0.1"])
    assert _repair_settings(named) == {"eps": 0.1}
    wrong = parser.parse_args([*base, "--defense", "aft", "--plan", "nc"])
    with pytest.raises(backdoorlab.ConfigError, match="--plan belongs to --defense auto, not aft"):
        _repair_settings(wrong)


def test_scan_takes_its_calibration_and_its_defaults_from_the_apis_signature():
    import inspect

    import backdoorlab
    from backdoorlab.cli import SCAN_CALIBRATION, build_parser, flags_of

    parser = build_parser()
    flags = flags_of(parser, "scan")
    params = inspect.signature(backdoorlab.scan).parameters
    assert {flags[n] for n in SCAN_CALIBRATION} == {"--fpr", "--evidence", "--cache", "--screen"}
    (sub,) = (a for a in parser._actions if a.dest == "command")
    scan_parser = sub.choices["scan"]
    defaults = scan_parser.parse_args(["--model", "m.pt", "--arch", "lenet", "--data", "d",
                                       "--out", "o"])  # fmt: skip
    assert all(getattr(defaults, n) == params[n].default for n in SCAN_CALIBRATION)
    # the help names the API's default detectors and reference count, not a copy of them
    text = scan_parser.format_help().replace("\n", " ")
    text = " ".join(text.split())
    assert f"default {', '.join(params['detectors'].default)}" in text
    assert f"(default {params['references'].default}," in text


def test_a_sweeps_cache_is_a_folder_not_a_switch(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as e:
        main(["sweep", "digits-zoo", "--out", "sw", "--cache", "false"])
    assert e.value.code == 2 and "'false' is not a folder" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())
