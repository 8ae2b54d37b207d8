"""The settings of one training run (`TrainConfig`), and the `emopy train` flags derived from its fields.

Each field's metadata holds its flag's help, so a setting is declared once: `add_arguments` writes the argparse
flags from the fields and `from_args` reads them back. Light on purpose: `emopy --help` builds these flags
without loading TensorFlow.
"""

from __future__ import annotations

import argparse
import dataclasses
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from emopy import models
    from emopy.pipeline import data

# emopy_tfds.labels.TARGETS, which cannot be imported here: emopy_tfds loads TensorFlow (tests check the two agree).
TARGETS = ("majority", "votes")
STRATEGIES = ("auto", "one_device", "mirrored", "multi_worker", "tpu")
# pipeline.augment.NAMED's recipes (that module imports TensorFlow, which building the command line must not).
AUGMENTATIONS = ("standard", "photo", "tight")
# The learning-rate schedules pipeline.train carries out (a recipe's lr_schedule, or --lr-schedule).
LR_SCHEDULES = ("plateau", "cosine", "constant")
DEFAULT_DATA_DIR = "~/tensorflow_datasets"


def _flag(help: str, **argparse_options: Any) -> dict:
    return {"help": help, **argparse_options}


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """One training run. batch_size is per replica: the global batch grows with the number of replicas.
    learning_rate None takes the model's recipe (models.recipe)."""

    dataset: str = dataclasses.field(metadata=_flag(
        "fer2013, fer2013/ferplus, ck_plus (= ck_plus/emotion), ck_plus/sequences, ck_plus/facs, fer2013+ck_plus, "
        "or WESAD's physiological windows: wesad/chest, wesad/wrist or wesad/both", metavar="NAME"))
    model: str = dataclasses.field(metadata=_flag(
        "faces: cnn, landmarks, multi_input, landmark_lstm, image_lstm, capsnet, vgg, vgg_small or infogan; WESAD: "
        "physio_mlp (the window's features) or signal_cnn (its raw signals)", metavar="NAME"))
    out: str = dataclasses.field(metadata=_flag(
        "run directory; rerunning the same command there resumes an interrupted run and leaves a finished one as "
        "it is (a larger --epochs trains it further)", metavar="RUN_DIR"))
    data_dir: str = dataclasses.field(default=DEFAULT_DATA_DIR, metadata=_flag(
        "where TFDS datasets live", metavar="DIR"))
    labels: str | None = dataclasses.field(default=None, metadata=_flag(
        "fer2013, ck_plus, ferplus, fer2013_contempt, pos_neg_neu or pos_neu; WESAD: wesad3 (baseline, stress, "
        "amusement), stress (binary) or wesad (all four states) (default: the dataset's own; wesad3 on WESAD)",
        metavar="SCHEME"))
    targets: str | None = dataclasses.field(default=None, metadata=_flag(
        "majority: one class per face; votes: FER+'s crowd votes as soft targets, the share of each class "
        "(default: votes where the dataset has them, fer2013/ferplus; accuracy is always on majority labels)",
        choices=TARGETS))
    task: str = dataclasses.field(default="emotion", metadata=_flag(
        "emotion, or facs: multi-label action units on ck_plus/facs", metavar="TASK"))
    strategy: str = dataclasses.field(default="auto", metadata=_flag(
        "tf.distribute strategy (auto: multi-worker when TF_CONFIG names several workers, else mirrored on several "
        "GPUs, else one device)", choices=STRATEGIES))
    epochs: int = dataclasses.field(default=30, metadata=_flag("epochs to train", type=int))
    width: float = dataclasses.field(default=1.0, metadata=_flag(
        "multiply every layer's filters and units (cnn, vgg, vgg_small, physio_mlp, signal_cnn; 1.0: the "
        "architecture as described)",
        type=float, metavar="W"))
    dropout: float | None = dataclasses.field(default=None, metadata=_flag(
        "dropout rate (cnn, vgg, vgg_small, physio_mlp, signal_cnn; default: the architecture's own)", type=float,
        metavar="P"))
    lr_schedule: str | None = dataclasses.field(default=None, metadata=_flag(
        "plateau: halve the learning rate when validation stalls, stop early after --patience; cosine: to zero "
        "over --epochs, every epoch run; constant: the same rate throughout, every epoch run, the last one kept "
        "(a GAN's) (default: the model's recipe)", choices=LR_SCHEDULES))
    batch_size: int = dataclasses.field(default=64, metadata=_flag(
        "per replica; the global batch is N x replicas", type=int, metavar="N"))
    learning_rate: float | None = dataclasses.field(default=None, metadata=_flag(
        "default: the model's recipe", type=float, metavar="LR"))
    image_size: int = dataclasses.field(default=48, metadata=_flag(
        "side of the model's input images", type=int, metavar="S"))
    sequence_length: int = dataclasses.field(default=10, metadata=_flag(
        "frames per sequence", type=int, metavar="T"))
    augment: bool = dataclasses.field(default=True, metadata=_flag(
        "no flips, rotations, shifts, zooms or lighting", flag="--no-augment"))
    augmentation: str = dataclasses.field(default="standard", metadata=_flag(
        "standard: flips, rotations, shifts, zooms, lighting; photo: also a looser face box, low-resolution "
        "faces and noise, like faces cut from real photos; tight: standard, and half the faces cut at the "
        "forehead, sides or chin and mirrored back, as tightly cropped photos come out (pipeline/augment.py)",
        choices=AUGMENTATIONS))
    class_weights: bool = dataclasses.field(default=True, metadata=_flag(
        "do not weight rare classes up", flag="--no-class-weights"))
    add_generated: str | None = dataclasses.field(default=None, metadata=_flag(
        "train also on faces an InfoGAN run makes, e.g. runs/infogan:disgust=2000,contempt=2000 (image models; "
        "the faces are made once, seeded by --seed, and mixed into every epoch)", metavar="RUN:EMOTION=N,..."))
    patience: int = dataclasses.field(default=10, metadata=_flag(
        "epochs without improvement to stop (plateau-scheduled models; a cosine schedule runs every epoch)",
        type=int, metavar="N"))
    seed: int | None = dataclasses.field(default=None, metadata=_flag(
        "seed everything and use deterministic ops", type=int, metavar="N"))
    # Set by cross-validation for each fold's run, not by flags.
    folds: int = 10
    test_fold: int = 0

    @property
    def data_config(self) -> "data.DataConfig":
        # pipeline.data imports TensorFlow, which building the command line must not.
        from emopy.pipeline import data

        return data.DataConfig(self.dataset, data_dir=self.data_dir, labels=self.labels, task=self.task,
                               targets=self.targets, folds=self.folds, test_fold=self.test_fold)

    @property
    def input_spec(self) -> "models.InputSpec":
        # models imports TensorFlow (Keras), which building the command line must not.
        from emopy import models

        kind = models.architecture(self.model).input_kind
        if kind in models.SIGNAL_KINDS:
            # A physiological window's shape is the built dataset's: its feature names, samples and channels.
            from emopy.pipeline import data

            data.input_kind_check(self.data_config, kind)
            info = data.dataset_info(self.data_config)
            if kind == "signal_features":
                return models.InputSpec(kind=kind, num_features=len(info.metadata["feature_names"]))
            samples, channels = info.features["signals"].shape
            return models.InputSpec(kind=kind, window_samples=samples, channels=channels)
        return models.InputSpec(kind=kind, image_size=self.image_size, sequence_length=self.sequence_length)

    @property
    def recipe(self) -> dict:
        """How this run trains: the model's recipe (models.recipe), with this run's learning rate and schedule
        where it sets them."""
        from emopy import models

        recipe = models.recipe(self.model)
        if self.learning_rate:
            recipe["learning_rate"] = self.learning_rate
        if self.lr_schedule:
            recipe["lr_schedule"] = self.lr_schedule
        return recipe


def _flagged_fields() -> list[dataclasses.Field]:
    return [field for field in dataclasses.fields(TrainConfig) if "help" in field.metadata]


@dataclasses.dataclass(frozen=True)
class Setting:
    """One `emopy train` flag as a form shows it: its field name, flag, help, default, choices (None: free) and
    type ("str", "int", "float", "bool")."""

    name: str
    flag: str
    help: str
    default: Any
    choices: tuple | None
    type: str
    required: bool


def settings() -> list[Setting]:
    """`emopy train`'s flags, in --help's order, for forms built from the same registry (emopy studio)."""
    found = []
    for field in _flagged_fields():
        kind = field.type.replace(" | None", "")
        found.append(Setting(field.name, field.metadata.get("flag", "--" + field.name.replace("_", "-")),
                             field.metadata["help"], None if field.default is dataclasses.MISSING else field.default,
                             tuple(field.metadata["choices"]) if "choices" in field.metadata else None, kind,
                             field.default is dataclasses.MISSING))
    return found


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """`emopy train`'s flags, one per TrainConfig field that has help: --dataset, --model and --out required;
    a True boolean becomes a --no-... switch."""
    for field in _flagged_fields():
        options = {key: value for key, value in field.metadata.items() if key != "flag"}
        flag = field.metadata.get("flag", "--" + field.name.replace("_", "-"))
        if field.type == "bool":
            parser.add_argument(flag, dest=field.name, action="store_false", help=options["help"])
        elif field.default is dataclasses.MISSING:
            parser.add_argument(flag, dest=field.name, required=True, **options)
        else:
            parser.add_argument(flag, dest=field.name, default=field.default, **options)


def from_args(args: argparse.Namespace) -> TrainConfig:
    """The TrainConfig of parsed `emopy train` flags."""
    return TrainConfig(**{field.name: getattr(args, field.name) for field in _flagged_fields()})
