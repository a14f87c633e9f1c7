"""The lqer-hw dispatcher: help, version, unknown commands, lazy imports."""

import subprocess
import sys

from lqer_hw import __version__
from lqer_hw.cli import SUBCOMMANDS, main


def test_help_lists_every_command(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: lqer-hw")
    for name in SUBCOMMANDS:
        assert f"\n  {name} " in out


def test_version(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out == f"lqer-hw {__version__}\n"


def test_unknown_command_is_one_line_exit_2(capsys):
    assert main(["frobnicate"]) == 2
    err = capsys.readouterr().err
    assert err == ("lqer-hw: error: COMMAND must be one of "
                   f"{', '.join(SUBCOMMANDS)}; got 'frobnicate'\n")


def test_console_script_runs_as_module():
    done = subprocess.run([sys.executable, "-m", "lqer_hw", "--version"],
                          capture_output=True, text=True, check=True)
    assert done.stdout.strip() == f"lqer-hw {__version__}"


def test_help_does_not_import_torch():
    code = "import sys; from lqer_hw.cli import main; main(['--help']); print('torch' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip().endswith("False")


def test_no_command_prints_usage_on_stderr_and_exits_2(capsys):
    assert main([]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("usage: lqer-hw")
    done = subprocess.run([sys.executable, "-m", "lqer_hw"], capture_output=True, text=True)
    assert done.returncode == 2 and done.stderr.startswith("usage: lqer-hw")
