"""The ``recon`` command: subcommands live in recon.commands, one module each."""
from __future__ import annotations

import argparse
import logging
import sys

from recon import __version__
from recon.commands import batch, demo, pet, response, spect, suv


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="recon", description="Quantitative SPECT/PET reconstruction.")
    parser.add_argument("--version", action="version", version=f"recon {__version__}")
    for flag, long, text in (("-q", "--quiet", "only warnings and errors"), ("-v", "--verbose", "debug logging")):
        parser.add_argument(flag, long, action="store_true", default=argparse.SUPPRESS, help=text)
    sub = parser.add_subparsers(dest="command", required=True)
    for module in (demo, spect, pet, suv, response, batch):
        module.register(sub)
    return parser


# exception types that mean bad input or a bad path: one line, exit status 2 (a traceback only with -v)
BAD_INPUT_ERRORS: tuple[type[BaseException], ...] = (ValueError, OSError, MemoryError, RuntimeError, KeyError, EOFError)


def error_message(exc: BaseException) -> str:
    """The message of a bad-input exception; an OSError names its file and reason without errno."""
    if isinstance(exc, OSError) and exc.strerror and exc.filename and str(exc.filename) not in exc.strerror:
        message = f"{exc.filename}: {exc.strerror}"
    elif isinstance(exc, KeyError) and exc.args:
        message = str(exc.args[0])
    else:
        message = str(exc) or type(exc).__name__
    return message.strip()  # one line, except a manifest's list of bad rows (one problem per line)


def _is_bad_input(exc: BaseException) -> bool:
    if isinstance(exc, BAD_INPUT_ERRORS):
        return True
    from pydicom.errors import InvalidDicomError  # noqa: PLC0415

    return isinstance(exc, InvalidDicomError)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.quiet = bool(getattr(args, "quiet", False))
    args.verbose = bool(getattr(args, "verbose", False))
    level = logging.WARNING if args.quiet else logging.DEBUG if args.verbose else logging.INFO
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    for noisy in ("numba", "distributed", "h5py"):  # their DEBUG output would drown ours under -v
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))
    try:
        return int(args.func(args) or 0)
    except Exception as exc:  # noqa: BLE001 - bad input ends in one line; anything else is a bug and propagates
        if not _is_bad_input(exc):
            raise
        if args.verbose:
            logging.getLogger("recon").debug("traceback of the error below (recon %s)", args.command, exc_info=exc)
        # one line, the same form for every command (recon.commands.report_error); -v shows the traceback above
        print(f"recon {args.command}: error: {error_message(exc)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
