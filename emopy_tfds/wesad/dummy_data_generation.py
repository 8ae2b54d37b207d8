"""Writes WESAD subject folders in WESAD's exact layout, with signals of known rates: tests and benchmarks.

Run `python -m emopy_tfds.wesad.dummy_data_generation DIR` to write a small copy to DIR (`emopy build wesad
--manual-dir DIR` then builds it). Signals come from neurokit2's simulators, phase by phase, each with a known heart
rate, breathing rate and number of skin-conductance responses (PHASES), so that tests can check the features the
builder extracts and models have something to learn. The copies are not kept in the repository: a minute of
chest signal is 2.7 MB of float64, as WESAD stores it.
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import pickle
import zipfile
from pathlib import Path
from typing import Sequence

import neurokit2 as nk
import numpy as np

from emopy_tfds.wesad import wesad_files

CHEST_RATE = wesad_files.CHEST_RATE
WRIST_RATES = wesad_files.WRIST_RATES


@dataclasses.dataclass(frozen=True)
class Phase:
    """A stretch of recording in one WESAD label (0: transient; 1..4: baseline, stress, amusement, meditation), with
    the values its signals are simulated at."""

    label: int
    seconds: int  # whole seconds: neurokit2's simulators take them
    heart_rate: float
    respiratory_rate: float
    scr_number: int
    eda_level: float  # µS, the tonic level the phase's responses ride on
    temperature: float  # °C at the phase's start
    temperature_slope: float  # °C a minute
    emg_bursts: int


# Each state with the body's signs of it: stress raises heart and breathing rates and skin-conductance responses,
# as in WESAD's TSST condition; meditation lowers them.
PHASES = {
    0: Phase(0, 10, 70, 14, 1, 3.0, 33.0, 0.0, 0),
    1: Phase(1, 70, 65, 12, 1, 2.0, 33.0, 0.1, 1),
    2: Phase(2, 70, 95, 20, 5, 6.0, 33.5, -0.2, 6),
    3: Phase(3, 70, 78, 16, 3, 4.0, 33.2, 0.0, 3),
    4: Phase(4, 70, 58, 8, 0, 2.5, 33.4, 0.2, 0),
}


@dataclasses.dataclass(frozen=True)
class SubjectSpec:
    """One subject's recording: its phases in order (WESAD label ids, or Phase objects), and a seed."""

    subject: str
    phases: tuple[int | Phase, ...] = (0, 1, 2, 3, 4)
    seed: int = 0
    respiban_seconds: float | None = None  # None: as long as the phases

    def resolved(self) -> list[Phase]:
        return [PHASES[phase] if isinstance(phase, int) else phase for phase in self.phases]


def _exactly(values: np.ndarray, count: int) -> np.ndarray:
    """`values` cut or edge-padded to `count` samples: neurokit2's simulators may return one sample more or less."""
    return values[:count] if len(values) >= count else np.pad(values, (0, count - len(values)), mode="edge")


def _phase_signals(phase: Phase, seed: int) -> dict[str, np.ndarray]:
    """One phase's signals, by WESAD channel ("chest/ECG", "wrist/BVP", ...), each at its WESAD rate."""
    rng = np.random.default_rng(seed)
    seconds = phase.seconds
    n = round(seconds * CHEST_RATE)
    ecg = nk.ecg_simulate(duration=seconds, sampling_rate=CHEST_RATE, heart_rate=phase.heart_rate, method="simple",
                          noise=0.01, random_state=seed)
    resp = nk.rsp_simulate(duration=seconds, sampling_rate=CHEST_RATE, respiratory_rate=phase.respiratory_rate,
                           method="sinusoidal", noise=0.01, random_state=seed)
    eda = phase.eda_level + nk.eda_simulate(duration=seconds, sampling_rate=CHEST_RATE, scr_number=phase.scr_number,
                                            drift=0.0, noise=0.001, random_state=seed)
    emg = nk.emg_simulate(duration=seconds, sampling_rate=CHEST_RATE, burst_number=phase.emg_bursts, noise=0.01,
                          random_state=seed) if phase.emg_bursts else 0.01 * rng.standard_normal(n)
    minutes = np.arange(n) / CHEST_RATE / 60
    temperature = phase.temperature + phase.temperature_slope * minutes + 0.005 * rng.standard_normal(n)
    chest_acc = np.array([0.9, 0.05, -0.3]) + 0.01 * rng.standard_normal((n, 3))

    def wrist(values_at_chest_rate: np.ndarray, rate: int) -> np.ndarray:
        return values_at_chest_rate[::CHEST_RATE // rate] if CHEST_RATE % rate == 0 else np.interp(
            np.arange(round(seconds * rate)) / rate, np.arange(n) / CHEST_RATE, values_at_chest_rate)

    bvp = 50 * nk.ppg_simulate(duration=seconds, sampling_rate=WRIST_RATES["BVP"], heart_rate=phase.heart_rate,
                               random_state=seed, drift=0.0, motion_amplitude=0.0, powerline_amplitude=0.0,
                               burst_amplitude=0.0)
    # neurokit2 adds no noise at 4 Hz: a skin with no responses would read as a flat (unplugged) sensor.
    wrist_eda_count = round(seconds * WRIST_RATES["EDA"])
    wrist_eda = (_exactly(nk.eda_simulate(duration=seconds, sampling_rate=WRIST_RATES["EDA"],
                                          scr_number=phase.scr_number, drift=0.0, noise=0.0, random_state=seed),
                          wrist_eda_count)
                 + 0.5 * phase.eda_level + 0.002 * rng.standard_normal(wrist_eda_count))
    wrist_acc_count = round(seconds * WRIST_RATES["ACC"])
    return {
        "chest/ECG": _exactly(ecg, n), "chest/EMG": _exactly(emg, n), "chest/EDA": _exactly(eda, n),
        "chest/Temp": temperature, "chest/Resp": 5 * _exactly(resp, n), "chest/ACC": chest_acc,
        "label": np.full(n, phase.label, np.int32),
        "wrist/BVP": _exactly(bvp, round(seconds * WRIST_RATES["BVP"])), "wrist/EDA": wrist_eda,
        "wrist/TEMP": wrist(temperature - 1.5, WRIST_RATES["TEMP"]),
        "wrist/ACC": np.round(np.array([60.0, 5.0, -20.0]) + rng.standard_normal((wrist_acc_count, 3))),
    }


def recording(spec: SubjectSpec) -> dict:
    """What WESAD's SX.pkl holds for this subject: {"signal": {"chest": ..., "wrist": ...}, "label": ..., "subject"}."""
    parts = [_phase_signals(phase, spec.seed * 100 + k) for k, phase in enumerate(spec.resolved())]
    joined = {key: np.concatenate([part[key] for part in parts]) for key in parts[0]}
    column = {key: values if values.ndim == 2 else values[:, None] for key, values in joined.items()}
    return {
        "signal": {
            "chest": {name: column[f"chest/{name}"].astype(np.float64) for name in wesad_files.CHEST_CHANNELS},
            "wrist": {name: column[f"wrist/{name}"].astype(np.float64) for name in WRIST_RATES},
        },
        "label": joined["label"],
        "subject": spec.subject,
    }


def _quest_csv(spec: SubjectSpec) -> str:
    """SX_quest.csv's first lines: the protocol's order and each condition's start and end in minutes."""
    names = {1: "Base", 2: "TSST", 3: "Fun", 4: "Medi 1"}
    order, starts, ends, minutes = [], [], [], 0.0
    for phase in spec.resolved():
        if phase.label in names:
            order.append(names[phase.label])
            starts.append(f"{minutes:.2f}")
            ends.append(f"{minutes + phase.seconds / 60:.2f}")
        minutes += phase.seconds / 60
    return "\n".join([f"# Subj;{spec.subject};;;;", "# ORDER;" + ";".join(order), "# START;" + ";".join(starts),
                      "# END;" + ";".join(ends), ""])


def _e4_zip(data: dict) -> bytes:
    """SX_E4_Data.zip: the E4's own CSVs, each starting with its start time and rate."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, rate in WRIST_RATES.items():
            values = data["signal"]["wrist"][name]
            header = ",".join(["1495437325.000000"] * values.shape[1]) + "\n" + ",".join([f"{rate:.6f}"] * values.shape[1])
            rows = "\n".join(",".join(f"{v:.6f}" for v in row) for row in values)
            archive.writestr(f"{name}.csv", f"{header}\n{rows}\n")
        archive.writestr("info.txt", "Generated by emopy's dummy_data_generation, in the E4 export's layout.\n")
    return buffer.getvalue()


def write_subject(root: Path, spec: SubjectSpec, *, data: dict | None = None) -> Path:
    """Writes SX/ under `root` as WESAD has it: SX.pkl, SX_quest.csv, SX_readme.txt, SX_respiban.txt and
    SX_E4_Data.zip. `data` replaces the generated pickle's content (for tests of bad files). Returns SX.pkl."""
    folder = Path(root) / spec.subject
    folder.mkdir(parents=True, exist_ok=True)
    data = recording(spec) if data is None else data
    # Protocol 2, as WESAD pickled it (under Python 2; encoding="latin1" reads both).
    (folder / f"{spec.subject}.pkl").write_bytes(pickle.dumps(data, protocol=2))
    (folder / f"{spec.subject}_quest.csv").write_text(_quest_csv(spec))
    (folder / f"{spec.subject}_readme.txt").write_text(
        f"### Personal information ###\nAge: 27\nHeight (cm): 175\nWeight (kg): 80\nGender: male\n"
        f"Dominant hand: right\n\n### Study pre-requisites ###\nGenerated subject {spec.subject} (emopy).\n")
    (folder / f"{spec.subject}_respiban.txt").write_text(
        '# OpenSignals Text File Format\n# {"generated by": "emopy dummy_data_generation", '
        '"sampling rate": 700, "column": ["nSeq", "DI", "CH1", "CH2", "CH3", "CH4", "CH5", "CH6", "CH7", "CH8"]}\n'
        "# EndOfHeader\n")
    (folder / f"{spec.subject}_E4_Data.zip").write_bytes(_e4_zip(data) if isinstance(data, dict) and "signal" in data
                                                         and isinstance(data["signal"], dict)
                                                         and "wrist" in data["signal"] else b"")
    return folder / f"{spec.subject}.pkl"


def write_dataset(root: Path, specs: Sequence[SubjectSpec]) -> Path:
    """Writes every subject's folder under `root`; returns `root`, a manual dir for `emopy build wesad`."""
    for spec in specs:
        write_subject(root, spec)
    return Path(root)


def states(seconds: int) -> tuple[Phase, ...]:
    """Baseline, stress, amusement and meditation, `seconds` each and nothing between: with 60 s, the windows that
    start on the minute hold one state only, at its phase's known values."""
    return tuple(dataclasses.replace(PHASES[label], seconds=seconds) for label in (1, 2, 3, 4))


def small_dataset(root: Path, subjects: int = 4, phase_seconds: int | None = None) -> Path:
    """`subjects` subjects S2, S3, ... through all four states: as PHASES has them (4 min 50 s each), or each state
    `phase_seconds` long with no transient."""
    phases = states(phase_seconds) if phase_seconds else SubjectSpec("S0").phases
    return write_dataset(root, [SubjectSpec(f"S{2 + k}", phases=phases, seed=k) for k in range(subjects)])


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output", help="folder to write the subject folders to")
    parser.add_argument("--subjects", type=int, default=4)
    args = parser.parse_args(argv)
    print(small_dataset(Path(args.output), args.subjects))


if __name__ == "__main__":
    main()
