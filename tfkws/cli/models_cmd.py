"""``tfkws models``: registered models and their default parameters."""

from __future__ import annotations

import json

from absl import flags


def define_flags(fv: flags.FlagValues) -> None:
    flags.DEFINE_bool("json", False, "Print JSON instead of a table.", flag_values=fv)


def run(fv: flags.FlagValues) -> int:
    from tfkws.models.catalog import get_spec, list_models

    specs = [get_spec(n) for n in list_models()]
    if fv.json:
        print(json.dumps({s.name: s.defaults for s in specs}, indent=2, sort_keys=True))
        return 0
    for s in specs:
        print(f"{s.name:<20} {s.doc}")
        print(f"{'':<20} defaults: {json.dumps(s.defaults, sort_keys=True)}")
    return 0
