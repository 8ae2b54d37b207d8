"""README.md is a front page and docs/ holds a page per topic: every relative link between them resolves, to a file
and, where it names one, to a heading's anchor (GitHub's slugs); the front page stays short; its Python example runs."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
PAGES = sorted((ROOT / "docs").glob("*.md"))
FRONT_PAGE_MOST_LINES = 250
TOPICS = ("datasets", "training", "serving", "prediction", "models", "benchmarks", "design")

FENCE = re.compile(r"^\s*```")
# [text](target) and ![alt](target); a target may hold a title after a space, which is not part of the path.
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
CODE_SPAN = re.compile(r"(`+).+?\1")


def prose_lines(path: Path, *, code_spans: bool = False) -> list[tuple[int, str]]:
    """(line number, text) of the lines outside fenced code blocks; inline code spans blanked unless code_spans
    (a heading keeps them: `emopy train` is part of the anchor of "Training: `emopy train`")."""
    lines, fenced = [], False
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if FENCE.match(line):
            fenced = not fenced
        elif not fenced:
            lines.append((number, line if code_spans else CODE_SPAN.sub(lambda span: " " * len(span.group()), line)))
    return lines


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped (letters, digits, _ and - kept), spaces as -."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link's text stays, its target goes
    return re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every heading's anchor in `path`; a repeated one gets -1, -2, ... as on GitHub."""
    found, repeats = set(), {}
    for _, line in prose_lines(path, code_spans=True):
        heading = re.match(r"#{1,6}\s+(.*?)\s*#*\s*$", line)
        if heading:
            base = slug(heading.group(1))
            found.add(f"{base}-{repeats[base]}" if base in repeats else base)
            repeats[base] = repeats.get(base, 0) + 1
    return found


def relative_links(path: Path) -> list[tuple[int, str]]:
    return [(number, target) for number, line in prose_lines(path) for target in LINK.findall(line)
            if not re.match(r"[a-z][a-z0-9+.-]*:", target)]  # http:, https:, mailto: are not files here


def broken_links(path: Path, root: Path = ROOT) -> list[str]:
    """One line per relative link in `path` that names no file, or no heading of the file it names."""
    broken = []
    for number, target in relative_links(path):
        file_part, _, anchor = target.partition("#")
        linked = (path.parent / file_part).resolve() if file_part else path
        where = f"{os.path.relpath(path, root)}:{number}: {target}"
        if not linked.exists():
            broken.append(f"{where} (no such file)")
        elif anchor and linked.suffix == ".md" and anchor not in anchors(linked):
            broken.append(f"{where} (no heading with that anchor in {os.path.relpath(linked, root)})")
    return broken


def test_the_slugs_are_githubs():
    assert slug("Training: `emopy train`") == "training-emopy-train"
    assert slug("Face detectors: `--detector {auto,hog,cnn}`") == "face-detectors---detector-autohogcnn"
    assert slug("The face core: `emopy_tfds/faces.py`") == "the-face-core-emopy_tfdsfacespy"
    assert slug("Datasets: fer2013 and FER+") == "datasets-fer2013-and-fer"


@pytest.mark.parametrize("path", [README, *PAGES], ids=lambda path: str(path.relative_to(ROOT)))
def test_every_relative_link_resolves(path):
    assert broken_links(path) == []


def test_the_link_check_can_fail(tmp_path):
    (tmp_path / "docs").mkdir()
    page = tmp_path / "docs" / "page.md"
    page.write_text("# A page\n\n## Its part: `code`\n\n[ok](#its-part-code) [ok](page.md#a-page) "
                    "[gone](missing.md) [wrong](#no-such-part) `[in code](missing.md)`\n\n```\n[fenced](missing.md)\n```\n")
    assert relative_links(page) == [(5, "#its-part-code"), (5, "page.md#a-page"), (5, "missing.md"),
                                    (5, "#no-such-part")]
    assert [line.split(": ", 1)[1] for line in broken_links(page, tmp_path)] == [
        "missing.md (no such file)", "#no-such-part (no heading with that anchor in docs/page.md)"]


def test_the_front_page_is_short_and_links_every_topic_page():
    lines = README.read_text().splitlines()
    assert len(lines) <= FRONT_PAGE_MOST_LINES, f"README.md has {len(lines)} lines; move detail to a docs/ page"
    linked = {target.partition("#")[0] for _, target in relative_links(README)}
    for topic in TOPICS:
        assert (ROOT / "docs" / f"{topic}.md").is_file()
        assert f"docs/{topic}.md" in linked, f"README.md does not link docs/{topic}.md"
    # .ci/run runs README's test line verbatim; the quick start's install line is what a newcomer copies first.
    assert "pip install -e . && emopy quickstart" in lines
    assert sum(line.startswith('pip install -e ".[test]" && pytest') for line in lines) == 1


def readme_python_example() -> str:
    """The Python example of README's "Python" section: its first ```python block."""
    section = README.read_text().split("\n## Python", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_the_readmes_python_example_runs_as_printed(tmp_path, monkeypatch, capsys):
    import cv2
    import numpy as np

    from emopy_tfds.data import sample_photo

    code = readme_python_example()
    assert len(code.splitlines()) <= 12 and "emopy.predict(" in code and "emopy.Recognizer" in code
    # The files it names: a photo, and a two-second clip of that photo's face drifting across the frame.
    shutil.copy(sample_photo(), tmp_path / "photo.jpg")
    frame = cv2.imread(str(tmp_path / "photo.jpg"))
    height, width = frame.shape[:2]
    writer = cv2.VideoWriter(str(tmp_path / "clip.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 10, (width, height))
    for index in range(20):
        writer.write(np.roll(frame, 2 * index, axis=1))
    writer.release()
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(code, "README.md (Python)", "exec"), namespace)
    printed = capsys.readouterr().out
    assert "happy" in printed and "top_emotion" in printed
    assert list(namespace["table"]["top_emotion"]) == ["happy"]
    clip = namespace["clip"]
    assert sorted(clip["frame"]) == [0, 5, 10, 15] and set(clip["face_id"]) == {0}
