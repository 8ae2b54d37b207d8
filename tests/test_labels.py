"""Label sets, the mappings between them, coarse schemes and valence/arousal hold together."""

from __future__ import annotations

import numpy as np
import pytest

from emopy_tfds import labels


def test_label_sets_are_as_in_the_datasets():
    assert labels.FER2013 == ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
    assert labels.CK_PLUS == ("neutral", "anger", "contempt", "disgust", "fear", "happy", "sadness", "surprise")
    assert labels.FERPLUS == ("neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt")
    for name in ("fer2013", "ck_plus", "ferplus"):
        classes = labels.scheme(name).classes
        # Every class is a distinct emotion.
        assert len({labels.canonical(c) for c in classes}) == len(classes)


def test_ck_plus_to_fer2013_keeps_each_emotion_and_drops_only_contempt():
    mapping = labels.CK_PLUS_TO_FER2013
    assert len(mapping) == 8
    for ck_id, fer_id in enumerate(mapping):
        ck_name = labels.CK_PLUS[ck_id]
        if ck_name == "contempt":
            assert fer_id is None
        else:
            assert labels.canonical(labels.FER2013[fer_id]) == labels.canonical(ck_name)
    # Contempt is not silently turned into neutral, as the original Emopy did.
    assert mapping[labels.CK_PLUS.index("contempt")] is None
    assert mapping[labels.CK_PLUS.index("neutral")] == labels.FER2013.index("neutral")


def test_mappings_round_trip_through_fer2013():
    for other in ("ck_plus", "ferplus"):
        there = labels.mapping("fer2013", other)
        back = labels.mapping(other, "fer2013")
        assert all(back[there[i]] == i for i in range(7))


def test_convert_arrays_marks_missing_classes():
    contempt = labels.CK_PLUS.index("contempt")
    converted = labels.convert([0, contempt, 5], "ck_plus", "fer2013")
    assert converted.tolist() == [labels.FER2013.index("neutral"), -1, labels.FER2013.index("happy")]
    with pytest.raises(ValueError, match="outside 0..7"):
        labels.convert([8], "ck_plus", "fer2013")


def test_coarse_schemes_follow_the_original_emopy():
    three = labels.mapping("fer2013", "pos_neg_neu")
    assert labels.scheme("pos_neg_neu").classes == ("neutral", "positive", "negative")
    by_name = dict(zip(labels.FER2013, three))
    assert by_name == {"angry": 2, "disgust": 2, "fear": 2, "happy": 1, "sad": 2, "surprise": 1, "neutral": 0}
    two = dict(zip(labels.FER2013, labels.mapping("fer2013", "pos_neu")))
    assert two["happy"] == two["surprise"] == 1 and two["neutral"] == 0
    assert all(two[name] is None for name in ("angry", "disgust", "fear", "sad"))
    assert labels.scheme("pos_neg_neu").class_of("contempt") == "negative"


def test_valence_arousal_is_a_sensible_circumplex():
    va = {emotion: labels.valence_arousal(emotion) for emotion in labels.EMOTIONS}
    assert va["neutral"] == (0.0, 0.0)
    assert all(-1 <= v <= 1 and -1 <= a <= 1 for v, a in va.values())
    # Positive emotions have positive valence; negative ones negative: the same split as the coarse scheme.
    for emotion, (valence, _) in va.items():
        polarity = labels.POLARITY[emotion]
        assert (valence > 0) == (polarity == "positive") or polarity == "neutral"
    assert va["anger"][1] > va["sadness"][1]  # anger is aroused, sadness deactivated
    assert va["sadness"][1] < 0 and va["surprise"][1] > 0
    assert labels.valence_arousal("happy") == labels.valence_arousal("happiness")


def test_expected_valence_arousal_weights_by_probability():
    one_hot = np.eye(7)[labels.FER2013.index("sad")]
    np.testing.assert_allclose(labels.expected_valence_arousal(one_hot, "fer2013"), labels.valence_arousal("sad"))
    batch = np.full((3, 8), 1 / 8)
    assert labels.expected_valence_arousal(batch, "ck_plus").shape == (3, 2)
    with pytest.raises(ValueError, match="7 classes"):
        labels.expected_valence_arousal(np.ones(8) / 8, "fer2013")


def test_unknown_names_give_clear_errors():
    with pytest.raises(ValueError, match="unknown emotion 'joy'"):
        labels.canonical("joy")
    with pytest.raises(ValueError, match="unknown label scheme 'fer'"):
        labels.scheme("fer")
