"""tf.data input pipelines from the built TFDS datasets, for every input kind the models take.

    config = data.DataConfig("fer2013", data_dir="~/tensorflow_datasets")
    spec = models.InputSpec(kind="image_landmarks")
    train = data.batches(config, "train", spec, batch_size=64, training=True,
                         class_weights=data.balanced_class_weights(data.label_counts(config, "train")))

Each example is decoded, resized to the model's input, given its target in the chosen scheme and cached in
memory once; shuffling, batching and augmentation (images and landmarks together) then run in-graph every
epoch. Batches hold what a face crop really is, uint8 pixels and landmarks in crop pixels: scaling and the
landmark features are the model's own first layers (models.preprocessing). Examples whose emotion has no class
in the scheme (e.g. CK+ contempt under fer2013's labels) are left out, and `label_counts` counts them.

Targets: a class id per example (`majority`), or for datasets with crowd votes (FER+) the share of the votes each
class got (`votes`, the default there): soft targets for categorical cross-entropy, as Barsoum et al. (2016)
found label distributions beat majority voting. A vote for an emotion the scheme has no class for is set aside
and the rest renormalised. Which examples are kept, and the class weights, follow the majority label either way,
so accuracy is on majority labels.

CK+ has one split; its subject-independent folds make three: `test` is fold `test_fold`, `validation` the next
fold, `train` the rest, so no subject is in two of them. WESAD's windows are split the same way; its folds are its
subjects, grouped by fold modulo `folds` (more folds than subjects: one subject a fold, leave-one-subject-out).
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

import emopy_tfds  # noqa: F401  (registers the builders)
from emopy import models
from emopy_tfds import faces, labels
from emopy.pipeline import augment as augment_lib

SPLITS = ("train", "validation", "test")
TASKS = ("emotion", "facs")
SHUFFLE_BUFFER = 10_000


@dataclasses.dataclass(frozen=True)
class Source:
    """One built TFDS dataset (name/config) and the label set of its `label` feature."""

    tfds_name: str
    label_set: str
    sequences: bool = False
    subject_folds: bool = False
    votes: bool = False  # has `ferplus_votes`: 10 counts, FER+'s 8 emotions then unknown and not-a-face
    signals: bool = False  # physiological windows (`features`, `signals`), not faces
    default_labels: str | None = None  # the scheme a run takes without --labels (None: label_set)


FER2013 = Source("fer2013/original", "fer2013")
FERPLUS = Source("fer2013/ferplus", "ferplus", votes=True)
CK_PLUS_EMOTION = Source("ck_plus/emotion", "ck_plus", subject_folds=True)
CK_PLUS_SEQUENCES = Source("ck_plus/sequences", "ck_plus", sequences=True, subject_folds=True)
CK_PLUS_FACS = Source("ck_plus/facs", "ck_plus", subject_folds=True)
# Without --labels, WESAD runs take Schmidt et al. (2018)'s three-class task (baseline, stress, amusement), whose
# leave-one-subject-out accuracy the paper reports (about 80 %): meditation, a recovery phase that the paper left
# out of both of its tasks, is left out and counted. `--labels wesad` keeps all four states, `stress` is binary.
WESAD_CHEST, WESAD_WRIST, WESAD_BOTH = (Source(f"wesad/{config}", "wesad", subject_folds=True, signals=True,
                                               default_labels="wesad3") for config in ("chest", "wrist", "both"))

DATASETS: dict[str, tuple[Source, ...]] = {
    "fer2013": (FER2013,),
    "fer2013/original": (FER2013,),
    "fer2013/ferplus": (FERPLUS,),
    "ck_plus": (CK_PLUS_EMOTION,),
    "ck_plus/emotion": (CK_PLUS_EMOTION,),
    "ck_plus/sequences": (CK_PLUS_SEQUENCES,),
    "ck_plus/facs": (CK_PLUS_FACS,),
    # Joint training: CK+ crops are resized to the model's input and relabelled in fer2013's classes.
    "fer2013+ck_plus": (FER2013, CK_PLUS_EMOTION),
    "wesad/chest": (WESAD_CHEST,),
    "wesad/wrist": (WESAD_WRIST,),
    "wesad/both": (WESAD_BOTH,),
}


class DatasetNotBuiltError(FileNotFoundError):
    """The TFDS dataset a pipeline reads has not been prepared in the data directory."""


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """Which data a run reads and what it predicts.

    dataset: a key of DATASETS. labels: a scheme of `labels.SCHEMES` (default: the dataset's own label set).
    task: `emotion` (one class per example) or `facs` (multi-label action units, on ck_plus/facs).
    targets: `majority` or `votes` (labels.TARGETS); None: votes where every source has them, else majority.
    folds, test_fold: CK+'s splits (see the module docstring); `emopy train --cv K` runs test_fold 0..K-1.
    """

    dataset: str
    data_dir: str = "~/tensorflow_datasets"
    labels: str | None = None
    task: str = "emotion"
    targets: str | None = None
    folds: int = 10
    test_fold: int = 0

    def __post_init__(self):
        if self.dataset not in DATASETS:
            raise ValueError(f"unknown dataset {self.dataset!r}; known: {', '.join(DATASETS)}")
        if self.task not in TASKS:
            raise ValueError(f"unknown task {self.task!r}; known: {', '.join(TASKS)}")
        if self.task == "facs" and self.sources != (CK_PLUS_FACS,):
            raise ValueError("--task facs needs --dataset ck_plus/facs (the action units are coded there)")
        labels.scheme(self.scheme_name)  # a clear error for unknown schemes, before any data is read
        if self.targets is not None and self.targets not in labels.TARGETS:
            raise ValueError(f"unknown targets {self.targets!r}; known: {', '.join(labels.TARGETS)}")
        if self.target_kind == "votes" and not (self.task == "emotion" and all(s.votes for s in self.sources)):
            raise ValueError(f"--targets votes needs a dataset with crowd votes (fer2013/ferplus) and the emotion "
                             f"task; {self.dataset!r} has none: use --targets majority")
        if not 0 <= self.test_fold < self.folds:
            raise ValueError(f"test fold {self.test_fold} is not one of the {self.folds} folds")

    @property
    def sources(self) -> tuple[Source, ...]:
        return DATASETS[self.dataset]

    @property
    def scheme_name(self) -> str:
        return self.labels or self.sources[0].default_labels or self.sources[0].label_set

    @property
    def sequences(self) -> bool:
        return self.sources[0].sequences

    @property
    def target_kind(self) -> str:
        """`majority` or `votes`: what `targets` says, or the dataset's own default."""
        if self.targets:
            return self.targets
        return "votes" if self.task == "emotion" and all(source.votes for source in self.sources) else "majority"


def class_names(config: DataConfig) -> tuple[str, ...]:
    """What the model's outputs are: the scheme's classes, or action units as "AU1", "AU2", ..."""
    if config.task == "facs":
        return tuple(f"AU{au}" for au in labels.FACS_ACTION_UNITS)
    return labels.scheme(config.scheme_name).classes


def input_kind_check(config: DataConfig, spec: models.InputSpec | str) -> None:
    """A clear error where the model's input kind (a spec, or its kind's name) is not what the dataset holds."""
    kind, signals = spec if isinstance(spec, str) else spec.kind, config.sources[0].signals
    if (kind in models.SIGNAL_KINDS) != signals:
        wanted = ("signal_features or signal_window (physio_mlp, signal_cnn)" if signals
                  else "faces (image or landmark models)")
        raise ValueError(f"{config.dataset!r} holds {'physiological signals' if signals else 'faces'}: it takes "
                         f"models of {wanted}, not {kind!r} inputs")
    if signals:
        return
    spec = models.InputSpec(kind=kind) if isinstance(spec, str) else spec
    if spec.is_sequence != config.sequences:
        wanted = "a sequence dataset (ck_plus/sequences)" if spec.is_sequence else "a dataset of single faces"
        raise ValueError(f"{spec.kind!r} inputs need {wanted}; {config.dataset!r} is not one")


def _builder(source: Source, data_dir: str):
    data_dir = os.path.expanduser(data_dir)
    builder = tfds.builder(source.tfds_name, data_dir=data_dir)
    if not builder.is_prepared():
        dataset = source.tfds_name.split("/")[0]
        config = source.tfds_name.split("/")[1]
        raise DatasetNotBuiltError(
            f"{source.tfds_name} is not built in {data_dir}: run "
            f"`emopy build {dataset} --config {config} --manual-dir DIR --data-dir {data_dir}`")
    return builder


def check_built(config: DataConfig) -> None:
    """Raises DatasetNotBuiltError, saying how to build it, unless every dataset the config reads is built."""
    for source in config.sources:
        _builder(source, config.data_dir)


def dataset_info(config: DataConfig) -> tfds.core.DatasetInfo:
    """The built dataset's info (its first source's): features, and metadata such as WESAD's feature names."""
    return _builder(config.sources[0], config.data_dir).info


def face_spec(config: DataConfig, spec: models.InputSpec) -> faces.FaceSpec:
    """How a photo's face must be cropped to look like this run's training inputs."""
    builder = _builder(config.sources[-1], config.data_dir)
    stored = builder.info.metadata.get("face_spec") if builder.info.metadata else None
    if not stored:
        raise DatasetNotBuiltError(
            f"{config.sources[-1].tfds_name} in {config.data_dir} was built by an older emopy that did not record "
            f"how its faces are framed: rebuild it with `emopy build ... --overwrite`")
    base = faces.FaceSpec.from_json(stored)
    return dataclasses.replace(base, crop_size=spec.image_size, grayscale=spec.channels == 1)


def _fold_filter(config: DataConfig, split: str):
    test, validation = config.test_fold, (config.test_fold + 1) % config.folds

    def keep(example) -> tf.Tensor:
        fold = tf.math.floormod(tf.cast(example["fold"], tf.int32), config.folds)
        if split == "test":
            return tf.equal(fold, test)
        if split == "validation":
            return tf.equal(fold, validation)
        return tf.logical_and(tf.not_equal(fold, test), tf.not_equal(fold, validation))

    return keep


def _read(source: Source, config: DataConfig, split: str, decoders=None, shuffle_files: bool = False):
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; known: {', '.join(SPLITS)}")
    builder = _builder(source, config.data_dir)
    if source.subject_folds:
        # WESAD's folds are its subjects: more folds than subjects is one subject a fold.
        built_folds = len(builder.info.metadata["subjects"]) if source.signals else builder.builder_config.folds
        if config.folds > built_folds and not source.signals:
            raise ValueError(f"{source.tfds_name} was built with {built_folds} subject folds; "
                             f"cannot make {config.folds}")
        ds = builder.as_dataset(split="train", decoders=decoders, shuffle_files=shuffle_files)
        return ds.filter(_fold_filter(config, split))
    return builder.as_dataset(split=split, decoders=decoders, shuffle_files=shuffle_files)


# Added to the majority class's share: where two classes tie for the most votes, the top of the soft target
# is then the majority label (the dataset breaks ties in its own class order, which a scheme may reorder).
TIE_BREAK = 1e-3


def _vote_shares(example, source: Source, config: DataConfig, class_id: tf.Tensor) -> tf.Tensor:
    """The share of the crowd's emotion votes each class of the scheme got (float32 [classes], summing to 1,
    topped by `class_id`, the majority class): the soft target of a `votes` run."""
    emotions = len(labels.scheme(source.label_set).classes)
    to_class = np.zeros((emotions, len(class_names(config))), np.float32)
    for emotion, emotion_class in enumerate(labels.mapping(source.label_set, config.scheme_name)):
        if emotion_class is not None:
            to_class[emotion, emotion_class] = 1.0
    votes = tf.cast(example["ferplus_votes"][:emotions], tf.float32)
    counts = tf.linalg.matvec(tf.constant(to_class), votes, transpose_a=True)
    shares = tf.math.divide_no_nan(counts, tf.reduce_sum(counts))
    shares += TIE_BREAK * tf.one_hot(class_id, len(to_class[0]))
    return shares / tf.reduce_sum(shares)


def _target(example, source: Source, config: DataConfig) -> tf.Tensor:
    """The class id in the run's scheme (-1: none), or the multi-hot AU vector for the facs task."""
    if config.task == "facs":
        units = tf.constant(labels.FACS_ACTION_UNITS, tf.int32)
        coded = tf.cast(example["action_units"], tf.int32)
        return tf.cast(tf.reduce_any(tf.equal(units[:, None], coded[None, :]), axis=1), tf.float32)
    lookup = tf.constant([-1 if i is None else i for i in labels.mapping(source.label_set, config.scheme_name)],
                         tf.int64)
    label = tf.cast(example["label"], tf.int64)
    # CK+'s facs config marks sequences without an emotion label with -1.
    return tf.where(label >= 0, tf.gather(lookup, tf.maximum(label, 0)), tf.constant(-1, tf.int64))


def _labels_only(source: Source, config: DataConfig, split: str) -> tf.data.Dataset:
    if source.signals:  # a window's signals are small next to a face's pixels
        return _read(source, config, split)
    image_key = "frames" if source.sequences else "image"
    return _read(source, config, split, decoders={image_key: tfds.decode.SkipDecoding()})


def _index(example) -> tf.Tensor:
    """The example's row in its source (fer2013's CSV row), or -1 for datasets that have none."""
    return tf.cast(example["index"], tf.int64) if "index" in example else tf.constant(-1, tf.int64)


def example_indices(config: DataConfig, split: str) -> np.ndarray:
    """Each evaluated example's `index` (-1 where the dataset has none), in the order `batches` gives them
    without training; reads no images."""
    parts = []
    for source in config.sources:
        ds = _labels_only(source, config, split).map(
            lambda example, source=source: (_index(example), _target(example, source, config)))
        for index, target in ds.batch(4096).as_numpy_iterator():
            parts.append(index[target >= 0] if config.task == "emotion" else index)
    return np.concatenate(parts) if parts else np.zeros(0, np.int64)


def label_counts(config: DataConfig, split: str) -> dict:
    """{"classes": {name: count}, "left_out": examples with no class in the scheme} for one split.

    Reads labels only (images are not decoded), so it is cheap even on fer2013.
    """
    names = class_names(config)
    counts = np.zeros(len(names), np.int64)
    left_out = 0
    for source in config.sources:
        ds = _labels_only(source, config, split).map(
            lambda example, source=source: _target(example, source, config), num_parallel_calls=tf.data.AUTOTUNE)
        for target in ds.batch(4096).as_numpy_iterator():
            if config.task == "facs":
                counts += target.sum(axis=0).astype(np.int64)
                left_out += int((target.sum(axis=1) == 0).sum())  # sequences with none of the AUs
            else:
                counts += np.bincount(target[target >= 0], minlength=len(names))
                left_out += int((target < 0).sum())
    return {"classes": dict(zip(names, counts.tolist())), "left_out": left_out}


def balanced_class_weights(counts: dict, power: float = 1.0) -> dict[str, float]:
    """Weights (n / (k * n_c)) ** power. With power 1 every class weighs as much in the loss as it would if
    classes were balanced (fer2013 has 16x more happy than disgust faces); 0.5 goes half way (on a log scale).
    Classes absent from the split get weight 0."""
    class_counts = counts["classes"]
    total = sum(class_counts.values())
    present = sum(1 for count in class_counts.values() if count)
    return {name: ((total / (present * count)) ** power if count else 0.0) for name, count in class_counts.items()}


def _resize(image: tf.Tensor, landmarks: tf.Tensor, size: int) -> tuple[tf.Tensor, tf.Tensor]:
    """Image [..., s, s, C] uint8 and its landmarks resized to side `size` (pixel centres stay aligned)."""
    source_size = image.shape[-2]
    if source_size == size:
        return image, landmarks
    ratio = size / source_size
    method = "area" if size < source_size else "bilinear"
    resized = tf.image.resize(image, [size, size], method=method)
    resized = tf.cast(tf.clip_by_value(tf.round(resized), 0, 255), tf.uint8)
    return resized, faces.rescale_points(landmarks, ratio)


def _sample_frames(values: tf.Tensor, length: int) -> tf.Tensor:
    """`length` frames spread evenly from first to last (repeating frames of shorter sequences)."""
    count = tf.shape(values)[0]
    positions = tf.linspace(0.0, tf.cast(count - 1, tf.float32), length)
    return tf.gather(values, tf.cast(tf.round(positions), tf.int32))


def _signal_record(example, source: Source, config: DataConfig, spec: models.InputSpec,
                   feature_names: tuple[str, ...]) -> dict:
    """What is cached per physiological window: its features in `feature_names`' order (NaN where undefined: the
    model handles it) or its signals [samples, channels], and the target."""
    class_id = _target(example, source, config)
    record = {"class_id": class_id, "target": class_id}
    if spec.kind == "signal_features":
        record["features"] = tf.stack([tf.cast(example["features"][name], tf.float32) for name in feature_names])
    else:
        record["signals"] = tf.cast(example["signals"], tf.float32)
    return record


def _record(example, source: Source, config: DataConfig, spec: models.InputSpec) -> dict:
    """What is cached per example: uint8 pixels (if the model takes images), landmarks in the pixels of
    the model's input size, and the target."""
    image = example["frames"] if source.sequences else example["image"]
    points = tf.cast(example["landmarks"], tf.float32)
    if source.sequences:
        image = _sample_frames(image, spec.sequence_length)
        points = _sample_frames(points, spec.sequence_length)
    image, points = _resize(image, points, spec.image_size)
    class_id = _target(example, source, config)
    record = {"landmarks": points, "class_id": class_id, "target": class_id}
    if config.target_kind == "votes":
        record["target"] = _vote_shares(example, source, config, class_id)
    if spec.uses_images:
        record["image"] = image
    return record


def examples(config: DataConfig, split: str, spec: models.InputSpec, *, shuffle_files: bool = False) -> tf.data.Dataset:
    """A split's cached records (see `_record`), with every source in the run's scheme; examples with no class
    are left out."""
    input_kind_check(config, spec)
    parts = []
    for source in config.sources:
        ds = _read(source, config, split, shuffle_files=shuffle_files)
        if source.signals:
            names = tuple(_builder(source, config.data_dir).info.metadata["feature_names"])
            parts.append(ds.map(lambda example, source=source: _signal_record(example, source, config, spec, names),
                                num_parallel_calls=tf.data.AUTOTUNE))
            continue
        parts.append(ds.map(lambda example, source=source: _record(example, source, config, spec),
                            num_parallel_calls=tf.data.AUTOTUNE))
    ds = parts[0]
    for part in parts[1:]:
        ds = ds.concatenate(part)
    if config.task == "emotion":
        ds = ds.filter(lambda record: record["class_id"] >= 0)
    return ds.cache()


def model_inputs(records: dict, spec: models.InputSpec, augmentation: augment_lib.Augmentation | None = None) -> dict:
    """A batch of records as the model's named inputs (`models.input_shapes`), augmented when asked (faces only)."""
    if spec.uses_signals:
        return {name: records[name] for name in models.input_shapes(spec)}
    images = records["image"] if spec.uses_images else None
    points = records["landmarks"]
    if augmentation is not None:
        images, points = augment_lib.augment(images, points, spec.image_size, augmentation)
    return models.named_inputs(spec, images, points)


def added_records(faces: np.ndarray, class_ids: np.ndarray, config: DataConfig, spec: models.InputSpec
                  ) -> tf.data.Dataset:
    """Records (as `_record` makes) of faces made elsewhere, uint8 [N, S, S, C] of classes `class_ids`: a vote
    target puts all its share on the class. They have no landmarks, so only image models take them."""
    if spec.uses_landmarks or not spec.uses_images:
        raise ValueError(f"added faces have no landmarks: only image models take them, not a {spec.kind!r} model")
    if faces.shape[1:] != (spec.image_size, spec.image_size, spec.channels):
        raise ValueError(f"added faces are {faces.shape[1:]}, the model takes {spec.image_size}x{spec.image_size}")
    class_ids = np.asarray(class_ids, np.int64)
    target = (np.eye(len(class_names(config)), dtype=np.float32)[class_ids] if config.target_kind == "votes"
              else class_ids)
    return tf.data.Dataset.from_tensor_slices({
        "image": faces, "class_id": class_ids, "target": target,
        "landmarks": np.zeros((len(faces), spec.num_landmarks, 2), np.float32)})


def batches(config: DataConfig, split: str, spec: models.InputSpec, *, batch_size: int, training: bool = False,
            class_weights: dict[str, float] | None = None,
            augmentation: augment_lib.Augmentation | None = augment_lib.Augmentation(),
            seed: int | None = None, added: tuple[np.ndarray, np.ndarray] | None = None) -> tf.data.Dataset:
    """Batches of (inputs, targets[, sample weights]) for Keras. Training shuffles, drops the last partial batch
    (every replica then gets equal batches), augments and weights classes; evaluation keeps every example in order.
    `added`: faces and class ids to train on beside the split's (training only), spread evenly through each epoch.
    """
    ds = examples(config, split, spec, shuffle_files=training)
    if training:
        ds = ds.shuffle(SHUFFLE_BUFFER, seed=seed, reshuffle_each_iteration=True)
    if training and added is not None and len(added[0]):
        extra = added_records(*added, config, spec).shuffle(len(added[0]), seed=seed, reshuffle_each_iteration=True)
        real = sum(label_counts(config, split)["classes"].values())
        share = len(added[0]) / (real + len(added[0]))
        ds = tf.data.Dataset.sample_from_datasets([ds, extra], weights=[1 - share, share], seed=seed)
    ds = ds.batch(batch_size, drop_remainder=training)
    weights = None
    if class_weights is not None and config.task == "emotion":
        weights = tf.constant([class_weights[name] for name in class_names(config)], tf.float32)
    augmentation = augmentation if training else None

    def to_keras(records):
        inputs = model_inputs(records, spec, augmentation)
        if weights is None:
            return inputs, records["target"]
        return inputs, records["target"], tf.gather(weights, records["class_id"])

    ds = ds.map(to_keras, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)
    options = tf.data.Options()
    # Every worker reads all files and keeps its share of batches: correct whatever the number of shards.
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return ds.with_options(options)
