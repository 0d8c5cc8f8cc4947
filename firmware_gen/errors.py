"""The one error type firmware_gen raises for bad input: the CLI prints it as one line, exit 2.

firmware_gen stands alone (it imports neither tfkws nor TensorFlow), so the type is its own; tfkws,
which calls firmware_gen, reports it like its own errors (``tfkws.errors.USER_ERRORS``).
"""

from __future__ import annotations


class FirmwareGenError(Exception):
    """A model, option or output folder firmware_gen cannot use; the message names it."""

    exit_code = 2
