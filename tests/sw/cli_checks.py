"""What a failed command's stderr must look like: status lines may precede it, but there is
exactly one error line, it is the last line, and there is no traceback."""

from __future__ import annotations


def error_message(err: str, prog: str) -> str:
    """The message of the one ``PROG: error: MESSAGE`` line of ``err`` (asserting the shape)."""
    lines = err.splitlines()
    errors = [ln for ln in lines if ln.startswith(f"{prog}: error: ")]
    assert len(errors) == 1 and lines[-1] == errors[0], err
    assert "Traceback" not in err, err
    assert all(ln.startswith(f"{prog}: ") for ln in lines), err  # status lines name the command
    return errors[0][len(f"{prog}: error: "):]
