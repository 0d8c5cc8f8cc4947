"""``tfkws`` command line: one absl-flags subcommand per pipeline stage.

Each subcommand parses its own ``absl.flags.FlagValues`` (no global flag clashes, and tests can run
commands in-process). A user error prints one line ``tfkws CMD: error: ...`` and exits 2.

Every command also takes ``--verbose`` (or ``tfkws --verbose CMD``): without it TensorFlow's own
logs and Keras's progress are hidden (``tfkws.quiet``) and tfkws prints one line per epoch and
progress with an ETA for long steps. Path flags are made absolute here, once
(``common.resolve_path_flags``), so no stage depends on the working directory.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

from absl import flags, logging

import tfkws  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)
from tfkws import quiet
from tfkws.cli import common
from tfkws.errors import USER_ERRORS

COMMANDS = {
    "synth": "Synthesise the embedded default keyword dataset with espeak-ng (offline).",
    "train": "Train a registered model on a dataset (Speech Commands folder or CSV lists).",
    "qat": "Quantization-aware fine-tuning (tfmot, int8 fake-quant) of a trained float run.",
    "export": "Fold, quantize to int8 and write .tflite + metadata (and firmware C files).",
    "verify": "Run a .tflite in TFLM and LiteRT on real clips; report parity and agreement.",
    "eval": "Accuracy of an int8 .tflite run in TFLM on any dataset.",
    "detect": "Keyword detections in a recording of any length (frontend, TFLM, detector).",
    "stream-eval": "False rejects and false accepts per hour on long streams; DET curve.",
    "demo": "synth -> train -> export -> verify -> firmware, with no data and no network.",
    "models": "List registered models and their default parameters.",
    "slim": "Slimmable supernets: slim extract (one width -> int8), select (best that fits), qat.",
    "zoo": "Pretrained models: zoo list, zoo get NAME --out DIR (.tflite, card, firmware files).",
}


def command_module(name: str) -> str:
    """The module of a command: ``stream-eval`` -> ``tfkws.cli.stream_eval_cmd``."""
    return f"tfkws.cli.{name.replace('-', '_')}_cmd"


def _usage() -> str:
    lines = [
        "usage: tfkws COMMAND [--flags] [--verbose]   (tfkws COMMAND --help for its flags)",
        "",
        "commands:",
    ]
    lines += [f"  {name:<11} {text}" for name, text in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``tfkws`` with ``argv`` (without the program name); return the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    global_verbose = bool(argv) and argv[0] in ("--verbose", "-v")  # tfkws --verbose CMD ...
    if global_verbose:
        argv = argv[1:]
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(_usage())
        return 0 if argv else 2
    name, rest = argv[0], ["--verbose"] * global_verbose + argv[1:]
    if name not in COMMANDS:
        print(f"tfkws: error: unknown command {name!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    quiet.set_verbose(_wants_verbose(rest))  # before anything imports TensorFlow
    quiet.import_tensorflow()
    module = importlib.import_module(command_module(name))
    fv = flags.FlagValues()
    module.define_flags(fv)
    common.define_verbose_flag(fv)
    if any(a in ("-h", "--help", "--helpfull") for a in rest):
        print(f"tfkws {name}: {COMMANDS[name]}\n")
        print(fv.get_help())
        return 0
    try:
        positional = fv([f"tfkws {name}", *rest])[1:]
    except flags.Error as e:
        print(f"tfkws {name}: error: {e}", file=sys.stderr)
        return 2
    common.resolve_path_flags(fv)
    _setup_logging()
    _line_buffered_stdout()
    try:
        run_args = getattr(module, "run_with_args", None)  # commands with an action word
        return int((run_args(fv, positional) if run_args else module.run(fv)) or 0)
    except USER_ERRORS as e:
        print(f"tfkws {name}: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print(f"tfkws {name}: interrupted", file=sys.stderr)
        return 130


def _setup_logging() -> None:
    if not flags.FLAGS.is_parsed():
        flags.FLAGS.mark_as_parsed()
    logging.set_verbosity(logging.INFO)
    logging.use_absl_handler()
    handler = logging.get_absl_handler()
    handler.setFormatter(None)  # plain messages, not absl's "I1125 ..." prefix
    if not any(isinstance(f, quiet.OwnInfoOnly) for f in handler.filters):
        handler.addFilter(quiet.OwnInfoOnly())


def _wants_verbose(args: Sequence[str]) -> bool:
    """``--verbose`` as absl will parse it (the last one wins), read before TensorFlow loads."""
    verbose = False
    for a in args:
        if a == "--":
            break
        if a in ("--verbose", "-v"):
            verbose = True
        elif a == "--noverbose":
            verbose = False
        elif a.startswith("--verbose="):
            verbose = a.split("=", 1)[1].lower() in ("true", "t", "1")
    return verbose


def _line_buffered_stdout() -> None:
    """stdout to a file or pipe in order with stderr (absl's messages), as on a terminal."""
    reconfigure = getattr(sys.stdout, "reconfigure", None)
    if reconfigure is not None and not sys.stdout.isatty():
        try:
            reconfigure(line_buffering=True)
        except (ValueError, OSError):
            pass


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())


if __name__ == "__main__":
    run()
