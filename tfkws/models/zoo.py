"""Imports every model file so each registers itself. Add new model modules here."""

from tfkws.models import ds_cnn  # noqa: F401
