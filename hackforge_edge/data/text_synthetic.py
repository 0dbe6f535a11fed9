"""Seeded synthetic clinical text: triage notes labelled ``routine`` / ``urgent`` (stdlib + numpy).

Each note describes one patient: age and sex, one or two presenting problems, their onset and
course, some history, observations (pulse, blood pressure, breathing rate, oxygen saturation,
temperature) and the writer's impression. The label follows a latent severity: the problems'
own weights, modifiers ("sudden", "worsening", "stable for months"), how abnormal the vitals
are, and noise; a few labels are flipped (``LABEL_NOISE``), so no single word decides the class
and a model has to combine cues the way a triage nurse does.

Two *domains* write the same clinical content differently (the shift a hospital sees when a
model trained on one service's notes meets another's):

* ``source``: emergency-department notes: terse, abbreviated (``c/o``, ``SOB``, ``CP``,
  ``BIBA``, ``PMH``, ``Obs:``), vitals as a list, an ``Imp:``/``Plan:`` line;
* ``target``: GP referral letters: prose, full words ("breathlessness", "chest pain spreading to
  the left arm"), polite openings and closings, vitals in sentences.

The default text run adapts to the target domain (GP letters). Deterministic in (n, domain,
seed, stream, GENERATOR_VERSION); classes are balanced to within one note.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Bump whenever the output changes for the same seed.
GENERATOR_VERSION = 1
CLASS_NAMES = ("routine", "urgent")
LABEL_NOISE = 0.04  # fraction of labels flipped after the severity threshold


@dataclass(frozen=True)
class Problem:
    """A presenting problem: severity weight (urgent > 0 > routine) and how each domain says it."""

    weight: float
    ed: tuple[str, ...]
    gp: tuple[str, ...]


PROBLEMS = (
    Problem(2.2, ("central CP radiating to L arm", "crushing CP", "CP + diaphoresis"),
            ("central chest pain spreading to the left arm", "crushing chest pain",
             "chest pain with sweating")),
    Problem(2.0, ("acute SOB", "SOB at rest", "resp distress"),
            ("severe breathlessness", "breathlessness at rest", "difficulty breathing")),
    Problem(2.3, ("L sided weakness + slurred speech", "facial droop", "acute confusion"),
            ("weakness of the left arm and leg with slurred speech", "a drooping face",
             "new confusion")),
    Problem(1.8, ("haematemesis", "PR bleed", "melaena"),
            ("vomiting blood", "rectal bleeding", "black tarry stools")),
    Problem(1.6, ("fever + rigors", "?sepsis", "neutropenic fever"),
            ("high fevers with shaking chills", "suspected sepsis",
             "a fever while on chemotherapy")),
    Problem(1.5, ("worst HA of life", "thunderclap HA", "HA + neck stiffness"),
            ("the worst headache of her life", "a sudden severe headache",
             "headache with a stiff neck")),
    Problem(1.2, ("abdo pain RIF + guarding", "severe abdo pain", "testicular pain"),
            ("pain in the right lower abdomen with guarding", "severe abdominal pain",
             "testicular pain")),
    Problem(0.6, ("palpitations", "syncope", "fall"),
            ("palpitations", "a blackout", "a fall")),
    Problem(0.3, ("mild CP", "cough + SOB on exertion", "HA"),
            ("mild chest discomfort", "a cough with breathlessness on exertion", "headaches")),
    Problem(-0.8, ("chronic lower back pain", "knee pain", "shoulder pain"),
            ("long-standing lower back pain", "knee pain", "a painful shoulder")),
    Problem(-1.2, ("rash", "eczema flare", "skin lesion for review"),
            ("a rash", "a flare of eczema", "a skin lesion")),
    Problem(-1.0, ("med review", "BP f/u", "DM review"),
            ("a medication review", "blood pressure follow-up", "a diabetes review")),
    Problem(-1.1, ("tiredness", "low mood", "poor sleep"),
            ("tiredness", "low mood", "difficulty sleeping")),
    Problem(-0.9, ("UTI sx", "sore throat", "ear pain"),
            ("urinary symptoms", "a sore throat", "ear pain")),
    Problem(-1.3, ("hearing loss", "ingrown toenail", "varicose veins"),
            ("gradual hearing loss", "an ingrown toenail", "varicose veins")),
)

MODIFIERS = (  # (weight, ED words, GP words)
    (0.9, "sudden onset", "which came on suddenly"),
    (0.7, "worsening", "which is getting worse"),
    (0.5, "onset {h} hrs ago", "which started {h} hours ago"),
    (-0.7, "for {m}/12", "for the last {m} months"),
    (-0.6, "stable", "which has been stable"),
    (-0.4, "intermittent", "which comes and goes"),
)

HISTORY = (("HTN", "high blood pressure"), ("T2DM", "type 2 diabetes"), ("AF", "atrial fibrillation"),
           ("COPD", "COPD"), ("asthma", "asthma"), ("IHD", "ischaemic heart disease"),
           ("CKD", "chronic kidney disease"), ("hypothyroidism", "an underactive thyroid"),
           ("OA", "osteoarthritis"), ("depression", "depression"))

ED_OPEN = ("{age}{sx} BIBA c/o {p}.", "{age}{sx} self-presented c/o {p}.", "{age}{sx} walk-in, c/o {p}.",
           "Pt {age}{sx}, PC: {p}.")
GP_OPEN = ("Dear Colleague, I would be grateful if you could see this {age}-year-old {sex} who has {p}.",
           "Dear Doctor, thank you for seeing this {age}-year-old {sex} with {p}.",
           "Re: {age}-year-old {sex}. I am writing about {p}.",
           "Dear Dr {name}, I would appreciate your opinion on this {age}-year-old {sex} who reports {p}.")
GP_CLOSE = ("Many thanks for your help.", "Yours sincerely, Dr {name}.", "Kind regards, Dr {name}.",
            "Thank you for your advice.")
ED_IMP_URGENT = ("Imp: ?serious pathology. Plan: bloods, ECG, r/v by reg.", "Imp: unwell. Plan: resus, senior r/v.")
ED_IMP_ROUTINE = ("Imp: well. Plan: d/c with GP f/u.", "Imp: stable. Plan: analgesia, GP f/u.")
GP_IMP_URGENT = ("I am worried about this and would value an urgent assessment.",
                 "I am concerned this may be serious.")
GP_IMP_ROUTINE = ("There is no urgency but I would value your opinion.",
                  "I would be grateful for a routine appointment.")
NAMES = ("Patel", "Smith", "Okafor", "Jones", "Nguyen", "Williams", "Khan", "Brown")


def _vitals(rng: np.random.Generator, sick: float) -> tuple[dict[str, float], float]:
    """Observations drawn around normal, pushed abnormal by ``sick`` (latent); and their score."""
    hr = rng.normal(78 + 22 * sick, 12)
    sbp = rng.normal(128 - 18 * sick, 14)
    rr = rng.normal(15 + 5 * sick, 2.5)
    spo2 = min(100.0, rng.normal(97.5 - 3.5 * sick, 1.5))
    temp = rng.normal(36.9 + 0.8 * sick * rng.random(), 0.4)
    score = (max(0, hr - 100) / 15 + max(0, 100 - sbp) / 12 + max(0, rr - 20) / 4
             + max(0, 94 - spo2) / 2 + max(0, temp - 38.0) / 0.6)
    return {"hr": round(hr), "sbp": round(sbp), "dbp": round(sbp * 0.62 + rng.normal(0, 5)),
            "rr": round(rr), "spo2": round(spo2), "temp": round(temp, 1)}, score


def _note(rng: np.random.Generator, domain: str) -> tuple[str, float]:
    """One note and its latent severity (before noise and threshold)."""
    age = int(np.clip(rng.normal(55, 20), 18, 97))
    female = rng.random() < 0.5
    k = 1 if rng.random() < 0.6 else 2
    picked = [PROBLEMS[i] for i in rng.choice(len(PROBLEMS), size=k, replace=False)]
    variant = [int(rng.integers(len(p.ed))) for p in picked]
    mod = MODIFIERS[int(rng.integers(len(MODIFIERS)))]
    h, m = int(rng.integers(1, 12)), int(rng.integers(2, 24))
    severity = max(p.weight for p in picked) + 0.25 * sum(p.weight for p in picked) + mod[0]
    severity += 0.012 * (age - 55) + rng.normal(0, 0.7)
    vit, vscore = _vitals(rng, sick=float(np.clip(severity / 2.5, -0.5, 1.5)) + rng.normal(0, 0.3))
    severity += 0.45 * vscore
    hist = [HISTORY[i] for i in rng.choice(len(HISTORY), size=int(rng.integers(0, 3)), replace=False)]
    imp_urgent = severity + rng.normal(0, 1.2) > 0.5  # the writer's impression is itself noisy
    name = NAMES[int(rng.integers(len(NAMES)))]
    if domain == "source":
        probs = " + ".join(p.ed[v] for p, v in zip(picked, variant)) + ", " + mod[1].format(h=h, m=m)
        parts = [ED_OPEN[int(rng.integers(len(ED_OPEN)))].format(age=age, sx="F" if female else "M", p=probs)]
        if hist:
            parts.append("PMH: " + ", ".join(e for e, _ in hist) + ".")
        parts.append(f"Obs: HR {vit['hr']}, BP {vit['sbp']}/{vit['dbp']}, RR {vit['rr']}, "
                     f"SpO2 {vit['spo2']}% RA, T {vit['temp']}.")
        pool = ED_IMP_URGENT if imp_urgent else ED_IMP_ROUTINE
    else:
        probs = " and ".join(p.gp[v] for p, v in zip(picked, variant)) + " " + mod[2].format(h=h, m=m)
        sex = "woman" if female else "man"
        parts = [GP_OPEN[int(rng.integers(len(GP_OPEN)))].format(age=age, sex=sex, p=probs, name=name)]
        if hist:
            pron = "Her" if female else "His"
            parts.append(f"{pron} past history includes " + " and ".join(g for _, g in hist) + ".")
        parts.append(f"On examination the pulse was {vit['hr']}, blood pressure {vit['sbp']}/{vit['dbp']}, "
                     f"breathing rate {vit['rr']} and oxygen saturation {vit['spo2']}% on air, "
                     f"temperature {vit['temp']}.")
        pool = GP_IMP_URGENT if imp_urgent else GP_IMP_ROUTINE
        parts.append(pool[int(rng.integers(len(pool)))])
        parts.append(GP_CLOSE[int(rng.integers(len(GP_CLOSE)))].format(name=NAMES[int(rng.integers(len(NAMES)))]))
        return " ".join(parts), severity
    parts.append(pool[int(rng.integers(len(pool)))])
    return " ".join(parts), severity


def generate(n: int, *, domain: str, seed: int, stream: int = 0) -> tuple[list[str], np.ndarray]:
    """``n`` notes of ``domain`` ("source": ED notes, "target": GP letters): (texts, int64 labels
    with 1 = urgent). Balanced to within one note; ``stream`` separates splits of one seed."""
    if domain not in ("source", "target"):
        raise ValueError(f"unknown text domain {domain!r} (source or target)")
    rng = np.random.default_rng([seed, GENERATOR_VERSION, sum(map(ord, domain)), stream, 71])
    want = {1: n // 2 + n % 2 * int(rng.random() < 0.5), 0: 0}
    want[0] = n - want[1]
    texts: list[str] = []
    labels: list[int] = []
    have = {0: 0, 1: 0}
    for _ in range(100 * n + 100):  # rejection sampling into per-class quotas; bounded
        if len(texts) == n:
            break
        text, severity = _note(rng, domain)
        label = int(severity > 0.5)
        if rng.random() < LABEL_NOISE:
            label = 1 - label
        if have[label] < want[label]:
            texts.append(text)
            labels.append(label)
            have[label] += 1
    return texts, np.asarray(labels, dtype=np.int64)


def domain_description(domain: str) -> dict:
    """JSON-ready description of a text domain (for manifests)."""
    style = {"source": "emergency-department triage notes: terse, abbreviated (c/o, SOB, PMH, Obs)",
             "target": "GP referral letters: prose, full words, letter openings and closings"}[domain]
    return {"generator_version": GENERATOR_VERSION, "domain": domain, "style": style,
            "classes": list(CLASS_NAMES), "label_noise": LABEL_NOISE}
