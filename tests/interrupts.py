"""Starting a command as a terminal starts a foreground job, for the tests that send it
SIGINT (Ctrl-C)."""

from __future__ import annotations

import signal
import subprocess


def start_interruptible(argv: list[str], **kwargs) -> subprocess.Popen:
    """``subprocess.Popen(argv, **kwargs)`` with SIGINT at its default disposition in the
    child. A shell starts a background command with SIGINT ignored (POSIX, Shell Command
    Language, "Signals and Error Handling"), the child inherits that, and Python then
    installs no ``KeyboardInterrupt`` handler, so a suite run in the background
    (``nohup make test &``) would lose the signal these tests send."""
    return subprocess.Popen(argv, preexec_fn=_default_sigint, **kwargs)


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)
