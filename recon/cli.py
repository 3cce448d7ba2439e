"""The ``recon`` command: subcommands live in recon.commands, one module each."""
from __future__ import annotations

import argparse
import logging
import sys

from recon import __version__
from recon.commands import batch, demo, response, spect, suv


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="recon", description="Quantitative SPECT/PET reconstruction.")
    parser.add_argument("--version", action="version", version=f"recon {__version__}")
    for flag, long, text in (("-q", "--quiet", "only warnings and errors"), ("-v", "--verbose", "debug logging")):
        parser.add_argument(flag, long, action="store_true", default=argparse.SUPPRESS, help=text)
    sub = parser.add_subparsers(dest="command", required=True)
    for module in (demo, spect, suv, response, batch):
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.quiet = bool(getattr(args, "quiet", False))
    args.verbose = bool(getattr(args, "verbose", False))
    level = logging.WARNING if args.quiet else logging.DEBUG if args.verbose else logging.INFO
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError, FileExistsError, MemoryError, RuntimeError, KeyError) as exc:
        logging.getLogger("recon").error("%s", exc)
        return 2


if __name__ == "__main__":
    sys.exit(main())
