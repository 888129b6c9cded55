"""The CLI as a person runs it: `CLI` starts it in a process of its own."""

import sys

CLI = [sys.executable, "-c", "from danbao.cli.main import main; main()"]
