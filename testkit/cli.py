"""The dse command line in-process (api.cli.main), as the CLI tests call it."""

from __future__ import annotations

import json

from api.cli import main

X400 = "22,24,24.48,2.54,16"  # RegNetX-400MF as `--regnet` takes it: depth, w0, wa, wm, group width


def run(capsys, *argv) -> tuple[int, str, str]:
    """Run the CLI in-process; return (exit code, stdout, stderr)."""
    try:
        code = main(list(argv))
    except SystemExit as e:  # argparse errors
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


def run_json(capsys, *argv) -> dict:
    """A succeeding command run with --json: its one JSON document."""
    code, out, err = run(capsys, *argv, "--json")
    assert code == 0, err
    return json.loads(out)  # exactly one JSON document


def bad(capsys, *argv) -> str:
    """A failing command: non-zero exit, nothing on stdout, one line on stderr."""
    code, out, err = run(capsys, *argv)
    assert code != 0
    assert out == ""
    assert len(err.strip().splitlines()) == 1, err
    return err
