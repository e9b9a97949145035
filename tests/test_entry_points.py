"""Issue #16: every entry point refuses what it cannot use *before any work*, with one message.

Case 2: a BUSI folder that ``bcdet data check`` calls NOT USABLE (here: ``normal/`` missing) is
refused with the same message by ``bcdet train``, ``bcdet reproduce`` and the data path the
notebooks use, instead of a two-class model or a ``KeyError`` in notebook 01.
"""
from __future__ import annotations

import shutil

import pytest

from bcdet_helpers.research.cli import main
from bcdet_helpers.errors import BcdetError


@pytest.fixture
def broken_busi(mini_busi, tmp_path, monkeypatch):
    """A mini-BUSI without its normal/ folder, as BCDET_DATA, with runs in a folder of its own."""
    shutil.rmtree(mini_busi / "normal")
    monkeypatch.setenv("BCDET_DATA", str(mini_busi))
    monkeypatch.setenv("BCDET_RUNS", str(tmp_path / "runs"))
    return mini_busi


def _refusal(broken_busi) -> str:
    from bcdet_helpers.data.check import require_usable

    with pytest.raises(BcdetError) as err:
        require_usable()
    return str(err.value)


def test_the_refusal_names_the_folder_the_error_and_the_check(broken_busi):
    msg = _refusal(broken_busi)
    assert "NOT USABLE" in msg and str(broken_busi) in msg
    assert "normal/: class folder missing" in msg and "bcdet data check" in msg


def test_train_refuses_before_any_work(broken_busi, tmp_path, capsys):
    code = main(["train", "--profile", "smoke", "--epochs", "1", "--device", "cpu"])
    err = capsys.readouterr().err
    assert code == 2 and err.strip() == f"bcdet: error: {_refusal(broken_busi)}"
    assert not (tmp_path / "runs").exists()  # no run folder, no cache, no split file


def test_reproduce_refuses_before_notebook_01(broken_busi, tmp_path):
    from bcdet_helpers.research import reproduce as rp
    from test_reproduce import write_nb

    nb = write_nb(tmp_path / "01_first.ipynb", "print('ran')")
    with pytest.raises(BcdetError) as err:
        rp.reproduce("smoke", out=tmp_path / "out", notebooks=[nb], echo=False)
    assert str(err.value) == _refusal(broken_busi)
    assert not (tmp_path / "out").exists()


def test_the_notebooks_data_path_refuses_with_the_same_message(broken_busi):
    from bcdet_helpers.data import load_split_data
    from bcdet_helpers.data.index import load_index

    msg = _refusal(broken_busi)
    for read in (load_index, lambda: load_split_data("smoke")):  # chapter 01 / chapters 02-05
        with pytest.raises(BcdetError) as err:
            read()
        assert str(err.value) == msg


def test_a_usable_folder_is_checked_once(mini_busi, monkeypatch):
    from bcdet_helpers.data import check

    calls = []
    real = check.check_dataset
    monkeypatch.setattr(check, "check_dataset", lambda root: calls.append(root) or real(root))
    assert check.require_usable(mini_busi) == check.require_usable(mini_busi) == mini_busi.resolve()
    assert len(calls) == 1
    (mini_busi / "benign" / "benign (1).png").write_bytes(b"broken")  # a change is seen
    with pytest.raises(BcdetError, match="NOT USABLE"):
        check.require_usable(mini_busi)


# --------------------------------------------------------------------------------------------
# case 4: option values are refused while parsing, not by numpy after training started
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("argv", [
    ["train", "--seed", "-1"],
    ["train", "--seed", str(2**66)],
    ["train", "--epochs", "0"],
    ["reproduce", "--profile", "smoke", "--seeds", "0", "-1"],
    ["reproduce", "--profile", "smoke", "--seeds", str(2**32)],
])
def test_bad_option_values_stop_the_cli_while_parsing(argv, capsys, monkeypatch):
    from bcdet_helpers.research import reproduce as rp
    from bcdet_helpers.data import check

    started = []
    monkeypatch.setattr(check, "require_usable", lambda *a: started.append("data"), raising=False)
    monkeypatch.setattr(rp, "reproduce", lambda *a, **k: started.append("reproduce"))
    with pytest.raises(SystemExit) as exc:
        main(argv)
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "Traceback" not in err
    assert f"argument {argv[-2] if argv[-2].startswith('--') else '--seeds'}" in err
    assert ("0 to 4294967295" in err) if "--epochs" not in argv else ("at least 1" in err)
    assert started == []


@pytest.mark.parametrize("seeds", [[-1], [0, 2**66], [1.5], ["x"]])
def test_reproduce_checks_seeds_before_notebook_01(seeds, tmp_path, busi_dir, monkeypatch):
    from bcdet_helpers.research import reproduce as rp
    from test_reproduce import write_nb

    monkeypatch.setenv("BCDET_DATA", str(busi_dir))
    nb = write_nb(tmp_path / "01_first.ipynb", "print('ran')")
    with pytest.raises(BcdetError, match="--seeds .*a seed is a whole number from 0 to 4294967295"):
        rp.reproduce("smoke", out=tmp_path / "out", notebooks=[nb], echo=False, seeds=seeds)
    assert not (tmp_path / "out").exists()


# --------------------------------------------------------------------------------------------
# issue #27 case 8: each message names the option, the path's source, the file
# --------------------------------------------------------------------------------------------
def test_a_bad_random_seed_is_called_random_seeds(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["reproduce", "--profile", "smoke", "--random-seeds", "-3"])
    [line] = [ln for ln in capsys.readouterr().err.splitlines() if "error" in ln]
    assert exc.value.code == 2
    assert line.endswith("argument --random-seeds: --random-seeds '-3': a seed is a whole number from 0 to "
                         "4294967295 (numpy's limit), e.g. --random-seeds 0.")


def test_publish_partial_calls_a_finished_study_finished(tmp_path, monkeypatch, capsys):
    """``bcdet publish --partial`` called every study "the running study", a finished one too."""
    import os

    from test_publish import fake_study_reproduction

    monkeypatch.setenv("BCDET_RUNS", str(tmp_path / "runs"))
    folder, _ = fake_study_reproduction()
    assert main(["publish", "--profile", "smoke", "--partial", "--dest", str(tmp_path / "snap")]) == 0
    out = capsys.readouterr().out
    assert "running study" not in out and out.startswith("Snapshot of the study (")
    assert "This study has finished" in out and "`bcdet publish --profile smoke` without --partial" in out
    later = (folder / "cv" / "study.json").stat().st_mtime_ns + 10**9
    os.utime(folder / "cv" / "runs.csv", ns=(later, later))  # it runs again: a run finished after study.json
    assert main(["publish", "--profile", "smoke", "--partial", "--dest", str(tmp_path / "snap")]) == 0
    assert "has finished" not in capsys.readouterr().out


@pytest.mark.parametrize("argv, stop", [
    (["data", "check"], ("bcdet_helpers.data.check", "check_dataset")),
    (["predict", "x.png", "--checkpoint", "best.pt"], ("bcdet_helpers.checkpoints", "load_checkpoint")),
])
def test_ctrl_c_in_any_command_is_one_line_and_exit_130(argv, stop, monkeypatch, capsys):
    import importlib

    def ctrl_c(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(importlib.import_module(stop[0]), stop[1], ctrl_c)
    assert main(argv) == 130
    captured = capsys.readouterr()
    assert captured.err.splitlines() == ["bcdet: interrupted"] and captured.out == ""


# --------------------------------------------------------------------------------------------
# issue #32: one word per concept -- arm, kind -- with the old option names still accepted
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("argv, dest, value", [
    (["train", "--schedule", "constant"], "arm", "constant"),
    (["train", "--split", "random"], "kind", "random"),
    (["tune", "--schedule", "decay"], "arm", "decay"),
    (["tune", "--split", "random"], "kind", "random"),
    (["reproduce", "--splits", "grouped", "random"], "kinds", ["grouped", "random"]),
])
def test_a_renamed_option_still_works_and_says_its_new_name(argv, dest, value, capsys):
    """Users' scripts call ``bcdet train --schedule ...``: the old name sets the new option, says the new
    name in one line, and stays out of ``--help``."""
    from bcdet_helpers.research.cli import build_parser

    old, new = argv[1], "--" + dest
    args = build_parser().parse_args(argv)
    assert getattr(args, dest) == value
    assert capsys.readouterr().err.splitlines() == [f"bcdet: {old} is now {new} (the old name still works, for now)"]
    assert getattr(build_parser().parse_args([argv[0], new, *argv[2:]]), dest) == value
    assert capsys.readouterr().err == ""  # the new name says nothing
    with pytest.raises(SystemExit):
        build_parser().parse_args([argv[0], "--help"])
    help_text = capsys.readouterr().out
    assert new in help_text and old not in help_text.replace(new, "")


def test_a_renamed_option_checks_its_values_like_the_new_one(capsys):
    from bcdet_helpers.research.cli import build_parser

    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(["train", "--split", "leaky"])
    assert exc.value.code == 2 and "invalid choice: 'leaky'" in capsys.readouterr().err


def test_the_default_profile_follows_one_rule_stated_in_the_help(capsys):
    """reproduce and publish default to paper, every other command to laptop; `bcdet --help` says so and
    names every profile (class included)."""
    from bcdet_helpers.research.cli import PAPER_COMMANDS, build_parser
    from bcdet_helpers.profiles import PROFILES

    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices
    with_profile = {name: p for name, p in commands.items() if any("--profile" in a.option_strings for a in p._actions)}
    assert set(PAPER_COMMANDS) <= set(with_profile) and len(with_profile) >= 9
    for name, sub in with_profile.items():
        assert sub.get_default("profile") == ("paper" if name in PAPER_COMMANDS else "laptop"), name
    with pytest.raises(SystemExit):
        parser.parse_args(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert all(name in text for name in PROFILES)
    assert "defaults to paper for reproduce and publish" in text and "to laptop" in text
