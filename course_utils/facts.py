"""Questions whose answers the course knows, for teaching and testing an assistant (notebook 18).

Written for this course: capitals and languages of countries, sums of two numbers, and made-up country names
drawn from syllables (checked against the real names), so that every reply can be scored by a program.

    CAPITALS                      [(country, capital), ...]
    LANGUAGES                     [(country, main language), ...]
    made_up_countries(n, seed)    n invented names such as 'Vorlandia', none of them a real country
    additions(n, seed)            n pairs (a, b) with 10 <= a, b <= 49
    split(items, n_train, seed)   a repeatable shuffle cut into (train, held_out)
"""

from __future__ import annotations

import random
from collections.abc import Sequence

CAPITALS: list[tuple[str, str]] = [
    ("France", "Paris"), ("Japan", "Tokyo"), ("Germany", "Berlin"), ("Italy", "Rome"), ("Spain", "Madrid"),
    ("Russia", "Moscow"), ("China", "Beijing"), ("Egypt", "Cairo"), ("Greece", "Athens"), ("Canada", "Ottawa"),
    ("Australia", "Canberra"), ("Brazil", "Brasilia"), ("Argentina", "Buenos Aires"), ("Mexico", "Mexico City"),
    ("India", "New Delhi"), ("Thailand", "Bangkok"), ("Kenya", "Nairobi"), ("Norway", "Oslo"),
    ("Sweden", "Stockholm"), ("Finland", "Helsinki"), ("Denmark", "Copenhagen"), ("Poland", "Warsaw"),
    ("Austria", "Vienna"), ("Hungary", "Budapest"), ("Portugal", "Lisbon"), ("Ireland", "Dublin"),
    ("Belgium", "Brussels"), ("the Netherlands", "Amsterdam"), ("Switzerland", "Bern"), ("Turkey", "Ankara"),
    ("Iran", "Tehran"), ("Iraq", "Baghdad"), ("Syria", "Damascus"), ("Lebanon", "Beirut"),
    ("Saudi Arabia", "Riyadh"), ("Pakistan", "Islamabad"), ("Afghanistan", "Kabul"), ("Indonesia", "Jakarta"),
    ("the Philippines", "Manila"), ("Vietnam", "Hanoi"), ("South Korea", "Seoul"), ("North Korea", "Pyongyang"),
    ("Peru", "Lima"), ("Chile", "Santiago"), ("Colombia", "Bogota"), ("Venezuela", "Caracas"), ("Cuba", "Havana"),
    ("Nigeria", "Abuja"), ("Ethiopia", "Addis Ababa"), ("Ghana", "Accra"), ("Morocco", "Rabat"),
    ("Algeria", "Algiers"), ("Ukraine", "Kyiv"), ("Romania", "Bucharest"), ("Bulgaria", "Sofia"),
    ("Serbia", "Belgrade"), ("Croatia", "Zagreb"), ("the Czech Republic", "Prague"), ("Iceland", "Reykjavik"),
    ("Mongolia", "Ulaanbaatar"), ("Nepal", "Kathmandu"), ("Uzbekistan", "Tashkent"), ("Senegal", "Dakar"),
    ("Uganda", "Kampala"), ("Zambia", "Lusaka"), ("Estonia", "Tallinn"), ("Latvia", "Riga"),
    ("Lithuania", "Vilnius"), ("Slovakia", "Bratislava"), ("Slovenia", "Ljubljana"), ("Jordan", "Amman"),
    ("Qatar", "Doha"), ("Bangladesh", "Dhaka"), ("Malaysia", "Kuala Lumpur"), ("Tunisia", "Tunis"),
    ("Libya", "Tripoli"), ("Sudan", "Khartoum"), ("Tanzania", "Dodoma"), ("Zimbabwe", "Harare"),
    ("Jamaica", "Kingston"), ("Ecuador", "Quito"), ("Uruguay", "Montevideo"), ("New Zealand", "Wellington"),
    ("Cambodia", "Phnom Penh"), ("Georgia", "Tbilisi"), ("Armenia", "Yerevan"), ("Belarus", "Minsk"),
    ("Cyprus", "Nicosia"), ("Malta", "Valletta"), ("Luxembourg", "Luxembourg"),
]

LANGUAGES: list[tuple[str, str]] = [
    ("France", "French"), ("Germany", "German"), ("Italy", "Italian"), ("Spain", "Spanish"),
    ("Japan", "Japanese"), ("China", "Chinese"), ("Russia", "Russian"), ("Brazil", "Portuguese"),
    ("Portugal", "Portuguese"), ("Greece", "Greek"), ("Turkey", "Turkish"), ("Poland", "Polish"),
    ("Sweden", "Swedish"), ("Norway", "Norwegian"), ("Finland", "Finnish"), ("Egypt", "Arabic"),
    ("Mexico", "Spanish"), ("Argentina", "Spanish"), ("Hungary", "Hungarian"), ("Thailand", "Thai"),
    ("Vietnam", "Vietnamese"), ("South Korea", "Korean"), ("Iran", "Persian"), ("the Netherlands", "Dutch"),
]

_STARTS = ("Zor", "Vel", "Quen", "Mar", "Tal", "Bel", "Dra", "Kes", "Lum", "Nor", "Ost", "Pra", "Ryl", "Sar",
           "Tor", "Ul", "Vor", "Wen", "Yar", "Gal", "Fen", "Hal", "Isk", "Jor", "Kal", "Mir", "Nev", "Cor")
_MIDDLES = ("", "a", "e", "i", "o", "an", "en", "el", "ar", "or", "is", "un")
_ENDS = ("via", "dor", "land", "mark", "stan", "ria", "nia", "dia", "thia", "vania", "gard", "mora", "lia")


def made_up_countries(n: int, seed: int = 0, avoid: Sequence[str] = ()) -> list[str]:
    """``n`` different invented country names (e.g. 'Velandia', 'Quenmora'), repeatable for a ``seed``.

    None is a country of :data:`CAPITALS` or :data:`LANGUAGES`, nor in ``avoid``; the names are built from
    syllables, so a model cannot have read facts about them.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"n should be a whole number >= 0, got {n!r}")
    most = len(_STARTS) * len(_MIDDLES) * len(_ENDS)
    if n > most // 4:
        raise ValueError(f"n={n} is too many made-up names; at most {most // 4} can be drawn")
    real = {c.lower().removeprefix("the ") for c, _ in CAPITALS + LANGUAGES} | {a.lower() for a in avoid}
    rng = random.Random(seed)
    names: list[str] = []
    while len(names) < n:
        name = rng.choice(_STARTS) + rng.choice(_MIDDLES) + rng.choice(_ENDS)
        if name.lower() not in real and name not in names:
            names.append(name)
    return names


def additions(n: int, seed: int = 0) -> list[tuple[int, int]]:
    """``n`` different pairs (a, b) of whole numbers 10..49, repeatable for a ``seed``."""
    if isinstance(n, bool) or not isinstance(n, int) or not 0 <= n <= 1600:
        raise ValueError(f"n should be a whole number between 0 and 1600, got {n!r}")
    rng = random.Random(seed)
    pairs = [(a, b) for a in range(10, 50) for b in range(10, 50)]
    return rng.sample(pairs, n)


def split(items: Sequence, n_train: int, seed: int = 0) -> tuple[list, list]:
    """Shuffle ``items`` with ``seed`` and cut them into (the first ``n_train``, the rest)."""
    if isinstance(n_train, bool) or not isinstance(n_train, int) or not 0 <= n_train <= len(items):
        raise ValueError(f"n_train should be between 0 and {len(items)}, got {n_train!r}")
    order = list(items)
    random.Random(seed).shuffle(order)
    return order[:n_train], order[n_train:]
