"""CK+ end to end: the three layouts, zips and folders, faces found or reported, files, folds and AUs."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from emopy_tfds import labels
from emopy_tfds.ck_plus import ck_plus_beam, ck_plus_files
from emopy_tfds.ck_plus.dummy_data_generation import SequenceSpec, write_tree

from builds import IN_MEMORY, build_here, emopy_build_here, load_split
from builds import emopy_build as build_dataset

SPECS = (
    SequenceSpec("S005", "001", frames=5, emotion=3, facs=((9, 2), (17, 3))),
    SequenceSpec("S010", "002", frames=3, emotion=None, facs=((12, 3),)),  # unlabelled
    SequenceSpec("S011", "001", frames=4, emotion=5, facs=((6, 3), (12, 4)), colour=True),
    SequenceSpec("S022", "003", frames=3, emotion=1, face="none", ck_landmarks=False),  # must be reported
    SequenceSpec("S034", "001", frames=3, emotion=7, face="upside-down"),  # falls back to CK+'s landmarks
)


def emopy_build(*args: str) -> subprocess.CompletedProcess:
    return build_dataset("ck_plus", *args)


def load(data_dir: Path, config: str) -> list[dict]:
    return load_split(data_dir, f"ck_plus/{config}")


@pytest.fixture(scope="module")
def trees(tmp_path_factory, astronaut) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("ck_plus")
    return {layout: write_tree(folder / layout, SPECS, layout=layout, photo=astronaut)
            for layout in ("zips", "folders", "emopy")}


def _contents(path: str | None) -> bytes | None:
    return None if path is None else Path(path).read_bytes()


def test_each_layout_indexes_the_same_sequences_and_files(trees, tmp_path):
    """The zips, the extracted folders and the original Emopy layout lead the builder to the same frames and label
    files, byte for byte: so one full build (the folders, below; the zips in the `tfds build` test) covers all."""
    import tensorflow_datasets as tfds

    def indexed(layout: str) -> list[tuple]:
        manager = tfds.download.DownloadManager(download_dir=tmp_path / layout, manual_dir=trees[layout])
        sequences = ck_plus_files.index_sequences(ck_plus_files.find_roots(trees[layout], manager.extract))
        return [(s.name, [_contents(f) for f in s.frames], [_contents(f) for f in s.landmark_files],
                 _contents(s.emotion_file), _contents(s.facs_file)) for s in sequences]

    folders = indexed("folders")
    assert [name for name, *_ in folders] == ["S005/001", "S010/002", "S011/001", "S022/003", "S034/001"]
    assert indexed("zips") == folders
    emopy_layout = indexed("emopy")  # no FACS or landmark files in the original Emopy layout
    assert [(name, frames, emotion) for name, frames, _, emotion, _ in emopy_layout] == [
        (name, frames, emotion) for name, frames, _, emotion, _ in folders]


# `emopy build` with 2 worker processes, about 50 s; the configs build in this process in the builder's own test: CI
# runs it with the scale checks.
@pytest.mark.scale
def test_emotion_config_from_the_folders(tmp_path, trees):
    result = emopy_build("--manual-dir", str(trees["folders"]), "--data-dir", str(tmp_path), "--workers", "2")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Prism" not in result.stderr
    assert "left out 1 sequence(s) with no face and no CK+ landmarks: S022/003" in result.stdout
    examples = load(tmp_path, "emotion")
    by_sequence = {}
    for example in examples:
        by_sequence.setdefault(f"{example['subject']}/{example['sequence']}", []).append(example)
    # Labelled sequences only; the faceless one is left out, and reported, not silently dropped.
    assert sorted(by_sequence) == ["S005/001", "S011/001", "S034/001"]
    assert sorted(e["frame"] for e in by_sequence["S005/001"]) == [1, 3, 4, 5]
    for name, label in (("S005/001", 3), ("S011/001", 5), ("S034/001", 7)):
        frames = sorted(by_sequence[name], key=lambda e: e["frame"])
        assert frames[0]["label"] == 0  # the first frame is neutral
        assert all(e["label"] == label for e in frames[1:])
    for example in by_sequence["S005/001"] + by_sequence["S011/001"]:  # a grey and a colour sequence
        assert np.array(example["image"]).shape == (96, 96, 1)
        assert not example["face_from_ck_landmarks"] and example["has_ck_landmarks"]
        # dlib's landmarks and CK+'s own (here: the same face, with 1 px of noise) agree in crop pixels.
        difference = np.linalg.norm(np.array(example["landmarks"]) - np.array(example["ck_landmarks"]), axis=1)
        assert np.median(difference) < 4.0
    assert all(e["face_from_ck_landmarks"] for e in by_sequence["S034/001"])
    metadata = json.loads(next(tmp_path.glob("ck_plus/emotion/1.0.0/metadata.json")).read_text())
    assert metadata["sequences_left_out"] == 1 and metadata["left_out"][0].startswith("S022/003")
    assert json.loads(metadata["face_spec"])["crop_size"] == 96
    assert json.loads(metadata["face_spec"])["detector"] == "auto"  # the default, recorded


# A build of its own, about 25 s; training_data and the builder's test build the config too: CI runs it with the scale
# checks.
@pytest.mark.scale
def test_sequences_config(tmp_path, trees):
    # Built in this process (builds.build_here): `emopy build`'s worker processes are tested above, and facs is built
    # by `tfds build` below (from the zips, which lead the builder to the same files as the folders).
    build_here("ck_plus", trees["folders"], tmp_path, "sequences")
    sequences = {f"{e['subject']}/{e['sequence']}": e for e in load(tmp_path, "sequences")}
    assert sorted(sequences) == ["S005/001", "S011/001", "S034/001"]
    assert sequences["S005/001"]["frame_numbers"] == [1, 2, 3, 4, 5]
    assert np.array(sequences["S005/001"]["frames"]).shape == (5, 96, 96, 1)
    assert np.array(sequences["S011/001"]["landmarks"]).shape == (4, 68, 2)


def test_malformed_label_file_stops_the_build_naming_it(tmp_path, astronaut):
    tree = write_tree(tmp_path / "manual", SPECS[:1], photo=astronaut)
    emotion_file = next((tree / "Emotion").rglob("*_emotion.txt"))
    emotion_file.write_text("   9.0000000e+00\n")
    result = emopy_build_here("ck_plus", "--manual-dir", str(tree), "--data-dir", str(tmp_path / "data"))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert f"{emotion_file}: label 9 is not one of 0..7" in result.stderr
    emotion_file.write_text("happy\n")
    result = emopy_build_here("ck_plus", "--manual-dir", str(tree), "--data-dir", str(tmp_path / "data"))
    assert result.returncode == 1 and f"{emotion_file}: expected numbers" in result.stderr


def test_label_and_facs_parsing():
    assert ck_plus_files.parse_emotion("   3.0000000e+00\n", "a") == 3
    for bad in ("3.5", "1 2", "", "-1"):
        with pytest.raises(ck_plus_files.CkPlusFileError, match="^a: "):
            ck_plus_files.parse_emotion(bad, "a")
    text = "   1.0000000e+00   0.0000000e+00\n   2.5000000e+01   3.0000000e+00\n\n"
    assert ck_plus_files.parse_facs(text, "f") == [(1, 0), (25, 3)]
    with pytest.raises(ck_plus_files.CkPlusFileError, match="^f, line 2: expected 'AU intensity'"):
        ck_plus_files.parse_facs("1 0\n7\n", "f")
    with pytest.raises(ck_plus_files.CkPlusFileError, match="expected 68 'x y' pairs"):
        ck_plus_files.parse_landmarks("1 2 3 4", "l")


def test_missing_data_lists_what_is_expected(tmp_path):
    with pytest.raises(FileNotFoundError) as error:
        ck_plus_files.find_roots(tmp_path, extract=lambda path: path)
    for name in ("extended-cohn-kanade-images.zip", "cohn-kanade-images", "images/Sxxx/yyy", str(tmp_path)):
        assert name in str(error.value)


def test_subject_folds_are_disjoint_deterministic_and_balanced():
    subjects = [f"S{n:03d}" for n in (5, 10, 11, 14, 22, 26, 28, 29, 32, 34, 35, 37, 42, 44, 45, 46, 50, 51, 52)]
    folds = ck_plus_files.subject_folds(subjects, k=10)
    assert set(folds) == set(subjects) and set(folds.values()) == set(range(10))
    assert ck_plus_files.subject_folds(list(reversed(subjects)) + subjects[:3], k=10) == folds
    sizes = np.bincount(list(folds.values()))
    assert sizes.max() - sizes.min() <= 1


def test_frames_kept_by_each_config():
    assert ck_plus_beam.frames_to_use("emotion", 10, last_frames=3, max_length=0) == [0, 7, 8, 9]
    assert ck_plus_beam.frames_to_use("emotion", 3, last_frames=3, max_length=0) == [0, 1, 2]
    assert ck_plus_beam.frames_to_use("facs", 10, last_frames=3, max_length=0) == [9]
    assert ck_plus_beam.frames_to_use("sequences", 30, last_frames=3, max_length=8)[::7] == [0, 29]
    assert len(ck_plus_beam.frames_to_use("sequences", 30, last_frames=3, max_length=8)) == 8


def test_action_unit_criteria_of_the_ck_plus_paper():
    assert labels.emotions_consistent_with([(12, 3), (6, 2)]) == ["happiness"]
    assert labels.emotions_consistent_with([23, 24]) == ["anger"]
    assert labels.emotions_consistent_with([1, 2, 4]) == ["fear", "surprise"]
    assert "fear" in labels.emotions_consistent_with([(1, 0), (2, 0), (5, 5)])  # AU 5 at E: AU 4 may be absent
    assert "surprise" not in labels.emotions_consistent_with([(5, 4)])  # AU 5 stronger than B
    assert labels.emotions_consistent_with([6, 15]) == ["sadness"]
    assert labels.emotions_consistent_with([14]) == ["contempt"]
    assert labels.emotions_consistent_with([]) == []


@pytest.mark.scale  # `tfds build` in a process of its own, about 40 s: CI runs it with the scale checks
def test_tfds_build_command_line(tmp_path, trees):
    builder_folder = Path(ck_plus_files.__file__).parent
    result = subprocess.run(
        ["tfds", "build", str(builder_folder), "--config", "facs", "--manual_dir", str(trees["zips"]),
         "--data_dir", str(tmp_path),
         # In its own process (builds.IN_MEMORY): the builder's one DoFn runs in worker processes above.
         f"--beam_pipeline_options=runner=DirectRunner,allow_unsafe_triggers,{IN_MEMORY}"],
        capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    facs = {f"{e['subject']}/{e['sequence']}": e for e in load(tmp_path, "facs")}
    assert sorted(facs) == ["S005/001", "S010/002", "S011/001", "S034/001"]  # unlabelled included
    assert facs["S010/002"]["label"] == -1 and facs["S010/002"]["action_units"] == [12]
    assert facs["S005/001"]["action_units"] == [9, 17] and facs["S005/001"]["au_intensities"] == [2, 3]
    assert facs["S005/001"]["frame"] == 5  # the peak frame
    metadata = json.loads(next(tmp_path.glob("ck_plus/facs/1.0.0/metadata.json")).read_text())
    assert metadata["left_out"] == ["S022/003: no face found and no CK+ landmarks file"]


def test_a_48_pixel_variant_for_joint_training_with_fer2013(tmp_path):
    import tensorflow_datasets as tfds

    import emopy_tfds  # noqa: F401
    from emopy_tfds.ck_plus.ck_plus_dataset_builder import CkPlusConfig
    from emopy_tfds.testing import IN_PROCESS_BEAM

    config = CkPlusConfig(name="emotion48", kind="emotion", crop_size=48)
    builder = tfds.builder("ck_plus", config=config, data_dir=str(tmp_path), detector="hog")
    dummy_data = Path(ck_plus_files.__file__).parent / "dummy_data"
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=str(dummy_data),
                                                                            beam_options=IN_PROCESS_BEAM))
    examples = list(tfds.as_numpy(builder.as_dataset(split="train")))
    assert len(examples) == 8 and examples[0]["image"].shape == (48, 48, 1)
    spec = json.loads(builder.info.metadata["face_spec"])
    assert spec["crop_size"] == 48 and spec["detector"] == "hog"
