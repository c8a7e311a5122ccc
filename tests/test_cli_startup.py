"""The command's start: ``tagifai COMMAND`` builds only COMMAND's parser and imports only its module, while
``tagifai --help`` still lists every command (tagifai_cli/commands.py, issue 13: the cold start of predict)."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tagifai_cli.commands import COMMANDS
from tagifai_cli.main import _command_in, build_parser, main

ROOT = Path(__file__).resolve().parent.parent
NO_TEXT = "give --title (and --description), or --input CSV"
#: What a start must not import before its command needs it (the parser of predict, or --help).
HEAVY = ("pandas", "sklearn", "scipy", "mlflow", "kfp", "pydantic", "yaml", "onnxruntime", "tagifai.config")


def _subcommands(parser: argparse.ArgumentParser) -> argparse._SubParsersAction:
    return next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))


def _imported_by(code: str) -> dict:
    """The modules of :data:`HEAVY` and of tagifai_cli a new interpreter has imported after ``code``."""
    probe = (
        f"{code}\nimport json, sys\n"
        f"print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r} or m in {HEAVY!r}"
        " or m.startswith('tagifai_cli.'))))"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TAGIFAI_", "MLFLOW_"))}
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, env=env, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_help_lists_every_command_with_its_help_line(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    for name, command in COMMANDS.items():
        assert f" {name} {' '.join(command.help.split())}" in text, name


def test_the_table_is_the_full_parser():
    # every module's commands, in the table's order, with the table's help lines, and nothing else
    full = _subcommands(build_parser())
    assert list(full.choices) == list(COMMANDS)
    assert {a.dest: a.help for a in full._choices_actions} == {n: c.help for n, c in COMMANDS.items()}


@pytest.mark.parametrize("name", list(COMMANDS))
def test_a_command_alone_parses_as_with_every_command(name):
    lazy, full = _subcommands(build_parser(name)), _subcommands(build_parser())
    assert lazy.choices[name].format_help() == full.choices[name].format_help()
    for nested in (a for a in full.choices[name]._actions if isinstance(a, argparse._SubParsersAction)):
        for sub_name, parser in nested.choices.items():
            lazy_nested = next(a for a in lazy.choices[name]._actions if isinstance(a, argparse._SubParsersAction))
            assert lazy_nested.choices[sub_name].format_help() == parser.format_help(), f"{name} {sub_name}"


def test_only_the_named_command_is_built():
    sub = _subcommands(build_parser("predict"))
    complete = {n for n, p in sub.choices.items() if p.get_default("func") is not None}
    assert complete == {"predict"}
    sub = _subcommands(build_parser("submit"))  # one module adds submit, schedule and backfill together
    assert {n for n, p in sub.choices.items() if p.get_default("func") is not None} == {
        "submit",
        "schedule",
        "backfill",
    }
    assert all(p.get_default("func") is None for p in _subcommands(build_parser("")).choices.values())


def test_the_command_is_the_first_argument_that_is_not_an_option():
    assert _command_in(["--debug", "predict", "--title", "x"]) == "predict"
    assert _command_in(["-h"]) == "" and _command_in([]) == ""
    assert _command_in(["models", "list"]) == "models"
    # which holds only while no top-level option takes a value
    top = [a for a in build_parser("")._actions if a.option_strings]
    assert top and all(a.nargs == 0 for a in top), [a.option_strings for a in top if a.nargs != 0]


def test_errors_name_every_command(capsys):
    for argv in ([], ["bogus"], ["--debug"]):
        with pytest.raises(SystemExit) as exit_:
            main(argv)
        assert exit_.value.code == 2
        err = capsys.readouterr().err
        assert "{" + ",".join(COMMANDS) + "}" in err


def test_predict_without_text_or_input_says_so(capsys):
    assert main(["predict"]) == 1
    assert capsys.readouterr().err.strip() == f"tagifai predict: error: CLIError: {NO_TEXT}"


def test_predicts_parser_and_help_import_nothing_heavy():
    # the parser of predict: no other command's module, and none of the libraries (predict imports those it needs)
    assert _imported_by("from tagifai_cli.main import build_parser; build_parser('predict')") == [
        "tagifai_cli.commands",
        "tagifai_cli.main",
        "tagifai_cli.options",
    ]
    code = "from tagifai_cli.main import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass"
    assert _imported_by(code) == ["tagifai_cli.commands", "tagifai_cli.main", "tagifai_cli.options"]
    # and a command of another module imports that module (submit: tagifai_cli.kubeflow and what it needs)
    assert "tagifai_cli.kubeflow" in _imported_by("from tagifai_cli.main import build_parser; build_parser('submit')")


def test_runs_as_a_module_also_under_a_profiler():
    # `python -m cProfile -m tagifai_cli.main ...` (docs/benchmarks.md profiles predict so): runpy runs the module
    # under the name __main__ without making it sys.modules["__main__"]
    for argv in (["-m", "tagifai_cli.main"], ["-m", "cProfile", "-o", os.devnull, "-m", "tagifai_cli.main"]):
        done = subprocess.run([sys.executable, *argv, "predict"], capture_output=True, text=True, cwd=ROOT, timeout=120)
        # (cProfile exits 0 whatever the command returned)
        assert done.stderr.strip() == f"tagifai predict: error: CLIError: {NO_TEXT}"
