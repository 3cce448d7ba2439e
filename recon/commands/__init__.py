"""Command-line subcommands; each module has register(subparsers) and run(args)."""
from __future__ import annotations

import argparse
import logging
import math
import sys


def common_options() -> argparse.ArgumentParser:
    """-q/-v, accepted before or after the subcommand name."""
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS, help="only warnings and errors")
    p.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help="debug logging")
    return p


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def check_positive_options(args: argparse.Namespace, names: tuple[str, ...]) -> None:
    """Refuse (ValueError naming the option) a given option that is not a finite number > 0."""
    for name in names:
        value = getattr(args, name, None)
        if value is not None and not (math.isfinite(value) and value > 0):
            raise ValueError(f"{_flag(name)} must be a positive number, got {value}")


def check_threshold_options(args: argparse.Namespace) -> None:
    """Lesion options: --threshold finite, --percent in (0, 100], --min-volume-ml >= 0 (mL)."""
    threshold = getattr(args, "threshold", None)
    if threshold is not None and not math.isfinite(threshold):
        raise ValueError(f"--threshold must be a finite SUV, got {threshold}")
    percent = getattr(args, "percent", None)
    if percent is not None and not (math.isfinite(percent) and 0 < percent <= 100):
        raise ValueError(f"--percent must be in (0, 100], got {percent}")
    min_volume = getattr(args, "min_volume_ml", None)
    if min_volume is not None and not (math.isfinite(min_volume) and min_volume >= 0):
        raise ValueError(f"--min-volume-ml must be >= 0 (mL), got {min_volume}")


def report_error(command: str, exc: BaseException) -> None:
    """``recon COMMAND: error: MESSAGE`` on stderr (one line); the traceback is logged at DEBUG (shown by -v)."""
    logging.getLogger(f"recon.commands.{command}").debug("traceback of the error below", exc_info=exc)
    print(f"recon {command}: error: {exc}", file=sys.stderr)
