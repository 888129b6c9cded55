"""Where the CLI writes, and how it says no.

Both consoles keep Rich's markup off: text in brackets (an id, a message quoting input, a
tampered row the audit reports) is printed as it is, never read as styles, which come
from `Text` only. With soft_wrap, a line longer than the terminal (or than 80 columns, in
a log) is never broken, so a key, an id or a URL arrives whole wherever the output goes.
"""

from __future__ import annotations

from typing import NoReturn

import typer
from rich.console import Console
from rich.text import Text

from danbao.errors import DanbaoError

console = Console(soft_wrap=True, markup=False)
err = Console(stderr=True, soft_wrap=True, markup=False)


def fail(error: DanbaoError) -> NoReturn:
    """A store or input error is one line on stderr, `error <code>: <message>`, and exit
    code 2, not a traceback."""
    err.print(Text.assemble(("error", "red"), f" {error.code}: {error.message}"))
    raise typer.Exit(2)
