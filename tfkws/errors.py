"""User-facing errors: one clear line naming the file and the problem, exit code 2 in the CLIs."""

from __future__ import annotations

from firmware_gen.errors import FirmwareGenError


class TfkwsError(Exception):
    """An error caused by the user's input (bad file, missing label, model that won't fit...).

    The CLI prints ``tfkws: error: <message>`` and exits with code 2, no traceback.
    """

    exit_code = 2


class AudioError(TfkwsError):
    """A clip that cannot be read or used."""


class DatasetError(TfkwsError):
    """A dataset folder or list that cannot be used."""


class ModelError(TfkwsError):
    """A model file that is corrupt, not int8, or uses ops TFLM lacks."""


# What a tfkws CLI reports as one line with the error's ``exit_code``: tfkws's own errors and those
# of firmware_gen, which tfkws calls (firmware_gen stands alone and cannot derive from TfkwsError).
USER_ERRORS: tuple[type[Exception], ...] = (TfkwsError, FirmwareGenError)
