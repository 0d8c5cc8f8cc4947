"""What the 40 Arabic Speech Commands keywords say, for espeak-ng's Arabic voice.

The corpus names its folders by English glosses (``backward``, ``zoom in``); synthetic training
clips need the Arabic. These are Modern Standard Arabic forms with short vowels written
(espeak-ng reads undiacritised Arabic poorly), several where a gloss has more than one likely
reading (imperative or verbal noun, with or without a preposition). Which of them the speakers
recorded is measured, not assumed: ``benchmarks/synth_arabic.py`` speaks every candidate and
asks a model trained on the real recordings only what it heard; ``ASC_TEXTS`` keeps the
candidates it recognised (``benchmarks/results/synth_arabic.md``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from tfkws.data.synth import Recipe, synthesize_dataset

ARABIC_VOICES: tuple[str, ...] = ("ar",)
"""espeak-ng's Arabic voice (the wheel's ``ar_dict``); speakers differ by variant, rate, pitch."""

ASC_CANDIDATES: dict[str, tuple[str, ...]] = {
    "zero": ("صِفْر",),
    "one": ("وَاحِد",),
    "two": ("اِثْنَان", "اِثْنَيْن", "تْنِين"),
    "three": ("ثَلَاثَة",),
    "four": ("أَرْبَعَة",),
    "five": ("خَمْسَة",),
    "six": ("سِتَّة",),
    "seven": ("سَبْعَة",),
    "eight": ("ثَمَانِيَة", "تْمَانْيِة"),
    "nine": ("تِسْعَة",),
    "right": ("يَمِين",),
    "left": ("يَسَار",),
    "up": ("أَعْلَى", "فَوْق", "إِلَى الْأَعْلَى"),
    "down": ("أَسْفَل", "تَحْت"),
    "forward": ("أَمَام", "إِلَى الْأَمَام", "تَقَدَّم"),
    "backward": ("خَلْف", "إِلَى الْخَلْف"),
    "yes": ("نَعَم", "أَجَل", "إِيه"),
    "no": ("لَا",),
    "stop": ("تَوَقَّف", "قِف", "إِيقَاف"),
    "start": ("اِبْدَأ",),
    "enable": ("تَفْعِيل", "فَعِّل", "تَمْكِين", "تَشْغِيل"),
    "disable": ("تَعْطِيل", "عَطِّل"),
    "ok": ("مُوَافِق", "حَسَنًا"),
    "cancel": ("إِلْغَاء", "أَلْغِ"),
    "open": ("اِفْتَح", "فَتْح"),
    "close": ("أَغْلِق", "إِغْلَاق", "سَكِّر"),
    "zoom in": ("تَكْبِير", "كَبِّر"),
    "zoom out": ("تَصْغِير", "صَغِّر"),
    "previous": ("السَّابِق",),
    "next": ("التَّالِي",),
    "send": ("أَرْسِل", "إِرْسَال", "اِبْعَث"),
    "receive": ("اِسْتَقْبِل", "اِسْتِقْبَال"),
    "move": ("تَحْرِيك", "حَرِّك"),
    "rotate": ("تَدْوِير", "دَوِّر", "اِسْتَدِر", "لِفّ"),
    "record": ("سَجِّل", "تَسْجِيل"),
    "enter": ("أَدْخِل", "إِدْخَال"),
    "digit": ("رَقْم",),
    "direction": ("اِتِّجَاه", "جِهَة"),
    "options": ("خِيَارَات",),
    "undo": ("تَرَاجَع",),
}
"""Gloss (the corpus folder) -> candidate Arabic texts (``candidates`` adds undiacritised forms)."""

# fathatan .. sukun, and the dagger alif: the short-vowel marks espeak-ng may read or guess
_DIACRITICS = dict.fromkeys([*range(0x064B, 0x0653), 0x0670])


def undiacritised(text: str) -> str:
    """``text`` without short-vowel marks (as Arabic is usually written)."""
    return text.translate(_DIACRITICS)


def candidates() -> dict[str, tuple[str, ...]]:
    """:data:`ASC_CANDIDATES` with each text's undiacritised form after it (espeak-ng's Arabic
    dictionary knows some words better without marks, others only with them)."""
    out = {}
    for gloss, texts in ASC_CANDIDATES.items():
        forms: list[str] = []
        for t in texts:
            forms += [f for f in (t, undiacritised(t)) if f not in forms]
        out[gloss] = tuple(forms)
    return out


ASC_TEXTS: dict[str, tuple[str, ...]] = {
    "backward": ("خَلْف", "خلف"),
    "cancel": ("إِلْغَاء", "إلغاء"),
    "digit": ("رَقْم", "رقم"),
    "direction": ("اتجاه",),
    "disable": ("تَعْطِيل", "تعطيل"),
    "down": ("أَسْفَل", "أسفل"),
    "eight": ("ثَمَانِيَة", "تْمَانْيِة", "تمانية"),
    "enter": ("إِدْخَال", "إدخال"),
    "five": ("خَمْسَة", "خمسة"),
    "forward": ("أَمَام", "أمام"),
    "left": ("يَسَار", "يسار"),
    "move": ("تَحْرِيك", "تحريك"),
    "next": ("التَّالِي", "التالي"),
    "nine": ("تِسْعَة",),
    "no": ("لَا", "لا"),
    "ok": ("مُوَافِق", "موافق"),
    "one": ("وَاحِد", "واحد"),
    "open": ("افتح", "فَتْح", "فتح"),
    "options": ("خِيَارَات", "خيارات"),
    "previous": ("السَّابِق", "السابق"),
    "receive": ("استقبل", "استقبال"),
    "record": ("تَسْجِيل", "تسجيل"),
    "right": ("يَمِين", "يمين"),
    "six": ("سِتَّة",),
    "start": ("اِبْدَأ",),
    "stop": ("توقف", "قف"),
    "three": ("ثَلَاثَة",),
    "undo": ("تَرَاجَع", "تراجع"),
    "up": ("فوق",),
    "zero": ("صِفْر", "صفر"),
    "zoom in": ("تَكْبِير", "تكبير"),
    "zoom out": ("تَصْغِير", "تصغير"),
}
"""Gloss -> the texts synthetic clips speak: the candidates a model trained on the real recordings
hears as the gloss (``kept`` in ``benchmarks/results/synth_arabic.json``; a test keeps the two
equal). Glosses missing here (no candidate recognised: close, enable, four, rotate, send, seven,
two, yes) get no synthetic clips."""


def synthesize_keywords(
    out_dir: str | Path,
    clips_per_keyword: int,
    speakers: int,
    seed: int = 0,
    texts: Mapping[str, Sequence[str]] | None = None,
    noise_dir: str | Path | None = None,
    noise_seconds: int = 30,
    recipe: Recipe | None = None,
    progress: bool = True,
) -> Path:
    """espeak-ng Arabic clips of the corpus keywords in the Speech Commands layout under
    ``out_dir`` (folders named by gloss; every clip a training clip: the real recordings are the
    validation). ``texts`` defaults to :data:`ASC_TEXTS`."""
    texts = dict(ASC_TEXTS if texts is None else texts)
    return synthesize_dataset(
        out_dir,
        keywords=sorted(texts),
        unknown_words=(),
        clips_per_keyword=clips_per_keyword,
        clips_per_unknown_word=0,
        seed=seed,
        noise_dir=noise_dir,
        progress=progress,
        speakers=speakers,
        noise_seconds=noise_seconds,
        validation_fraction=0.0,
        testing_fraction=0.0,
        recipe=recipe,
        texts=texts,
        voices=ARABIC_VOICES,
    )
