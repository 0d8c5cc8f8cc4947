"""``tfkws`` command line: one absl-flags subcommand per pipeline stage.

Each subcommand parses its own ``absl.flags.FlagValues`` (no global flag clashes, and tests can run
commands in-process). A user error prints one line ``tfkws CMD: error: ...`` and exits 2.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

from absl import flags, logging

import tfkws  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)
from tfkws.errors import USER_ERRORS

COMMANDS = {
    "synth": "Synthesise the embedded default keyword dataset with espeak-ng (offline).",
    "train": "Train a registered model on a dataset (Speech Commands folder or CSV lists).",
    "qat": "Quantization-aware fine-tuning (tfmot, int8 fake-quant) of a trained float run.",
    "export": "Fold, quantize to int8 and write .tflite + metadata (and firmware C files).",
    "verify": "Run a .tflite in TFLM and LiteRT on real clips; report parity and agreement.",
    "eval": "Accuracy of an int8 .tflite run in TFLM on any dataset.",
    "demo": "synth -> train -> export -> verify -> firmware, with no data and no network.",
    "models": "List registered models and their default parameters.",
    "slim": "Slimmable supernets: slim extract (one width -> int8), select (best that fits), qat.",
    "zoo": "Pretrained models: zoo list, zoo get NAME --out DIR (.tflite, card, firmware files).",
}


def _usage() -> str:
    lines = [
        "usage: tfkws COMMAND [--flags]   (tfkws COMMAND --help for its flags)",
        "",
        "commands:",
    ]
    lines += [f"  {name:<8} {text}" for name, text in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``tfkws`` with ``argv`` (without the program name); return the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(_usage())
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"tfkws: error: unknown command {name!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(f"tfkws.cli.{name}_cmd")
    fv = flags.FlagValues()
    module.define_flags(fv)
    if any(a in ("-h", "--help", "--helpfull") for a in rest):
        print(f"tfkws {name}: {COMMANDS[name]}\n")
        print(fv.get_help())
        return 0
    try:
        positional = fv([f"tfkws {name}", *rest])[1:]
    except flags.Error as e:
        print(f"tfkws {name}: error: {e}", file=sys.stderr)
        return 2
    _setup_logging()
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
    logging.get_absl_handler().setFormatter(None)  # absl's own "I1125 ..." format


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())


if __name__ == "__main__":
    run()
