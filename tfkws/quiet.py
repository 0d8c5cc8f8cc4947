"""Quiet TensorFlow on the console: a tfkws run prints its own progress, not TF's logs.

TF 2.21 logs from C++ when it loads (cudart_stub "Could not find cuda drivers", cpu_feature_guard,
oneDNN) through absl's C++ logging before ``absl::InitializeLog``, which writes every level to
stderr whatever ``TF_CPP_MIN_LOG_LEVEL`` says (tensorflow/tensorflow#100442); after import that
variable (set before import, ``tfkws/__init__.py``) does filter TF's runtime C++ logs. No variable
reaches the import-time lines or the text the TFLite converter prints itself, so those few calls
run inside :func:`filtered_stderr`, which captures file descriptor 2 and gives back every line that
is not TF log noise (errors, tracebacks and Python warnings stay visible).

``tfkws --verbose`` (:func:`set_verbose`) turns all of this off.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import tempfile
import warnings
from collections.abc import Iterator

# Lines TF's C++ code writes to stderr that say nothing to a tfkws user.
NOISE = re.compile(
    r"^(?:"
    r"WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    r"|[IWE]\d{4} \d\d:\d\d:\d\d+\.\d+ +\d+ [\w.]+:\d+\] .*"  # absl C++ log line
    r"|\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: [IWE] \S+:\d+\] .*"  # TF (tsl) C++ log line
    r"|To enable the following instructions: .*"  # 2nd line of cpu_feature_guard's
    r"|fully_quantize: \d+, inference_type: .*"  # the TFLite converter's printf
    r")$"
)

_state = {"verbose": False}


def set_verbose(verbose: bool) -> None:
    """``True``: TF's own logs and Keras progress are shown (``tfkws --verbose``)."""
    _state["verbose"] = bool(verbose)
    if verbose:
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "0"
    else:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def is_verbose() -> bool:
    return _state["verbose"]


@contextlib.contextmanager
def filtered_stderr() -> Iterator[None]:
    """Run the block with fd 2 captured; then write back the lines that are not :data:`NOISE`.

    For calls whose C++ code writes to stderr below any log-level switch. Passes everything
    through when verbose, or when stderr has no file descriptor (e.g. pytest's capture).
    """
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):
        fd = -1
    if _state["verbose"] or fd < 0:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(fd)
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), fd)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, fd)
            os.close(saved)
            tmp.seek(0)
            text = tmp.read().decode("utf-8", "replace")
            kept = [line for line in text.splitlines() if not NOISE.match(line)]
            if kept:
                sys.stderr.write("\n".join(kept) + "\n")
                sys.stderr.flush()


CONVERTER_NOTICE = "Please consider providing the trackable_obj argument"


class OwnInfoOnly(logging.Filter):
    """Passes tfkws's (and firmware_gen's) info lines and every warning; drops other info lines.

    TensorFlow logs some info through absl's Python logger too (``Sharding callback duration``
    at every checkpoint), the logger tfkws's own messages use.
    """

    def __init__(self) -> None:
        super().__init__()
        repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        self.roots = tuple(os.path.join(repo, pkg) + os.sep for pkg in ("tfkws", "firmware_gen"))

    def filter(self, record: logging.LogRecord) -> bool:
        if _state["verbose"]:
            return True
        if record.levelno >= logging.WARNING:
            # The converter's deprecation notice for from_concrete_functions, on every export
            # (tfkws.conversion.tflite_convert.graph_converter): nothing a user can act on.
            return not str(record.msg).startswith(CONVERTER_NOTICE)
        return os.path.abspath(record.pathname).startswith(self.roots)


def import_tensorflow() -> None:
    """Import TensorFlow (and tf_keras) now, without its load-time C++ log lines unless verbose.

    Also quiets TF's Python logger (``Sharding callback duration`` ...) and warnings that only
    restate what tfkws reports; warnings and errors that matter stay visible.
    """
    with filtered_stderr():
        import tensorflow  # noqa: F401
    logging.getLogger("tensorflow").setLevel(logging.NOTSET if _state["verbose"] else logging.ERROR)
    if not _state["verbose"]:
        warnings.filterwarnings("ignore", message="Statistics for quantized inputs were expected")
