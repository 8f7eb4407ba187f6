"""CLI helper shared by tests (not collected as tests)."""

from __future__ import annotations

import pytest

from duetseg.cli import main

__all__ = ["cli_error_line"]


def cli_error_line(argv: list[str], capsys) -> str:
    """Run the CLI, expect exit 1 and return its one ``error:`` line (no traceback)."""
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, err
    return lines[0]
