"""The `imgbench` command: one module per subcommand (DESIGN §10).

User errors exit with status 2 and a one-paragraph message (no traceback unless --debug);
internal failures exit with status 1.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from imgbench import __version__
from imgbench.errors import UserError

#: Subcommand name → module in imgbench.cli; each module has `add_parser(subparsers)` and `main(args)`.
SUBCOMMANDS = {
    "run": "run",
    "generate": "generate",
    "score": "score",
    "ls": "ls",
    "show": "show",
    "validate": "validate",
    "train": "train",
    "compare": "compare",
    "report": "report",
    "plot": "plot",
    "agree": "agree",
    "sweep": "sweep",
    "pairs": "pairs",
    "merge": "merge",
    "download": "download",
}

logger = logging.getLogger("imgbench")


class _Parser(argparse.ArgumentParser):
    """argparse already exits 2 on bad flags; this adds a pointer to --help."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        if message.endswith("expected one argument"):  # argparse reads a value like -1/2 as another flag
            option = message.split()[1].rstrip(":").split("/")[-1]
            message += f" (a value starting with '-' must be attached with '=', e.g. {option}=-1)"
        self.exit(2, f"{self.prog}: error: {message}\nRun `{self.prog} --help` for the options and examples.\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="imgbench", description="Evaluation-first benchmark toolkit for text-to-image "
                     "prompt alignment.")
    parser.add_argument("--version", action="version", version=f"imgbench {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for module in SUBCOMMANDS.values():
        importlib.import_module(f"imgbench.cli.{module}").add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=[logging.WARNING, logging.INFO, logging.DEBUG][min(args.verbose, 2)],
                        format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    if not args.command:
        parser.print_help()
        return 2
    from imgbench.devices import default_threads

    default_threads()
    try:
        from imgbench.suites.fetch import data_dir_override

        with data_dir_override(getattr(args, "data_dir", None)):
            return int(args.handler(args) or 0)
    except UserError as exc:
        if args.debug:
            raise
        print(f"imgbench: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("imgbench: interrupted; finished records are kept and a rerun resumes.", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - the one place that turns bugs into exit status 1
        if args.debug:
            raise
        print(f"imgbench: internal error: {type(exc).__name__}: {exc}\n(rerun with --debug for the traceback and "
              f"report it)", file=sys.stderr)
        return 1
