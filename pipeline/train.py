"""`emopy train`: trains a zoo model on a built dataset under a tf.distribute strategy, into a run directory.

The run directory holds everything export and prediction need, and what a killed run needs to resume:

    config.json      the run's settings, input spec, class names, class weights, label counts, strategy; once
                     training ended, how ("finished": epochs asked and trained, stopped early or not)
    labels.txt       class names, one per line, in output order
    face_spec.json   how to crop a photo's face so it looks like the training inputs (face models)
    signal_spec.json the physiological dataset's feature names, channels, rate and window, and the subjects the
                     run is validated and tested on (signal models, instead of face_spec.json)
    model.keras      the final model (the best epoch's weights: validation loss, or accuracy for cosine schedules;
                     the last epoch's for constant ones)
    history.json     per-epoch metrics (history.csv while training; survives resumes)
    progress.json    where training is now (epoch, step), about once a second: the studio's progress bar
    best_checkpoint.*  the best weights so far (a TF checkpoint: restores under any strategy)
    backup/          BackupAndRestore's state at the last epoch: a killed run resumes from it, a finished one
                     trains further from it
    logs/            TensorBoard

Rerunning the same command resumes an interrupted run and leaves a finished one as it is (saying so); a larger
--epochs trains a finished run further from its last epoch, and --overwrite starts over.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Sequence

import numpy as np
import tensorflow as tf
import tf_keras as keras

from emopy import models
from emopy.pipeline import data, infogan_faces, train_config
from emopy.pipeline.train_config import STRATEGIES, TrainConfig  # noqa: F401  (train.TrainConfig, as before)
from emopy.pipeline.run_dir import (BACKUP_DIR, BEST_WEIGHTS, CONFIG_FILE, FACE_SPEC_FILE, HISTORY_CSV, HISTORY_FILE,
                                    LABELS_FILE, MODEL_FILE, PROGRESS_FILE, SIGNAL_SPEC_FILE, RunDir, how_it_ended,
                                    read_history, remove_training_files, write_json)
from emopy.pipeline.augment import NAMED as AUGMENTATIONS

log = logging.getLogger(__name__)

# Every key of a model's RECIPE (models.recipe) that the trainer carries out; a recipe holds no others, so
# it never claims training that does not happen (tests check every architecture's).
RECIPE_KEYS = frozenset({"optimizer", "learning_rate", "beta_1", "momentum", "nesterov", "weight_decay", "lr_schedule",
                         "plateau_monitor", "plateau_mode", "plateau_factor", "plateau_patience",
                         "class_weight_power"})
# lr_schedule: "plateau" (the default: reduce on plateau, plateau_* keys), "cosine" (to zero over --epochs) or
# "constant" (every epoch at the recipe's rate, the last kept).
LR_SCHEDULES = train_config.LR_SCHEDULES


def make_strategy(name: str) -> tf.distribute.Strategy:
    """The tf.distribute strategy for `name`. auto: multi-worker when TF_CONFIG names several workers, mirrored
    over several GPUs, else one device (the GPU if there is one)."""
    if name not in STRATEGIES:
        raise ValueError(f"unknown strategy {name!r}; known: {', '.join(STRATEGIES)}")
    if name == "auto":
        cluster = json.loads(os.environ.get("TF_CONFIG", "{}")).get("cluster", {})
        if sum(len(tasks) for tasks in cluster.values()) > 1:
            name = "multi_worker"
    if name == "multi_worker":
        if "TF_CONFIG" not in os.environ:
            raise ValueError("--strategy multi_worker needs TF_CONFIG describing the cluster and this worker")
        # First of all TensorFlow calls: collective ops can only be configured before the runtime starts.
        return tf.distribute.MultiWorkerMirroredStrategy()
    gpus = tf.config.list_logical_devices("GPU")
    if name == "auto":
        name = "mirrored" if len(gpus) > 1 else "one_device"
    if name == "one_device":
        # The default strategy: one replica, on the first GPU if there is one. (tf.distribute.OneDeviceStrategy
        # would be the same, but BackupAndRestore refuses it, and a run must survive interruption.)
        return tf.distribute.get_strategy()
    if name == "mirrored":
        # Without GPUs, mirror over the logical CPU devices (tf.config.set_logical_device_configuration).
        devices = [device.name for device in (gpus or tf.config.list_logical_devices("CPU"))]
        return tf.distribute.MirroredStrategy(devices)
    resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=os.environ.get("TPU_NAME", ""))
    tf.config.experimental_connect_to_cluster(resolver)
    tf.tpu.experimental.initialize_tpu_system(resolver)
    return tf.distribute.TPUStrategy(resolver)


def strategy_name(strategy: tf.distribute.Strategy) -> str:
    """The --strategy name of a strategy object (MultiWorkerMirroredStrategy's class calls itself
    CollectiveAllReduceStrategy)."""
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return "multi_worker"
    if isinstance(strategy, tf.distribute.MirroredStrategy):
        return "mirrored"
    if isinstance(strategy, tf.distribute.TPUStrategy):
        return "tpu"
    return "one_device"


def _is_chief(strategy: tf.distribute.Strategy) -> bool:
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return True
    return resolver.task_type in (None, "chief") or (resolver.task_type == "worker" and resolver.task_id == 0
                                                     and "chief" not in resolver.cluster_spec().as_dict())


def _all_workers_here(strategy: tf.distribute.Strategy) -> None:
    """Returns once every worker of a multi-worker strategy has called it (an all-reduce of nothing)."""
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        strategy.reduce(tf.distribute.ReduceOp.SUM, strategy.run(lambda: tf.constant(1.0)), axis=None)


def _mixed_precision_policy(strategy: tf.distribute.Strategy) -> str:
    if isinstance(strategy, tf.distribute.TPUStrategy):
        return "mixed_bfloat16"
    return "mixed_float16" if tf.config.list_logical_devices("GPU") else "float32"


def _optimizer(config: TrainConfig, steps_per_epoch: int) -> keras.optimizers.Optimizer:
    recipe = config.recipe
    learning_rate = recipe["learning_rate"]
    if recipe.get("lr_schedule", "plateau") == "cosine":
        # Resumed runs restore the optimizer's step count, so the schedule continues where it stopped.
        learning_rate = keras.optimizers.schedules.CosineDecay(learning_rate, config.epochs * steps_per_epoch)
    if recipe["optimizer"] == "sgd_nesterov":
        return keras.optimizers.SGD(learning_rate, momentum=recipe.get("momentum", 0.9),
                                    nesterov=recipe.get("nesterov", True), weight_decay=recipe.get("weight_decay"))
    return keras.optimizers.Adam(learning_rate, beta_1=recipe.get("beta_1", 0.9))


def plateau_callback(recipe: dict, patience: int) -> keras.callbacks.ReduceLROnPlateau:
    """Reduce-on-plateau as a model's recipe says (plateau_monitor, plateau_mode, plateau_factor,
    plateau_patience); by default, halve the learning rate when the validation loss has not improved for half
    the early-stopping `patience`."""
    return keras.callbacks.ReduceLROnPlateau(monitor=recipe.get("plateau_monitor", "val_loss"),
                                             mode=recipe.get("plateau_mode", "auto"),
                                             factor=recipe.get("plateau_factor", 0.5),
                                             patience=recipe.get("plateau_patience", max(1, patience // 2)))


def best_monitor(recipe: dict) -> str:
    """What picks a run's best epoch, the one its model.keras keeps: validation accuracy for a cosine schedule,
    else validation loss."""
    return "val_accuracy" if recipe.get("lr_schedule", "plateau") == "cosine" else "val_loss"


def training_callbacks(recipe: dict, patience: int, run_dir: Path, write_dir: Path, chief: bool,
                       best_so_far: float | None = None) -> list:
    """The callbacks of a run: BackupAndRestore and the best checkpoint always; early stopping after `patience`
    epochs without improvement and the plateau schedule for plateau-scheduled recipes; TensorBoard and the CSV
    log on the chief. `best_so_far`: the monitored value of the best epoch of earlier attempts, which a resumed
    or continued run's checkpoint must beat.

    A cosine or constant schedule runs to its end, without an early stop. While a cosine one's learning rate is
    high, validation accuracy wanders for longer than the patience (a 150-epoch vgg_small run on fer2013 stopped
    at epoch 64, at 64 %), and its gains come as the rate falls. It ends at its best, so its runs keep the most
    accurate epoch. A constant one (a GAN's) keeps its last: a GAN's validation loss says nothing of its
    generator. Others keep the lowest validation loss.
    """
    schedule = recipe.get("lr_schedule", "plateau")
    monitor = best_monitor(recipe)
    callbacks = [
        # The last epoch's state stays after training: a larger --epochs continues from it.
        keras.callbacks.BackupAndRestore(str(run_dir / BACKUP_DIR), delete_checkpoint=False),
        # A constant schedule's "best" checkpoint is each epoch's in turn: the run keeps its last.
        keras.callbacks.ModelCheckpoint(str(write_dir / BEST_WEIGHTS), monitor=monitor,
                                        save_best_only=schedule != "constant", save_weights_only=True,
                                        initial_value_threshold=best_so_far),
    ]
    if schedule == "plateau":
        callbacks += [keras.callbacks.EarlyStopping(monitor=monitor, patience=patience, restore_best_weights=True),
                      plateau_callback(recipe, patience)]
    if chief:
        callbacks += [keras.callbacks.TensorBoard(str(run_dir / "logs")),
                      keras.callbacks.CSVLogger(str(run_dir / HISTORY_CSV), append=True)]
    return callbacks


class ProgressFile(keras.callbacks.Callback):
    """Writes where training is (PROGRESS_FILE: epoch, step, steps per epoch, epochs, seconds so far) at most
    every `every` seconds, and at each epoch's end, so that another process (the studio) can show a progress bar
    and the time left without parsing Keras's console."""

    def __init__(self, path: Path, epochs: int, steps: int, every: float = 1.0):
        super().__init__()
        self.path, self.epochs, self.steps, self.every = path, epochs, steps, every
        self.epoch, self.started, self.written = 0, time.monotonic(), 0.0

    def _write(self, step: int) -> None:
        self.written = time.monotonic()
        write_json(self.path, {"epoch": self.epoch, "step": step, "steps": self.steps, "epochs": self.epochs,
                               "seconds": round(self.written - self.started, 3), "pid": os.getpid()})

    def on_epoch_begin(self, epoch: int, logs=None) -> None:
        self.epoch = epoch
        self._write(0)

    def on_train_batch_end(self, batch: int, logs=None) -> None:
        if time.monotonic() - self.written >= self.every:
            self._write(batch + 1)

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        self.epoch = epoch + 1
        self._write(0)


def _metrics(config: TrainConfig) -> list:
    if config.task == "facs":
        return [keras.metrics.BinaryAccuracy(name="accuracy"), keras.metrics.AUC(name="auc", multi_label=True)]
    if config.data_config.target_kind == "votes":
        # The top of the vote shares is the majority label: accuracy stays on majority labels, as FER+ reports.
        return [keras.metrics.CategoricalAccuracy(name="accuracy")]
    return [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]


def _check_same_run(run_dir: Path, record: dict) -> None:
    """A rerun into an existing run directory resumes it; a different run there would restore the wrong
    weights, so it is refused."""
    existing = run_dir / CONFIG_FILE
    if not existing.exists():
        return
    before = json.loads(existing.read_text())["train"]
    # Settings added since the run was made were at their defaults then.
    defaults = {field.name: field.default for field in dataclasses.fields(TrainConfig)}
    changed = sorted(key for key in record
                     if key not in ("epochs", "out") and before.get(key, defaults.get(key)) != record[key])
    if changed:
        raise ValueError(f"{run_dir} holds a run with different settings ({', '.join(changed)}); "
                         f"use a new --out, or add --overwrite to start over there")


def _finished_run(run_dir: Path, config: TrainConfig) -> dict | None:
    """The record of the finished run in `run_dir` when this command asks it for no more epochs: it is left as it
    is, and a message says how to train further or start over. None when there is training to do: no run there,
    an interrupted one (it resumes), or a finished one asked for more epochs (it continues from its last)."""
    ended = how_it_ended(run_dir)
    if ended is None:
        return None
    trained, asked = ended["epochs_trained"], ended["epochs"]
    if config.epochs > asked:
        if not (run_dir / BACKUP_DIR).is_dir():
            raise ValueError(f"{run_dir} holds a finished run without its last epoch's state ({run_dir / BACKUP_DIR}"
                             f"; older emopy versions removed it), so --epochs {config.epochs} cannot continue it; "
                             f"add --overwrite to start over there, or use a new --out")
        return None
    how = (f"stopped early after {trained} of {asked} epochs: no better {best_monitor(config.recipe)} "
           f"for --patience {config.patience} epochs" if ended["stopped_early"] else f"{trained} of {asked} epochs trained")
    print(f"{run_dir} holds a finished run ({how}); it is left as it is. To train it further, rerun with --epochs "
          f"above {asked}: it continues after epoch {trained}. To start over, add --overwrite.")
    opened = RunDir.open(run_dir)
    return {**opened.record, "history": opened.history()}


def signal_spec(config: data.DataConfig) -> dict:
    """What a signal run's windows are (the dataset's metadata: feature names, channels, signal rate, window and
    shift) and which subjects it is tested and validated on, for signal_spec.json."""
    metadata = data.dataset_info(config).metadata
    subjects = list(metadata["subjects"])
    validation = (config.test_fold + 1) % config.folds
    return {"dataset": config.dataset, **{key: metadata[key] for key in (
                "feature_names", "channels", "signal_rate", "window_seconds", "shift_seconds")},
            "subjects": subjects, "test_subjects": subjects[config.test_fold::config.folds],
            "validation_subjects": subjects[validation::config.folds]}


def run(config: TrainConfig, overwrite: bool = False, callbacks: Sequence[keras.callbacks.Callback] = ()) -> dict:
    """Trains one run; returns its record (what config.json holds, plus the history). A finished run in
    config.out is returned as it is unless more epochs are asked; `overwrite` removes its files and starts over.
    `callbacks` join the run's own: emopy tune's pruning sets `stop_training`, which ends the run as an early stop
    does (finished, its best epoch kept)."""
    data_config = config.data_config
    data.input_kind_check(data_config, models.architecture(config.model).input_kind)  # before anything is written
    spec = config.input_spec
    models.check_hyperparameters(config.model, config.width, config.dropout)
    run_dir = Path(config.out).expanduser()
    if not overwrite:
        _check_same_run(run_dir, dataclasses.asdict(config))
        finished = _finished_run(run_dir, config)
        if finished is not None:
            return finished
    strategy = make_strategy(config.strategy)
    if config.seed is not None:
        keras.utils.set_random_seed(config.seed)
        tf.config.experimental.enable_op_determinism()
    keras.mixed_precision.set_global_policy(_mixed_precision_policy(strategy))
    chief = _is_chief(strategy)
    # Non-chief workers of a multi-worker job write their (identical) files to a scratch directory.
    write_dir = run_dir if chief else Path(tempfile.mkdtemp(prefix="emopy-worker-"))

    class_names = data.class_names(data_config)
    counts = {split: data.label_counts(data_config, split) for split in ("train", "validation")}
    added = (infogan_faces.training_faces(config.add_generated, class_names, seed=config.seed or 0)
             if config.add_generated else None)
    # What the model sees each epoch, real faces and made ones: the class weights and the epoch's steps follow it.
    seen = counts["train"]
    if added is not None:
        made = np.bincount(added[1], minlength=len(class_names))
        counts["generated"] = {"classes": dict(zip(class_names, made.tolist())), "left_out": 0}
        seen = {**seen, "classes": {name: count + int(made[k])
                                    for k, (name, count) in enumerate(seen["classes"].items())}}
    recipe = config.recipe
    class_weights = (data.balanced_class_weights(seen, recipe.get("class_weight_power", 1.0))
                     if config.class_weights and config.task == "emotion" else None)
    replicas = strategy.num_replicas_in_sync
    global_batch = config.batch_size * replicas
    record = {
        "train": dataclasses.asdict(config),
        "input_spec": dataclasses.asdict(spec),
        "class_names": list(class_names),
        "targets": data_config.target_kind,
        "class_weights": class_weights,
        "label_counts": counts,
        "strategy": {"name": strategy_name(strategy), "replicas": replicas, "global_batch_size": global_batch},
        "mixed_precision": keras.mixed_precision.global_policy().name,
    }
    if (seen["classes"] and sum(seen["classes"].values()) < global_batch
            and config.task == "emotion"):
        raise ValueError(f"the train split has fewer examples than one global batch ({global_batch}); "
                         f"lower --batch-size")
    if overwrite and chief:  # once what the run reads is known to be there
        removed = remove_training_files(run_dir)
        if removed:
            print(f"--overwrite: removed {', '.join(removed)} from {run_dir}; starting over")
    # Every worker reads the chief's files (its history, best checkpoint and backup) to take the chief's decisions:
    # none may read them before the chief has removed them (--overwrite). Building the model's variables below
    # would also wait for every worker, but this barrier does not depend on where the reads are.
    _all_workers_here(strategy)
    write_dir.mkdir(parents=True, exist_ok=True)
    if chief:
        write_json(run_dir / CONFIG_FILE, record)
        (run_dir / LABELS_FILE).write_text("".join(f"{name}\n" for name in class_names))
        if spec.uses_signals:
            write_json(run_dir / SIGNAL_SPEC_FILE, signal_spec(data_config))
        else:
            (run_dir / FACE_SPEC_FILE).write_text(data.face_spec(data_config, spec).to_json() + "\n")

    augmentation = AUGMENTATIONS[config.augmentation] if config.augment else None
    train = data.batches(data_config, "train", spec, batch_size=global_batch, training=True,
                         class_weights=class_weights, augmentation=augmentation, seed=config.seed, added=added)
    validation = data.batches(data_config, "validation", spec, batch_size=global_batch)

    with strategy.scope():
        model = models.build(config.model, spec, len(class_names), multi_label=config.task == "facs",
                             width=config.width, dropout=config.dropout)
        steps_per_epoch = max(1, sum(seen["classes"].values()) // global_batch)
        model.compile(optimizer=_optimizer(config, steps_per_epoch),
                      loss=models.loss(config.model, multi_label=config.task == "facs",
                                       soft_targets=data_config.target_kind == "votes"),
                      metrics=_metrics(config))
    # Signal models normalise with the training split's statistics, set here as keras-io adapts before fit (a resumed
    # run then restores the same ones from its backup).
    if spec.uses_signals:
        models.adapt(model, data.batches(data_config, "train", spec, batch_size=global_batch).map(lambda x, _: x))

    # The best epoch of earlier attempts (a killed or continued run's), which this one's checkpoint must beat. Read
    # by every worker from the chief's files, so that all of them take the same decision to save.
    monitor = best_monitor(recipe)
    earlier = read_history(run_dir).get(monitor) if (run_dir / f"{BEST_WEIGHTS}.index").exists() else None
    best_so_far = (max(earlier) if monitor == "val_accuracy" else min(earlier)) if earlier else None
    callbacks = [*training_callbacks(recipe, config.patience, run_dir, write_dir, chief, best_so_far), *callbacks]
    if chief:
        callbacks += [ProgressFile(run_dir / PROGRESS_FILE, config.epochs, steps_per_epoch),
                      *models.callbacks(config.model, str(run_dir / "logs" / "samples"))]
    log.info("training %s on %s: %d replicas (%s), global batch %d, %s", config.model, config.dataset, replicas,
             strategy_name(strategy), global_batch, record["mixed_precision"])
    model.fit(train, validation_data=validation, epochs=config.epochs, callbacks=callbacks,
              verbose=1 if sys.stdout.isatty() else 2)

    # The best epoch's weights: a resumed run that stopped early no longer has EarlyStopping's in memory, and a
    # cosine run has none.
    if (write_dir / f"{BEST_WEIGHTS}.index").exists():
        with strategy.scope():
            model.load_weights(str(write_dir / BEST_WEIGHTS))
    model.save(str(write_dir / MODEL_FILE))
    history = read_history(run_dir)
    trained = history["epoch"][-1] + 1 if history.get("epoch") else 0
    record["finished"] = {"epochs": config.epochs, "epochs_trained": trained, "stopped_early": trained < config.epochs}
    if chief:
        write_json(run_dir / HISTORY_FILE, history)
        write_json(run_dir / CONFIG_FILE, record)  # last: "finished" says everything else is written
    else:
        shutil.rmtree(write_dir, ignore_errors=True)
    return {**record, "history": history}
