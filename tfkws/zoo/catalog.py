"""The pretrained model zoo: trained int8 models shipped with tfkws, each with its model card.

An embedded engineer who wants ``model_data.cc`` for a good keyword spotter should not have to
train one first. Every zoo entry is a folder under ``tfkws/zoo/models/NAME/`` holding

- ``model_int8.tflite`` and ``model_int8.metadata.json`` (labels, features, input/output scale),
  exactly as ``tfkws export`` wrote them;
- ``card.json``: data and split, the commands that trained, exported and evaluated it, int8
  accuracy in TFLM, parameters, MACs, ``.tflite`` bytes, arena on the host and on emulated
  Cortex-M4/M55 (``CARD.md`` is the same card for people);
- for a slimmable supernet, ``supernet/`` (its run config and weights), which ``tfkws slim
  select --run`` reads to cut a width for a board.

Cards are written by ``benchmarks/zoo.py`` from a trained run; ``tests/test_zoo.py`` recomputes
every deterministic figure (bytes, MACs, arena) with firmware_gen and compares it exactly.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path
from typing import Any

from tfkws.errors import TfkwsError

ZOO_DIR = Path(__file__).resolve().parent / "models"
CARD = "card.json"
CARD_MD = "CARD.md"
TFLITE = "model_int8.tflite"
METADATA = "model_int8.metadata.json"
SUPERNET = "supernet"
CARD_FORMAT = "tfkws-zoo-card"


@dataclasses.dataclass(frozen=True)
class ZooModel:
    """One zoo entry: its folder and its card."""

    name: str
    folder: Path
    card: dict[str, Any]

    @property
    def tflite(self) -> Path:
        return self.folder / TFLITE

    @property
    def metadata(self) -> Path:
        return self.folder / METADATA

    @property
    def supernet(self) -> Path | None:
        path = self.folder / SUPERNET
        return path if path.is_dir() else None


def _read_card(folder: Path) -> dict[str, Any]:
    path = folder / CARD
    try:
        card = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise TfkwsError(f"{path}: unreadable model card ({e})") from None
    if card.get("format") != CARD_FORMAT:
        raise TfkwsError(f"{path}: not a tfkws model card (format != {CARD_FORMAT!r})")
    return card


def list_models(zoo_dir: Path = ZOO_DIR) -> list[ZooModel]:
    """Every model in the zoo, by name."""
    if not zoo_dir.is_dir():
        return []
    return [
        ZooModel(f.name, f, _read_card(f)) for f in sorted(zoo_dir.iterdir()) if (f / CARD).exists()
    ]


def get_model(name: str, zoo_dir: Path = ZOO_DIR) -> ZooModel:
    """The zoo entry ``name``; a one-line error listing the names when there is none."""
    models = {m.name: m for m in list_models(zoo_dir)}
    if name not in models:
        known = ", ".join(models) or "none"
        raise TfkwsError(f"zoo: no model {name!r} (the zoo has: {known})")
    return models[name]


def summary_line(m: ZooModel) -> str:
    """``NAME  accuracy  params  bytes  arena  title`` for ``tfkws zoo list``."""
    c = m.card
    acc = c["accuracy"]
    return (
        f"{m.name:<24} {100 * acc['int8_tflm']:6.2f} % int8 TFLM ({acc['split']}, "
        f"{acc['clips']:,} clips)  {c['params']:>7,} params  {c['tflite_bytes']:>7,} B .tflite  "
        f"arena {c['arena_bytes']['host']:>7,} B  {c['title']}"
    )


def copy_model(m: ZooModel, out_dir: Path) -> list[Path]:
    """Copy the ``.tflite``, its metadata, the card (and a supernet) into ``out_dir``.

    Written into a temporary folder beside ``out_dir`` and renamed, so an error leaves nothing
    half-copied.
    """
    out_dir = Path(out_dir).resolve()
    if out_dir.exists() and any(out_dir.iterdir()):
        raise TfkwsError(f"{out_dir}: exists and is not empty; pass another --out")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_dir.with_name(f".{out_dir.name}.tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    names = [TFLITE, METADATA, CARD, CARD_MD]
    for n in names:
        if (m.folder / n).exists():
            shutil.copy2(m.folder / n, tmp / n)
    if m.supernet:
        shutil.copytree(m.supernet, tmp / SUPERNET)
        names.append(SUPERNET)
    if out_dir.exists():
        out_dir.rmdir()
    tmp.rename(out_dir)
    return [out_dir / n for n in names if (out_dir / n).exists()]


def deployed_params(tflite: Path) -> int:
    """Parameters as deployed: elements of the quantized constant tensors (weights and biases).

    Read from the flatbuffer, so it counts what the device stores, after folding.
    """
    from firmware_gen.model import parse_model, read_model_file

    model = parse_model(read_model_file(tflite))
    count = 0
    for t in model.subgraphs[0]:
        if t.buffer_bytes and t.scale:
            n = 1
            for d in t.shape:
                n *= d
            count += n
    return count


def card_markdown(card: dict[str, Any]) -> str:
    """The card for people (``CARD.md``), from ``card.json``."""
    acc = card["accuracy"]
    arena = card["arena_bytes"]
    on_target = ", ".join(f"{k} {v:,} B" for k, v in arena.items() if k != "host" and v)
    lines = [
        f"# {card['name']}: {card['title']}",
        "",
        card.get("description", ""),
        "",
        "| | |",
        "|---|---|",
        f"| data | {card['data']} |",
        f"| labels | {len(card['labels'])}: {', '.join(card['labels'])} |",
        f"| features | {card['features_note']} |",
        f"| int8 accuracy in TFLM | **{100 * acc['int8_tflm']:.2f} %** on {acc['clips']:,} clips "
        f"({acc['split']} split) |",
        f"| parameters (deployed; trained) | {card['params']:,}; {card['trained_params']:,} |",
        f"| MACs per inference | {card['macs']:,} |",
        f"| `.tflite` | {card['tflite_bytes']:,} bytes |",
        f"| arena (host, TFLM Python interpreter) | {arena['host']:,} B |",
    ]
    if on_target:
        lines.append(f"| arena on emulated Cortex-M (QEMU) | {on_target} |")
    dirty = " plus uncommitted changes" if card.get("dirty") else ""
    lines += [
        f"| measured at commit | `{card.get('commit', '?')}`{dirty} |",
        "",
        "## How it was made",
        "",
    ]
    for key, title in (
        ("train_command", "Trained"),
        ("export_command", "Exported"),
        ("eval_command", "Evaluated"),
        ("firmware_command", "Arena on target"),
    ):
        if card.get(key):
            lines += [f"{title}:", "", "```bash", card[key], "```", ""]
    if card.get("notes"):
        lines += ["## Notes", "", card["notes"], ""]
    return "\n".join(lines).rstrip() + "\n"
