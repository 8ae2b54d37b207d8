"""`emopy tune`: an Optuna study over the zoo's architectures and how they train; each trial is an `emopy train` run.

    emopy tune --dataset fer2013 --models vgg_small,cnn --trials 12 --epochs 4 --out studies/fer2013

Every trial is an ordinary run directory, OUT/trial-NNNN, which `emopy evaluate`, `emopy export --run` and
`emopy visualize` take as they take any run; TRIAL_FILE beside its config.json says what the study made of it.
The search space is read from what `emopy train` reads (`search_space`): the architectures' registry (which of them
take a width and a dropout), the learning-rate schedules, augmentation recipes and targets of TrainConfig.

The study lives in a database: SQLite in OUT by default, or any SQLAlchemy URL (`--storage
postgresql://...`), which lets workers on many machines share one study. Each worker asks the database for its
next trial, so no two run the same one; `--trials` caps the study's finished trials, whichever worker ran them.
Weak trials are pruned by their validation accuracy at each epoch (a median rule, after a few whole trials), and a
worker that dies leaves its trial to be retried, resuming the same run directory, by the next worker that starts.
"""

from __future__ import annotations

import dataclasses
import os
import random
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Sequence

import optuna
import sqlalchemy
import tf_keras as keras

from emopy import models
from emopy.pipeline import data, train
from emopy.pipeline.run_dir import CONFIG_FILE, RunDir, read_history, write_json
from emopy.pipeline.train_config import AUGMENTATIONS, LR_SCHEDULES, TrainConfig

TRIAL_FILE = "trial.json"
STUDY_FILE = "study.db"
DEFAULT_STUDY = "emopy"
METRIC = "val_accuracy"
# The choices of each setting a study searches, besides the architecture (--models). Categorical where a few
# values are what a person would try, so that trials are comparable across architectures.
@dataclasses.dataclass(frozen=True)
class Range:
    """A float setting's range, sampled uniformly or, with `log`, on a log scale."""

    low: float
    high: float
    log: bool = False


WIDTHS = (0.5, 0.75, 1.0, 1.5)
DROPOUT_RANGE = Range(0.1, 0.6)
LEARNING_RATE_RANGE = Range(1e-4, 3e-2, log=True)
BATCH_SIZES = (32, 64, 128)
# "none" is TrainConfig(augment=False).
AUGMENTATION_CHOICES = ("none", *AUGMENTATIONS)
# Seconds between a worker's heartbeats; a trial not heard of for GRACE seconds is counted failed and retried.
HEARTBEAT, GRACE = 5, 20


def search_space(dataset: str, models_searched: Sequence[str]) -> dict[str, Any]:
    """What a study over `models_searched` on `dataset` searches: each setting's choices (a tuple) or Range. width
    and dropout only where an architecture takes them; targets only for datasets with crowd votes."""
    for name in models_searched:
        models.architecture(name)  # unknown names fail here, naming the known ones
    taken = {key for name in models_searched for key in models.architecture(name).hyperparameters}
    space: dict[str, Any] = {"model": tuple(models_searched)}
    if "width" in taken:
        space["width"] = WIDTHS
    if "dropout" in taken:
        space["dropout"] = DROPOUT_RANGE
    space.update(learning_rate=LEARNING_RATE_RANGE, lr_schedule=LR_SCHEDULES, batch_size=BATCH_SIZES,
                 augmentation=AUGMENTATION_CHOICES, class_weights=(True, False))
    if dataset.startswith("fer2013/ferplus"):
        space["targets"] = ("votes", "majority")
    return space


def suggest(trial: optuna.Trial, space: dict[str, Any]) -> dict[str, Any]:
    """The trial's settings, sampled from `space`; an architecture's own width and dropout only where it takes
    them (Optuna's define-by-run: the other trials' samplers see the condition)."""
    model = trial.suggest_categorical("model", space["model"])
    hyperparameters = models.architecture(model).hyperparameters
    chosen: dict[str, Any] = {"model": model}
    for name, choices in space.items():
        if name == "model" or (name in models.HYPERPARAMETERS and name not in hyperparameters):
            continue
        if isinstance(choices, Range):
            chosen[name] = trial.suggest_float(name, choices.low, choices.high, log=choices.log)
        else:
            chosen[name] = trial.suggest_categorical(name, choices)
    return chosen


def trial_config(base: TrainConfig, settings: dict[str, Any], run_dir: Path) -> TrainConfig:
    """The TrainConfig of a trial: `base` (dataset, data dir, epochs...) with the trial's settings, into
    `run_dir`."""
    settings = dict(settings)
    augmentation = settings.pop("augmentation", base.augmentation)
    augment = augmentation != "none"
    return dataclasses.replace(base, **settings, augment=augment,
                               augmentation=augmentation if augment else base.augmentation, out=str(run_dir))


class PruneByEpoch(keras.callbacks.Callback):
    """Reports the validation accuracy of each epoch to the trial, and stops training once the pruner says the
    trial is weak. It stops the run at an epoch's end, as an early stop, so the pruned run keeps its best
    epoch's model and can be compared or exported like any other. The last of `epochs` is never pruned: nothing
    would be saved, and the trial's value would be lost."""

    def __init__(self, trial: optuna.Trial, epochs: int):
        super().__init__()
        self.trial, self.epochs, self.pruned_at = trial, epochs, None

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        value = (logs or {}).get(METRIC)
        if value is None:
            return
        self.trial.report(float(value), epoch)
        if epoch + 1 < self.epochs and self.trial.should_prune():
            self.pruned_at = epoch
            self.model.stop_training = True


def _log_hparams(run_dir: Path, settings: dict[str, Any]) -> None:
    """The trial's settings as a session of TensorBoard's HParams dashboard: its metric is the validation
    accuracy the TensorBoard callback logs under RUN_DIR/logs/validation."""
    import tensorflow as tf
    from tensorboard.plugins.hparams import api as hparams_api

    with tf.summary.create_file_writer(str(run_dir / "logs")).as_default():
        hparams_api.hparams({name: value for name, value in settings.items()}, trial_id=run_dir.name)


def _storage(url: str, attempts: int = 6) -> optuna.storages.RDBStorage:
    """The study's database. Heartbeats mark a killed worker's trial failed, and RetryHeartbeatStaleTrialCallback
    gives it to the next worker, which resumes its run directory. SQLite waits up to a minute for the lock that another
    worker holds, rather than failing.

    Workers started together against a new database race to create its tables and stamp its schema version; Optuna
    does not serialise that, so the loser sees a table or a version row that was not there when it looked. It tries
    again, and then finds the schema made."""
    engine = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {"pool_pre_ping": True}
    for attempt in range(1, attempts):
        try:
            return _rdb_storage(url, engine)
        except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.OperationalError):
            time.sleep(random.uniform(0.1, 0.5) * attempt)
    return _rdb_storage(url, engine)


def _rdb_storage(url: str, engine: dict[str, Any]) -> optuna.storages.RDBStorage:
    with warnings.catch_warnings():  # heartbeats and retries have been marked experimental since Optuna 2.8
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        retry = optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=2, inherit_intermediate_values=True)
        return optuna.storages.RDBStorage(url, engine_kwargs=engine, heartbeat_interval=HEARTBEAT,
                                          grace_period=GRACE, heartbeat_stale_trial_callback=retry)


def open_study(name: str, storage: str) -> optuna.Study:
    """The study `name` in `storage` (an SQLAlchemy URL), made if it is not there: maximises validation accuracy,
    prunes with the median rule after 3 whole trials and 1 epoch of each."""
    return optuna.create_study(study_name=name, storage=_storage(storage), direction="maximize", load_if_exists=True,
                               pruner=optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=1))


def _run_dir(out: Path, trial: optuna.Trial) -> Path:
    """A retried trial (its worker died) inherits the user attributes of the trial it retries, its run directory
    among them, and resumes that run."""
    return out / trial.user_attrs.get("run_dir", f"trial-{trial.number:04d}")


def objective(base: TrainConfig, space: dict[str, Any], out: Path) -> Callable[[optuna.Trial], float]:
    """Trains one trial's run; its value is the best validation accuracy of its epochs. A pruned trial is
    reported pruned, with its run left finished."""
    def run_trial(trial: optuna.Trial) -> float:
        settings = suggest(trial, space)
        run_dir = _run_dir(out, trial)
        trial.set_user_attr("run_dir", run_dir.name)  # before training: a retry of this trial resumes it
        config = trial_config(base, settings, run_dir)
        record = {"study": trial.study.study_name, "trial": trial.number, "settings": settings, "state": "running",
                  "worker": {"host": os.uname().nodename, "pid": os.getpid()}, "started": time.time()}
        run_dir.mkdir(parents=True, exist_ok=True)
        write_json(run_dir / TRIAL_FILE, record)
        _log_hparams(run_dir, settings)
        pruning = PruneByEpoch(trial, config.epochs)
        keras.backend.clear_session()
        result = train.run(config, callbacks=[pruning])
        scores = result["history"].get(METRIC) or [0.0]
        record.update(state="pruned" if pruning.pruned_at is not None else "complete", value=max(scores),
                      epochs_trained=len(scores), ended=time.time())
        write_json(run_dir / TRIAL_FILE, record)
        if pruning.pruned_at is not None:
            raise optuna.TrialPruned(f"pruned after epoch {pruning.pruned_at + 1}: {METRIC} {scores[-1]:.4f}")
        return max(scores)

    return run_trial


@dataclasses.dataclass
class StudySummary:
    """What a study has done: trials by state, the best, and the epochs pruning saved."""

    name: str
    complete: int
    pruned: int
    failed: int
    epochs_trained: int
    epochs_asked: int
    best: dict[str, Any] | None

    @property
    def finished(self) -> int:
        return self.complete + self.pruned

    @property
    def pruned_share(self) -> float:
        return self.pruned / self.finished if self.finished else 0.0

    @property
    def epochs_saved(self) -> float:
        return 1 - self.epochs_trained / self.epochs_asked if self.epochs_asked else 0.0

    def lines(self) -> list[str]:
        lines = [f"study {self.name}: {self.finished} trials finished ({self.complete} complete, {self.pruned} "
                 f"pruned, {self.pruned_share:.0%}), {self.failed} failed",
                 f"epochs trained: {self.epochs_trained} of {self.epochs_asked} asked: pruning saved "
                 f"{self.epochs_saved:.0%} of the compute"]
        if self.best:
            lines.append(f"best: {self.best['run_dir']} ({METRIC} {self.best['value']:.4f}): "
                         + _settings(self.best["params"]))
            lines.append(f"  export it: emopy export --run {self.best['path']} --model-base-path BASE")
        return lines


def summarize(study: optuna.Study, out: Path) -> StudySummary:
    """The study's trials as StudySummary; epochs from the trials' own run directories (a pruned run stops
    early, which is the compute it saves)."""
    trials = study.get_trials(deepcopy=False)
    states = optuna.trial.TrialState
    finished = [t for t in trials if t.state in (states.COMPLETE, states.PRUNED)]
    trained = asked = 0
    for trial in finished:
        run_dir = out / trial.user_attrs.get("run_dir", f"trial-{trial.number:04d}")
        trained += len(read_history(run_dir).get("epoch", []))
        if (run_dir / CONFIG_FILE).exists():
            asked += RunDir.open(run_dir).settings["epochs"]
    best = None
    complete = [t for t in trials if t.state == states.COMPLETE]
    if complete:
        top = max(complete, key=lambda t: t.value)
        run_dir = top.user_attrs.get("run_dir", f"trial-{top.number:04d}")
        best = {"number": top.number, "value": top.value, "params": top.params, "run_dir": run_dir,
                "path": str(out / run_dir)}
    return StudySummary(study.study_name, len(complete), sum(t.state == states.PRUNED for t in trials),
                        sum(t.state == states.FAIL for t in trials), trained, asked, best)


def default_storage(out: Path) -> str:
    return f"sqlite:///{(out / STUDY_FILE).resolve()}"


def run(base: TrainConfig, models_searched: Sequence[str], trials: int, timeout: float | None = None,
        study_name: str = DEFAULT_STUDY, storage: str | None = None) -> StudySummary:
    """Runs trials of the study until it has `trials` finished ones (counting other workers'), or `timeout`
    seconds pass; `base.out` is the study's folder. Prints the summary and returns it."""
    if trials < 1:
        raise ValueError(f"--trials {trials}: a study needs at least one trial")
    out = Path(base.out).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    space = search_space(base.dataset, models_searched)
    # Mistakes every trial would make are refused before the study starts: a dataset not built, a model that
    # cannot read it.
    data.check_built(base.data_config)
    for name in models_searched:
        data.input_kind_check(base.data_config, dataclasses.replace(base, model=name).input_spec)
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # our own line per trial replaces Optuna's
    study = open_study(study_name, storage or default_storage(out))
    stop = optuna.study.MaxTrialsCallback(trials, states=(optuna.trial.TrialState.COMPLETE,
                                                          optuna.trial.TrialState.PRUNED))
    if summarize(study, out).finished < trials:
        study.optimize(objective(base, space, out), timeout=timeout, callbacks=[stop, _print_trial],
                       gc_after_trial=True)
    summary = summarize(study, out)
    for line in summary.lines():
        print(line)
    write_json(out / "study.json", {**dataclasses.asdict(summary), "storage": storage or STUDY_FILE,
                                    "space": {k: dataclasses.asdict(v) if isinstance(v, Range) else list(v)
                                              for k, v in space.items()}})
    return summary


def _print_trial(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
    value = f"{trial.value:.4f}" if trial.value is not None else "-"
    print(f"trial {trial.number} {trial.state.name.lower()}: {METRIC} {value} "
          f"({_settings(trial.params)})", flush=True)


def _settings(params: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())
