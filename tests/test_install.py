"""The install brings everything later stages rely on: the tfds command line, tfds.testing, Beam, TF Serving; and
emopy's wheel holds every file its packages read (shipped models, sample photo, builders' dummy data), so a wheel
install classifies a photo with nothing from the repository."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tomllib
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
MAX_WHEEL_BYTES = 50_000_000


# `tfds` and the stack's imports in processes of their own, about 22 s: CI runs it with the scale checks.
@pytest.mark.scale
def test_stack_imports_and_tfds_command_line_runs():
    script = (
        "import apache_beam, tensorflow as tf, tf_keras, tensorflow_datasets as tfds\n"
        "import tensorflow_datasets.testing\n"
        "from tensorflow_serving.apis import prediction_service_pb2_grpc, model_service_pb2_grpc\n"
        "assert tf.__version__.startswith('2.21.'), tf.__version__\n"
        "assert tf_keras.__version__.startswith('2.21.'), tf_keras.__version__\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=300)
    result = subprocess.run(["tfds", "build", "--help"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "--manual_dir" in result.stdout


def _package_folders() -> dict[str, str]:
    """Each top-level folder pyproject installs, and where its files go in the wheel: package-dir maps models/ to
    emopy/models/, and so on; emopy/ and emopy_tfds/ stay as they are."""
    setuptools = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    folders = {package: package for package in setuptools["packages"] if "." not in package}
    folders.update({folder: package.replace(".", "/") for package, folder in setuptools["package-dir"].items()})
    return folders


def _package_files() -> dict[str, str]:
    """Every file the repository holds under the packages pyproject installs, as posix paths from the repository
    root, and each one's path in the wheel: git's tracked files, so nothing another process is writing counts."""
    folders = _package_folders()
    listed = subprocess.run(["git", "ls-files", "-z", "--", *folders], cwd=REPO, capture_output=True, timeout=60)
    assert listed.returncode == 0, f"git ls-files failed in {REPO}: {listed.stderr.decode()[-500:]}"
    files = [name for name in listed.stdout.decode().split("\0") if name and (REPO / name).is_file()]
    assert {name.split("/", 1)[0] for name in files} == set(folders), folders
    return {name: "/".join([folders[name.split("/", 1)[0]], name.split("/", 1)[1]]) for name in files}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """`pip wheel` of a copy of the repository's tracked files: what a clean checkout builds, with no build/ or
    *.egg-info left in (or reused from) the shared working tree."""
    source = tmp_path_factory.mktemp("source")
    for name in ["pyproject.toml", "README.md", *_package_files()]:
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, source / name)
    out = tmp_path_factory.mktemp("wheel")
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
                            "-q", "-w", str(out), str(source)], capture_output=True, text=True, timeout=600)
    assert built.returncode == 0, built.stderr[-3000:]
    (path,) = out.glob("emopy-*.whl")
    return path


def test_the_wheel_holds_every_file_of_the_packages_and_stays_small(wheel):
    # Data files included: the shipped models (serving/shipped/**), the sample photo, each builder's dummy_data tree
    # (its *_test.py ships), README.md and CITATIONS.bib (TFDS reads them); whatever data file comes next too.
    held = set(zipfile.ZipFile(wheel).namelist())
    missing = [name for name, in_wheel in _package_files().items() if in_wheel not in held]
    assert not missing, f"{len(missing)} files missing from {wheel.name} (pyproject's package-data): {missing[:10]}"
    assert wheel.stat().st_size <= MAX_WHEEL_BYTES, f"{wheel.name}: {wheel.stat().st_size} bytes"


def test_a_wheel_install_classifies_the_packages_photo_from_a_users_project(wheel, tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(venv)], check=True,
                   timeout=300)
    python = venv / "bin" / "python"
    installed = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps",
                                "--no-index", "--ignore-installed", "-q", str(wheel)],
                               capture_output=True, text=True, timeout=600)
    assert installed.returncode == 0, installed.stderr[-3000:]
    # TensorFlow and the rest come from the environment running the tests, behind the wheel's emopy. A venv's
    # system site is its base interpreter's, not this environment's, so a .pth line names it. (A path line adds the
    # folder without running its .pth files: an editable emopy there stays out.)
    site_packages = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                                        capture_output=True, text=True, check=True, timeout=300).stdout.strip())
    outer = {sysconfig.get_path("purelib"), sysconfig.get_path("platlib")}
    (site_packages / "zz_test_environment.pth").write_text("".join(f"{path}\n" for path in sorted(outer)))

    script = (
        "import json, sys\n"
        "from pathlib import Path\n"
        "import emopy, emopy_tfds\n"
        "from emopy import models, pipeline, serving\n"
        "from emopy_tfds.data import sample_photo\n"
        "from emopy.serving import predict, shipped\n"
        "with predict.Recognizer.default() as recognizer:\n"
        "    table = recognizer.predict_image(sample_photo())\n"
        "paths = [m.__file__ for m in (emopy, emopy_tfds, models, pipeline, serving)] + [str(sample_photo()), "
        "str(shipped.base_path())]\n"
        "print(json.dumps({'prefix': sys.prefix, 'paths': paths, 'top': list(table['top_emotion']),"
        " 'happy': float(table['happy'].max())}))\n"
    )
    environment = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    environment["TF_CPP_MIN_LOG_LEVEL"] = "2"
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    # A user's project: its own models.py, serving/ and pipeline/ come first on the path and must not be picked up.
    trap = "raise ImportError('the user\\'s own module was imported instead of emopy\\'s')\n"
    (outside / "models.py").write_text(trap)
    for package in ("serving", "pipeline"):
        (outside / package).mkdir()
        (outside / package / "__init__.py").write_text(trap)
    ran = subprocess.run([str(python), "-c", script], cwd=outside, capture_output=True, text=True, timeout=600,
                         env=environment)
    assert ran.returncode == 0, ran.stderr[-3000:]
    answer = json.loads(ran.stdout.strip().splitlines()[-1])
    assert Path(answer["prefix"]).resolve() == venv.resolve()
    for path in answer["paths"]:
        assert Path(path).resolve().is_relative_to(venv.resolve()), f"{path}: not the wheel's copy in {venv}"
    assert answer["top"] == ["happy"] and answer["happy"] >= 0.9, answer
