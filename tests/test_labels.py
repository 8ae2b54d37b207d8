"""Label sets, the mappings between them, coarse schemes, valence/arousal and unipolar valence hold together."""

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


def _fer2013(**shares: float) -> np.ndarray:
    probabilities = np.zeros(len(labels.FER2013))
    for name, share in shares.items():
        probabilities[labels.FER2013.index(name)] = share
    return probabilities


def test_unipolar_valence_splits_each_emotion_into_its_positive_and_negative_part():
    assert labels.unipolar_valence("happy") == (0.87, 0.0)  # Warriner's 8.48 on 1..9
    assert labels.unipolar_valence("sadness") == (0.0, 0.65)  # 2.4
    assert labels.unipolar_valence("neutral") == (0.0, 0.0)
    assert not any(np.signbit(labels.unipolar_valence("neutral")))  # never -0.0, which prints as "-0.00"
    for emotion in labels.EMOTIONS:
        positive, negative = labels.unipolar_valence(emotion)
        assert 0 <= positive <= 1 and 0 <= negative <= 1 and min(positive, negative) == 0
        assert positive - negative == labels.valence_arousal(emotion)[0]


def test_expected_affect_of_pure_and_mixed_faces():
    happy, sad = labels.VALENCE_AROUSAL["happiness"], labels.VALENCE_AROUSAL["sadness"]
    assert labels.AFFECT_DIMENSIONS == ("valence", "arousal", "positive_valence", "negative_valence")
    np.testing.assert_allclose(labels.expected_affect(_fer2013(happy=1.0), "fer2013"), [0.87, happy[1], 0.87, 0.0])
    np.testing.assert_allclose(labels.expected_affect(_fer2013(sad=1.0), "fer2013"), [-0.65, sad[1], 0.0, 0.65])
    np.testing.assert_array_equal(labels.expected_affect(_fer2013(neutral=1.0), "fer2013"), [0.0, 0.0, 0.0, 0.0])
    # Half happy, half sad: valence near 0, yet both unipolar values well above it. A split of the mean valence
    # (0.11 positive, 0 negative) would hide the sadness.
    valence, arousal, positive, negative = labels.expected_affect(_fer2013(happy=0.5, sad=0.5), "fer2013")
    assert valence == pytest.approx(0.11) and arousal == pytest.approx((happy[1] + sad[1]) / 2)
    assert positive == pytest.approx(0.435) and negative == pytest.approx(0.325)
    # docs/prediction.md's worked example.
    worked = labels.expected_affect(_fer2013(happy=0.5, sad=0.3, neutral=0.2), "fer2013")
    np.testing.assert_allclose(worked, [0.24, 0.02325, 0.435, 0.195])


def test_expected_affect_is_bounded_and_valence_is_positive_minus_negative():
    rng = np.random.default_rng(0)
    for label_set in ("fer2013", "ck_plus", "ferplus", "fer2013_contempt"):
        probabilities = rng.dirichlet(np.full(labels.scheme(label_set).num_classes, 0.3), size=500)
        affect = labels.expected_affect(probabilities, label_set)
        assert affect.shape == (500, 4)
        valence, arousal, positive, negative = affect.T
        assert np.all((positive >= 0) & (positive <= 1) & (negative >= 0) & (negative <= 1))
        np.testing.assert_array_equal(valence, positive - negative)
        # The same valence and arousal as before there were unipolar values, for expected_valence_arousal's callers.
        np.testing.assert_allclose(affect[:, :2], labels.expected_valence_arousal(probabilities, label_set))
        coordinates = np.array([labels.valence_arousal(name) for name in labels.scheme(label_set).classes])
        np.testing.assert_allclose(affect[:, :2], probabilities @ coordinates, atol=1e-12)


def test_expected_affect_refuses_coarse_and_unknown_label_sets():
    with pytest.raises(ValueError, match="coarse scheme"):
        labels.expected_affect([0.2, 0.7, 0.1], "pos_neg_neu")
    with pytest.raises(ValueError, match="unknown label scheme"):
        labels.expected_affect([0.9, 0.1], "facs")
    with pytest.raises(ValueError, match="7 classes"):
        labels.expected_affect(np.ones(8) / 8, "fer2013")


def test_unknown_names_give_clear_errors():
    with pytest.raises(ValueError, match="unknown emotion 'joy'"):
        labels.canonical("joy")
    with pytest.raises(ValueError, match="unknown label scheme 'fer'"):
        labels.scheme("fer")


def test_wesad_schemes_are_the_papers_tasks():
    assert labels.mapping("wesad", "wesad") == (0, 1, 2, 3)
    # Three-class: baseline, stress, amusement; meditation has no class and is left out.
    assert labels.mapping("wesad", "wesad3") == (0, 1, 2, None)
    # Binary: baseline and amusement are non-stress; meditation is left out here too.
    assert labels.scheme("stress").classes == ("non_stress", "stress")
    np.testing.assert_array_equal(labels.convert([0, 1, 2, 3], "wesad", "stress"), [0, 1, 0, -1])


def test_states_and_emotions_do_not_map_to_each_other():
    with pytest.raises(ValueError, match="affective states"):
        labels.mapping("fer2013", "stress")
    with pytest.raises(ValueError, match="affective states"):
        labels.mapping("wesad", "ck_plus")
    with pytest.raises(ValueError, match="groups several states"):
        labels.mapping("stress", "wesad")
