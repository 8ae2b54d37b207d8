"""The Try page's work: the models it offers, and a photo or webcam frame through one, as a picture and bars.

Offered: the shipped models, the exports under --runs/exports, and the finished runs under --runs. A run is
exported into --runs/exports/RUN on first use (`emopy export`'s own code), so what is tried is what is served.
"""

from __future__ import annotations

import html
import threading
from pathlib import Path

import numpy as np
import pandas as pd

from emopy_tfds import faces
from emopy.serving import export, shipped
from emopy.serving.recognizer import Recognizer, annotate
from emopy.studio.runs import EXPORTS, RunsFolder, run_state

SHIPPED, EXPORT, RUN = "shipped", "export", "run"


def model_choices(folder: RunsFolder) -> list[str]:
    """"shipped: NAME" for each shipped model (the default first), "export: NAME" for each export base under
    --runs/exports, "run: NAME" for each finished run."""
    names = sorted(shipped.SHIPPED, key=lambda name: name != shipped.DEFAULT)
    choices = [f"{SHIPPED}: {name}" for name in names]
    choices += [f"{EXPORT}: {path.name}" for path in folder.export_paths()]
    choices += [f"{RUN}: {folder.name_of(path)}" for path in folder.run_paths() if run_state(path) == "finished"]
    return choices


class TryModels:
    """One Recognizer per chosen model, made on first use and kept (loading costs far more than a photo)."""

    def __init__(self, folder: RunsFolder):
        self.folder = folder
        self._recognizers: dict[str, Recognizer] = {}
        self._lock = threading.Lock()

    def recognizer(self, choice: str) -> Recognizer:
        with self._lock:
            if choice not in self._recognizers:
                self._recognizers[choice] = Recognizer.from_export(self._export_of(choice))
            return self._recognizers[choice]

    def _export_of(self, choice: str) -> Path:
        kind, _, name = (choice or "").partition(": ")
        if kind == SHIPPED and name in shipped.SHIPPED:
            return shipped.base_path(name)
        if kind == EXPORT:
            return self.folder.resolve(f"{EXPORTS}/{name}")
        if kind == RUN:
            run = self.folder.resolve(name)
            if run_state(run) != "finished":
                raise ValueError(f"{name} is not a finished run")
            base = self.folder.export_base(name)
            if not base.is_dir():
                export.export(run, base)
            return base
        raise ValueError(f"{choice!r} is not a model the studio offers")

    def answer(self, image: str | np.ndarray, choice: str) -> tuple[np.ndarray, pd.DataFrame]:
        """The annotated picture and the face table of a photo file (refused before decoding if its header
        declares more pixels than the model's limit) or a webcam frame (RGB array)."""
        recognizer = self.recognizer(choice)
        rgb = faces.load_image(image, max_pixels=recognizer.max_pixels)
        table = recognizer.predict_frame(rgb, file=Path(image).name if isinstance(image, str) else "<webcam>")
        return annotate(rgb, table), table

    def close(self) -> None:
        for recognizer in self._recognizers.values():
            recognizer.close()


def face_bars(table: pd.DataFrame, classes: tuple[str, ...]) -> str:
    """Each face's probabilities as bars, its top emotion first, with valence, arousal and positive and negative
    valence: HTML for the page."""
    if table.empty:
        return '<p class="emopy-none">No face found.</p>'
    parts = []
    for _, row in table.iterrows():
        top = str(row["top_emotion"])
        bars = "".join(
            f'<div class="emopy-bar"><span class="emopy-class">{html.escape(name)}</span>'
            f'<span class="emopy-track"><span class="emopy-fill" style="width:{float(row[name]) * 100:.1f}%">'
            f'</span></span><span class="emopy-value">{float(row[name]):.0%}</span></div>'
            for name in sorted(classes, key=lambda name: -float(row[name])))
        parts.append(
            f'<div class="emopy-face" data-face="{int(row["face_id"])}"><h4>Face #{int(row["face_id"])}: '
            f'<span class="emopy-top">{html.escape(top)}</span> {float(row[top]):.0%}</h4>{bars}'
            f'<p class="emopy-affect">valence <b>{float(row["valence"]):+.2f}</b> · arousal '
            f'<b>{float(row["arousal"]):+.2f}</b> · positive valence <b>{float(row["positive_valence"]):.2f}</b> · '
            f'negative valence <b>{float(row["negative_valence"]):.2f}</b></p></div>')
    return "".join(parts)
