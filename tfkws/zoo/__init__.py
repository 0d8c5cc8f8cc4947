"""Pretrained models shipped with tfkws (``tfkws zoo list`` / ``tfkws zoo get``); see catalog."""
