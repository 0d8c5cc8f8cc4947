"""``tfkws models``: registered models and their default parameters.

Models with a parameter report (the weight-shared conformer) also show their unique vs applied
("used") weights at the default feature shape and 12 classes (Speech Commands' 10 words,
silence, unknown).
"""

from __future__ import annotations

import json

from absl import flags

REPORT_INPUT = (49, 40)
REPORT_CLASSES = 12


def define_flags(fv: flags.FlagValues) -> None:
    flags.DEFINE_bool("json", False, "Print JSON instead of a table.", flag_values=fv)


def run(fv: flags.FlagValues) -> int:
    from tfkws.models.catalog import get_spec, list_models
    from tfkws.models.registry import param_report

    specs = [get_spec(n) for n in list_models()]
    reports = {
        s.name: param_report(s.name, REPORT_INPUT, REPORT_CLASSES, s.defaults) for s in specs
    }
    if fv.json:
        out = {
            s.name: {**s.defaults, **({"param_report": reports[s.name]} if reports[s.name] else {})}
            for s in specs
        }
        print(json.dumps(out, indent=2, sort_keys=True))
        return 0
    for s in specs:
        print(f"{s.name:<20} {s.doc}")
        print(f"{'':<20} defaults: {json.dumps(s.defaults, sort_keys=True)}")
        rep = reports[s.name]
        if rep:
            print(
                f"{'':<20} params at {REPORT_INPUT[0]}x{REPORT_INPUT[1]}, {REPORT_CLASSES} "
                f"classes: {rep['unique']:,} unique, {rep['used']:,} used"
            )
    return 0
