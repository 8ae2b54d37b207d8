"""Emotion label sets, the mappings between them, coarse schemes, valence/arousal, and WESAD's affective states.

This is the only module that knows label names and ids; everything else imports it.

Each dataset names the same emotion differently (fer2013 "angry", CK+ "anger", FER+ "anger"), so every
class is first reduced to one canonical emotion name and all mappings go through those names.
"""

from __future__ import annotations

import dataclasses
from typing import Iterable, Sequence

import numpy as np

# Ids are positions, exactly as in the source files.
FER2013 = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
CK_PLUS = ("neutral", "anger", "contempt", "disgust", "fear", "happy", "sadness", "surprise")
FERPLUS = ("neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt")
# FER+'s eight emotions in emopy's names: fer2013's seven, in their ids, then contempt. What the shipped FER+
# model answers, so its first seven classes are the fer2013 model's.
FER2013_CONTEMPT = FER2013 + ("contempt",)
# WESAD's affective states (Schmidt et al. 2018), in the ids its pickles use less one: WESAD labels 1..4 are these;
# 0 (transient) and 5..7 (not used) have no state. States, not emotions: the emotion schemes never hold them.
WESAD = ("baseline", "stress", "amusement", "meditation")

# What a model learns from a face's labels: its one majority class, or the share of crowd votes (FER+) each
# class got, as soft targets.
TARGETS = ("majority", "votes")

EMOTIONS = ("neutral", "anger", "contempt", "disgust", "fear", "happiness", "sadness", "surprise")
_SYNONYMS = {"angry": "anger", "happy": "happiness", "sad": "sadness"}

# The original Emopy's polarity of each emotion. It had no contempt class; contempt is a negative
# emotion (negative valence in the norms below), so it joins the negatives.
POLARITY = {
    "neutral": "neutral",
    "happiness": "positive",
    "surprise": "positive",
    "anger": "negative",
    "contempt": "negative",
    "disgust": "negative",
    "fear": "negative",
    "sadness": "negative",
}


@dataclasses.dataclass(frozen=True)
class LabelScheme:
    """Named classes, and which class (if any) each canonical emotion falls into."""

    name: str
    classes: tuple[str, ...]
    coarse: bool = False
    # A scheme of affective states (WESAD's) instead of emotions: the states each class holds, by class.
    states: tuple[tuple[str, ...], ...] | None = None

    def class_of(self, emotion: str) -> str | None:
        """The class of a canonical emotion (or of a state, in a scheme of states) in this scheme, or None where the
        scheme has none."""
        if self.states is not None:
            return next((name for name, held in zip(self.classes, self.states) if emotion in held), None)
        emotion = canonical(emotion)
        if self.coarse:
            polarity = POLARITY[emotion]
            return polarity if polarity in self.classes else None
        for name in self.classes:
            if canonical(name) == emotion:
                return name
        return None

    @property
    def num_classes(self) -> int:
        return len(self.classes)


SCHEMES = {
    scheme.name: scheme
    for scheme in (
        LabelScheme("fer2013", FER2013),
        LabelScheme("ck_plus", CK_PLUS),
        LabelScheme("ferplus", FERPLUS),
        LabelScheme("fer2013_contempt", FER2013_CONTEMPT),
        # The original Emopy's three-class scheme, in its ids: 0 neutral, 1 positive, 2 negative.
        LabelScheme("pos_neg_neu", ("neutral", "positive", "negative"), coarse=True),
        # Its two-class scheme: negative emotions have no class here and are left out, not relabelled.
        LabelScheme("pos_neu", ("neutral", "positive"), coarse=True),
        LabelScheme("wesad", WESAD, states=tuple((state,) for state in WESAD)),
        # Schmidt et al. (2018)'s two benchmark tasks: three-class (meditation left out), and binary stress
        # against baseline and amusement together (meditation left out again).
        LabelScheme("wesad3", WESAD[:3], states=tuple((state,) for state in WESAD[:3])),
        LabelScheme("stress", ("non_stress", "stress"), states=(("baseline", "amusement"), ("stress",))),
    )
}


def canonical(name: str) -> str:
    """The canonical emotion name for any dataset's spelling ("angry" -> "anger")."""
    key = name.strip().lower()
    key = _SYNONYMS.get(key, key)
    if key not in EMOTIONS:
        raise ValueError(f"unknown emotion {name!r}; known: {', '.join(EMOTIONS + tuple(_SYNONYMS))}")
    return key


def scheme(name: str) -> LabelScheme:
    """Looks up a label scheme by name, with a clear error listing the known ones."""
    try:
        return SCHEMES[name]
    except KeyError:
        raise ValueError(f"unknown label scheme {name!r}; known: {', '.join(SCHEMES)}") from None


def label_set_of(classes: Sequence[str]) -> str | None:
    """The name of the label scheme whose classes are exactly these, in this order; None if there is none."""
    return next((name for name, known in SCHEMES.items() if known.classes == tuple(classes)), None)


def mapping(source: str, target: str) -> tuple[int | None, ...]:
    """For each class id of `source`, the class id in `target`, or None where target has no such class."""
    source_scheme, target_scheme = scheme(source), scheme(target)
    if source_scheme.coarse:
        raise ValueError(f"{source!r} is a coarse scheme; map from an emotion label set instead")
    if (source_scheme.states is None) != (target_scheme.states is None):
        kinds = {True: "affective states (WESAD's)", False: "emotions"}
        raise ValueError(f"{source!r} labels {kinds[source_scheme.states is not None]} and {target!r} "
                         f"{kinds[target_scheme.states is not None]}: one cannot be mapped to the other")
    if source_scheme.states is not None and any(held != (name,) for name, held in
                                                zip(source_scheme.classes, source_scheme.states)):
        raise ValueError(f"{source!r} groups several states in one class; map from 'wesad' instead")
    ids = []
    for name in source_scheme.classes:
        target_name = target_scheme.class_of(name)
        ids.append(None if target_name is None else target_scheme.classes.index(target_name))
    return tuple(ids)


def convert(ids: Iterable[int] | np.ndarray, source: str, target: str) -> np.ndarray:
    """Maps an array of class ids from one scheme to another; -1 marks ids with no target class."""
    lookup = np.array([-1 if i is None else i for i in mapping(source, target)], dtype=np.int64)
    ids = np.asarray(ids, dtype=np.int64)
    if ids.size and (ids.min() < 0 or ids.max() >= len(lookup)):
        raise ValueError(f"class ids outside 0..{len(lookup) - 1} for {source!r}: {np.unique(ids).tolist()}")
    return lookup[ids]


CK_PLUS_TO_FER2013 = mapping("ck_plus", "fer2013")


# Valence and arousal, the two axes of Russell's circumplex of affect:
#   Russell, J. A. (1980). A circumplex model of affect. Journal of Personality and Social
#   Psychology, 39(6), 1161-1178.
# Coordinates for each emotion are the mean ratings of its name on 1..9 scales from:
#   Warriner, A. B., Kuperman, V., & Brysbaert, M. (2013). Norms of valence, arousal, and dominance
#   for 13,915 English lemmas. Behavior Research Methods, 45(4), 1191-1207.
#   (columns V.Mean.Sum and A.Mean.Sum of Ratings_Warriner_et_al.csv)
# Neutral is the circumplex's centre by definition, so it is not taken from the word's ratings.
_WARRINER_RATINGS = {
    "anger": (2.5, 5.93),
    "contempt": (3.22, 4.61),
    "disgust": (3.32, 5.0),
    "fear": (2.93, 6.14),
    "happiness": (8.48, 6.5),
    "sadness": (2.4, 2.81),
    "surprise": (7.44, 6.57),
}
_RATING_MIDPOINT, _RATING_HALF_RANGE = 5.0, 4.0

VALENCE_AROUSAL: dict[str, tuple[float, float]] = {"neutral": (0.0, 0.0)} | {
    emotion: (
        round((valence - _RATING_MIDPOINT) / _RATING_HALF_RANGE, 4),
        round((arousal - _RATING_MIDPOINT) / _RATING_HALF_RANGE, 4),
    )
    for emotion, (valence, arousal) in _WARRINER_RATINGS.items()
}


def valence_arousal(emotion: str) -> tuple[float, float]:
    """(valence, arousal) of an emotion in [-1, 1] x [-1, 1]; neutral is (0, 0)."""
    return VALENCE_AROUSAL[canonical(emotion)]


# Positive and negative valence as two unipolar dimensions beside bipolar arousal:
#   van den Broek, E. L. (2011). Affective Signal Processing (ASP): Unraveling the mystery of emotions
#   (PhD thesis, University of Twente), ch. 5.2.2.
# A face can be happy and sad at once; one bipolar valence then cancels the two out to near 0, while the unipolar
# pair keeps both. Each is weighted per class, not split off the face's mean valence, so that it does.
def unipolar_valence(emotion: str) -> tuple[float, float]:
    """(positive valence, negative valence) of an emotion, each in [0, 1]: its valence's part above 0 and the
    size of its part below 0, so that one of them is 0 and valence is their difference."""
    valence = VALENCE_AROUSAL[canonical(emotion)][0]
    return max(0.0, valence), max(0.0, -valence)  # 0.0 first: max keeps it over -0.0, which would print as -0


# The affect dimensions of `expected_affect`, in its order (and in the order of a prediction table's columns).
AFFECT_DIMENSIONS = ("valence", "arousal", "positive_valence", "negative_valence")


def expected_affect(probabilities: Sequence[float] | np.ndarray, label_set: str) -> np.ndarray:
    """Probability-weighted (valence, arousal, positive valence, negative valence) for class probabilities over an
    emotion label set; [..., 4], in AFFECT_DIMENSIONS' order.

    positive = sum_k p_k max(v_k, 0) and negative = sum_k p_k max(-v_k, 0) over the classes' valences v_k; valence
    is computed as positive - negative (sum_k p_k v_k up to rounding), so that it equals their difference to the bit.
    A coarse scheme (its classes are polarities, not emotions) has no coordinates: a ValueError, as for an unknown
    label set.
    """
    label_scheme = scheme(label_set)
    if label_scheme.coarse:
        raise ValueError(f"{label_set!r} is a coarse scheme: its classes have no valence or arousal")
    classes = label_scheme.classes
    probabilities = np.asarray(probabilities, dtype=np.float64)
    if probabilities.shape[-1] != len(classes):
        raise ValueError(
            f"{label_set!r} has {len(classes)} classes but probabilities have {probabilities.shape[-1]}"
        )
    per_class = np.array([(valence_arousal(name)[1], *unipolar_valence(name)) for name in classes])
    arousal, positive, negative = np.moveaxis(probabilities @ per_class, -1, 0)
    return np.stack([positive - negative, arousal, positive, negative], axis=-1)


def expected_valence_arousal(probabilities: Sequence[float] | np.ndarray, label_set: str) -> np.ndarray:
    """Probability-weighted (valence, arousal) for class probabilities over a label set; [..., 2]."""
    return expected_affect(probabilities, label_set)[..., :2]


# Lucey, P., Cohn, J. F., Kanade, T., Saragih, J., Ambadar, Z., & Matthews, I. (2010). The Extended
# Cohn-Kanade Dataset (CK+): A complete dataset for action unit and emotion-specified expression.
# CVPR Workshops, 94-101. Table 2, "emotion description in terms of facial action units": the criteria
# CK+'s emotion labels had to meet. Intensities are FACS's A..E, coded 1..5 in CK+'s files (0: unscored).
def _anger(aus: dict[int, int]) -> bool:
    return 23 in aus and 24 in aus


def _disgust(aus: dict[int, int]) -> bool:
    return 9 in aus or 10 in aus


def _fear(aus: dict[int, int]) -> bool:
    # AU 1+2+4 must be present, unless AU 5 is of intensity E, when AU 4 can be absent.
    return 1 in aus and 2 in aus and (4 in aus or aus.get(5) == 5)


def _happiness(aus: dict[int, int]) -> bool:
    return 12 in aus


def _sadness(aus: dict[int, int]) -> bool:
    # Either AU 1+4+15 or AU 11; an exception is AU 6+15.
    return (1 in aus and 4 in aus and 15 in aus) or 11 in aus or (6 in aus and 15 in aus)


def _surprise(aus: dict[int, int]) -> bool:
    # Either AU 1+2 or AU 5, and AU 5 no stronger than B.
    return ((1 in aus and 2 in aus) or 5 in aus) and aus.get(5, 0) <= 2


def _contempt(aus: dict[int, int]) -> bool:
    return 14 in aus  # unilateral or bilateral


CK_PLUS_AU_CRITERIA = {
    "anger": _anger,
    "contempt": _contempt,
    "disgust": _disgust,
    "fear": _fear,
    "happiness": _happiness,
    "sadness": _sadness,
    "surprise": _surprise,
}


def emotions_consistent_with(action_units) -> list[str]:
    """The emotions (canonical names) whose CK+ action-unit criteria a set of AUs meets.

    `action_units` is an iterable of AU numbers or of (AU, intensity) pairs, as in CK+'s FACS files.
    """
    aus: dict[int, int] = {}
    for item in action_units:
        au, intensity = (item, 0) if isinstance(item, (int, np.integer)) else item
        aus[int(au)] = int(intensity)
    return [emotion for emotion, criterion in CK_PLUS_AU_CRITERIA.items() if criterion(aus)]


# The action units the facs task predicts: every AU in the emotion criteria above, plus AUs 7, 17, 20, 25, 26
# and 27, which CK+'s posed expressions show alongside them. Other coded AUs are rare in CK+ and are ignored.
FACS_ACTION_UNITS = (1, 2, 4, 5, 6, 7, 9, 10, 11, 12, 14, 15, 17, 20, 23, 24, 25, 26, 27)
