"""``python -m nfm_numpy tune`` (issue 17, part 2): a budgeted search with Optuna.

Tiny searches on the built-in synthetic data (--train-rows) through ``cli.main`` in this process: one
line per trial, a leaderboard whose best is the best trial line, a saved model that scores the
reported metric, pruning, reproducibility, the --minutes budget, and the house rule for bad options
(exit 2, one line). No timing assertions.
"""
import json
import re

import pytest

optuna = pytest.importorskip("optuna")

from test_errors import assert_one_line_error, run_cli, write  # noqa: E402

from nfm_numpy import checkpoint, cli, datasets as D, train as T  # noqa: E402

SMALL = ["tune", "--train-rows", "1000", "--epochs", "4", "--hidden-factors", "4,8", "--batch-size", "64"]
NFM_SMALL = SMALL + ["--layer-choices", "8;''"]
TRIAL = re.compile(r"^trial +(\d+)  (.*?)  valid (rmse|logloss) ([0-9.]+) \(epoch (\d+) of (\d+)\)  (.*?)  \[")
BOARD = re.compile(r"^ *(\d+)\. trial +(\d+)  valid (?:rmse|logloss) ([0-9.]+)")


def trial_lines(out):
    return [TRIAL.match(line) for line in out.splitlines() if line.startswith("trial ")]


def without_seconds(out):
    return re.sub(r"\[[0-9.]+ s\]", "", out)


def synthetic_valid():
    return D.load("synthetic", loss="square", seed=0, noise=cli.SYNTHETIC_NOISE).valid


def test_search_prints_trials_leaderboard_and_saves_the_best(tmp_path, capsys):
    save, hist = tmp_path / "m.npz", tmp_path / "h.jsonl"
    code, out, err = run_cli(NFM_SMALL + ["--trials", "4", "--save", save, "--history", hist], capsys)
    assert code == 0, err
    trials = trial_lines(out)
    assert len(trials) == 4 and all(trials), out
    assert [int(t.group(1)) for t in trials] == [0, 1, 2, 3]
    values = [float(t.group(4)) for t in trials]
    board = [BOARD.match(line) for line in out.splitlines() if BOARD.match(line)]
    assert 1 <= len(board) <= 5
    assert float(board[0].group(3)) == min(values)
    assert [float(b.group(3)) for b in board] == sorted(values)[:len(board)]
    assert "ran the 4 trials of --trials" in out
    records = [json.loads(line) for line in hist.read_text().splitlines()]
    assert len(records) == 5 and "best" in records[-1]
    best = records[-1]["best"]
    assert best["valid"] == min(r["valid"] for r in records[:-1])
    assert f"best: trial {best['trial']}," in out and set(best["settings"]) == {"lr", "l2", "k", "layers", "keep_prob"}
    # the saved model is the best trial's, as it was scored: its validation rmse is the reported one
    model, _ = checkpoint.load(save)
    assert model.config["k"] == best["settings"]["k"] and model.config["l2"] == best["settings"]["l2"]
    assert list(model.config["layers"]) == best["settings"]["layers"]
    assert T.evaluate(model, synthetic_valid())["rmse"] == pytest.approx(best["valid"], rel=1e-6, abs=1e-9)
    assert f"{best['valid']:.4f}" == board[0].group(3)


def test_fm_search_searches_no_layers(tmp_path, capsys):
    hist = tmp_path / "h.jsonl"
    code, out, err = run_cli(SMALL + ["--model", "fm", "--trials", "3", "--history", hist], capsys)
    assert code == 0, err
    assert len(trial_lines(out)) == 3 and "layers=" not in out
    records = [json.loads(line) for line in hist.read_text().splitlines()]
    assert all(set(r["settings"]) == {"lr", "l2", "k", "keep_prob"} for r in records[:-1])
    assert all(len(r["settings"]["keep_prob"]) == 1 for r in records[:-1])


def test_a_pruner_discards_trials_of_a_bad_lr_range(capsys):
    bad = NFM_SMALL + ["--trials", "6", "--lr-range", "1e-6,1e-4", "--epochs", "6"]
    code, out, err = run_cli(bad + ["--pruner", "halving"], capsys)
    assert code == 0, err
    trials = trial_lines(out)
    assert len(trials) == 6 and all(trials)
    pruned = [t for t in trials if t.group(7) == "pruned"]
    assert pruned, out
    assert all(int(t.group(6)) < 6 for t in pruned)             # stopped before the epoch cap
    code, out, err = run_cli(bad + ["--pruner", "none"], capsys)
    assert code == 0, err
    assert all(t.group(7) != "pruned" for t in trial_lines(out))


def test_a_seeded_search_is_reproducible(capsys):
    argv = NFM_SMALL + ["--trials", "3", "--seed", "7"]
    first = run_cli(argv, capsys)
    second = run_cli(argv, capsys)
    assert first[0] == second[0] == 0
    assert without_seconds(first[1]) == without_seconds(second[1])
    other = run_cli(NFM_SMALL + ["--trials", "3", "--seed", "8"], capsys)
    assert without_seconds(other[1]) != without_seconds(first[1])


def test_a_minutes_budget_stops_and_says_why(capsys):
    code, out, err = run_cli(SMALL + ["--model", "fm", "--minutes", "0.00001"], capsys)
    assert code == 0, err
    assert len(trial_lines(out)) == 1
    assert "search stopped: the 1e-05-minute budget (--minutes) ran out after 1 trial" in out


def test_a_search_on_a_csv_file_saves_its_encoder(tmp_path, capsys):
    csv = write(tmp_path, "r.csv", "user,item,rating\n" + "".join(f"u{i % 7},i{i % 5},{1 + (i % 7 + i % 5) % 5}\n"
                                                                  for i in range(300)))
    save = tmp_path / "m.npz"
    code, out, err = run_cli(["tune", "--csv", csv, "--label", "rating", "--categorical", "user,item", "--model",
                              "fm", "--trials", "2", "--epochs", "2", "--batch-size", "16", "--hidden-factors", "4",
                              "--save", save], capsys)
    assert code == 0, err
    assert len(trial_lines(out)) == 2
    code, out, err = run_cli(["evaluate", "--load", save, "--csv", csv], capsys)
    assert code == 0, err
    assert "rmse" in out


def test_without_optuna_the_error_says_how_to_install_it(monkeypatch, capsys):
    monkeypatch.setitem(__import__("sys").modules, "optuna", None)
    code, out, err = run_cli(SMALL + ["--trials", "1"], capsys)
    assert_one_line_error(code, err, 2, r"pip install optuna")


@pytest.mark.parametrize("argv,pattern", [
    (["--trials", "0"], r"argument --trials: must be >= 1, got 0"),
    (["--minutes", "-1"], r"argument --minutes: must be > 0, got -1"),
    (["--minutes", "0"], r"argument --minutes: must be > 0"),
    (["--trials", "2.5"], r"argument --trials: expected an integer"),
    ([], r"give a budget: --trials N, --minutes M or both"),
    (["--trials", "1", "--model", "xx"], r"argument --model: invalid choice: 'xx'"),
    (["--trials", "1", "--model", "fm", "--layer-choices", "8"], r"--layer-choices applies to --model nfm only"),
    (["--trials", "1", "--layers", "8"], r"--layers: tune searches it; give the range to search with "
                                         r"--layer-choices"),
    (["--trials", "1", "--lr", "0.1"], r"--lr: tune searches it; .* --lr-range"),
    (["--trials", "1", "--keep-prob", "0.5"], r"--keep-prob: tune searches it; .* --keep-range"),
    (["--trials", "1", "--hidden-factor", "8"], r"--hidden-factor: tune searches it; .* --hidden-factors"),
    (["--trials", "1", "--lr-range", "0.1"], r"argument --lr-range: expected two numbers LO,HI"),
    (["--trials", "1", "--lr-range", "0.5,0.1"], r"argument --lr-range: LO must not exceed HI"),
    (["--trials", "1", "--lr-range", "0,0.1"], r"argument --lr-range: must be > 0"),
    (["--trials", "1", "--keep-range", "0.5,1.5"], r"argument --keep-range: must be <= 1, got 1.5"),
    (["--trials", "1", "--hidden-factors", ""], r"argument --hidden-factors: needs at least one embedding size"),
    (["--trials", "1", "--hidden-factors", "8,8"], r"argument --hidden-factors: a size is given twice"),
    (["--trials", "1", "--layer-choices", "8;;8"], r"argument --layer-choices: a choice is given twice"),
    (["--trials", "1", "--pruner", "fast"], r"argument --pruner: invalid choice"),
    (["--trials", "1", "--label", "y"], r"--label applies to --csv only"),
    (["--trials", "1", "--solver", "mcmc"], r"unrecognized arguments: --solver mcmc"),
    (["--trials", "1", "--save", "{tmp}/same", "--history", "{tmp}/same"], r"--history and --save name the same "
                                                                             r"file"),
    (["--trials", "1", "--save", ""], r"argument --save: an empty path"),
])
def test_bad_options_are_one_line_exit_2(argv, pattern, tmp_path, capsys):
    watched = tmp_path / "same"
    code, out, err = run_cli(["tune"] + [a.replace("{tmp}", str(tmp_path)) for a in argv], capsys)
    assert_one_line_error(code, err, 2, pattern)
    assert "trial " not in out and not watched.exists()


def test_a_search_whose_trials_all_diverge_fails_in_one_line(tmp_path, capsys):
    save = tmp_path / "m.npz"
    code, out, err = run_cli(NFM_SMALL + ["--trials", "2", "--optimizer", "sgd", "--lr-range", "1e4,1e6", "--save",
                                          save], capsys)
    assert_one_line_error(code, err, 1, r"no trial finished an epoch \(each diverged: try a smaller --lr-range\); "
                                        r"nothing saved")
    assert out.count("no epoch finished  diverged") == 2 and not save.exists()


def test_a_signal_during_a_trial_stops_the_search_and_keeps_the_best(tmp_path, monkeypatch, capsys):
    """SIGTERM after trial 1's second epoch: that trial stops after the epoch, no trial starts after it,
    the leaderboard, --save and --history are written, exit status 130."""
    import os
    import signal
    report = optuna.trial.Trial.report

    def report_then_signal(self, value, step):
        report(self, value, step)
        if self.number == 1 and step == 2:
            os.kill(os.getpid(), signal.SIGTERM)
    monkeypatch.setattr(optuna.trial.Trial, "report", report_then_signal)
    save, hist = tmp_path / "m.npz", tmp_path / "h.jsonl"
    code, out, err = run_cli(NFM_SMALL + ["--trials", "5", "--pruner", "none", "--save", save, "--history", hist],
                             capsys)
    assert code == 130, err
    assert "interrupted (SIGTERM after epoch 2); the search stopped" in err
    trials = trial_lines(out)
    assert len(trials) == 2 and trials[1].group(7) == "interrupted" and trials[1].group(6) == "2"
    assert "leaderboard" in out and save.exists()
    best = json.loads(hist.read_text().splitlines()[-1])["best"]
    model, _ = checkpoint.load(save)
    assert T.evaluate(model, synthetic_valid())["rmse"] == pytest.approx(best["valid"], rel=1e-6, abs=1e-9)


def test_a_log_loss_search_ranks_by_logloss_and_evaluate_agrees(tmp_path, capsys):
    save = tmp_path / "m.npz"
    code, out, err = run_cli(SMALL + ["--model", "fm", "--loss", "log", "--trials", "3", "--save", save], capsys)
    assert code == 0, err
    trials = trial_lines(out)
    assert len(trials) == 3 and all(t.group(3) == "logloss" for t in trials)
    best = min(float(t.group(4)) for t in trials)
    code, out, err = run_cli(["evaluate", "--load", save, "--part", "validation"], capsys)
    assert code == 0, err
    assert f"validation logloss: {best:.4f}" in out
