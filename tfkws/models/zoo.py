"""Imports every model file so each registers itself. Add new model modules here."""

import tfkws.models.bc_resnet  # noqa: F401
import tfkws.models.repcnn  # noqa: F401
import tfkws.models.slimmable_ds_cnn  # noqa: F401
import tfkws.models.slimmable_kwt  # noqa: F401
import tfkws.models.slimmable_tc_cnn  # noqa: F401
from tfkws.models import ds_cnn  # noqa: F401
