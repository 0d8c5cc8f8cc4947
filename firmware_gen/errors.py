"""The one error type firmware_gen raises for bad input: the CLI prints it as one line, exit 2."""

from __future__ import annotations

from tfkws.errors import ModelError


class FirmwareGenError(ModelError):
    """A model, option or output folder firmware_gen cannot use; the message names it.

    A subclass of ``tfkws.errors.ModelError`` so ``tfkws export`` reports it like its own errors.
    """
