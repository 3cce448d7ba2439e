"""Command-line subcommands; each module has register(subparsers) and run(args)."""
from __future__ import annotations

import argparse


def common_options() -> argparse.ArgumentParser:
    """-q/-v, accepted before or after the subcommand name."""
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS, help="only warnings and errors")
    p.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help="debug logging")
    return p
