"""Prints benchmarks/rare_classes.sh's comparison: a vgg_small run trained also on InfoGAN faces of disgust and
contempt (`generated`) beside the same recipe without them (`baseline`), on FER+ PublicTest and on wild_dev's real
photos, with the ratio generated / baseline.

Run: python benchmarks/rare_classes.py RUNS_DIR     (after benchmarks/rare_classes.sh INFOGAN_RUN RUNS_DIR)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ARMS = ("baseline", "generated")
RARE = ("disgust", "contempt")


def _read(runs: Path, arm: str, what: str) -> dict:
    path = runs / f"{arm}-{what}.json"
    if not path.exists():
        raise SystemExit(f"rare_classes: {path} is missing: run benchmarks/rare_classes.sh INFOGAN_RUN {runs} first")
    return json.loads(path.read_text())


def _row(name: str, values: list[float | None], digits: int = 3) -> str:
    shown = ["-" if v is None else f"{v:.{digits}f}" for v in values]
    ratio = f"{values[1] / values[0]:.2f}" if None not in values and values[0] else "-"
    return f"{name:<34}{shown[0]:>10}{shown[1]:>11}{ratio:>8}"


def main() -> None:
    runs = Path(sys.argv[1] if len(sys.argv) > 1 else "runs-rare")
    public = {arm: _read(runs, arm, "publictest") for arm in ARMS}
    wild = {arm: _read(runs, arm, "wild_dev") for arm in ARMS}
    added = json.loads((runs / "generated" / "config.json").read_text())["label_counts"].get("generated", {})
    print(f"vgg_small on FER+, one recipe; `generated` also trained on {added.get('classes')} InfoGAN faces")
    print(f"{'':<34}{'baseline':>10}{'generated':>11}{'ratio':>8}")
    print(_row("PublicTest accuracy", [public[arm]["accuracy"] for arm in ARMS]))
    print(_row("PublicTest macro F1", [public[arm]["macro_f1"] for arm in ARMS]))
    for name in public["baseline"]["per_class"]:
        support = public["baseline"]["per_class"][name].get("support")
        print(_row(f"PublicTest recall: {name} ({support})",
                   [public[arm]["per_class"][name]["recall"] for arm in ARMS]))
    print(_row("wild_dev accuracy, all photos", [wild[arm]["accuracy"] for arm in ARMS]))
    for name in RARE:
        per_class = [wild[arm]["per_class"].get(name) for arm in ARMS]
        if all(per_class) and per_class[0].get("support"):
            print(_row(f"wild_dev recall: {name} ({per_class[0]['support']})", [c["recall"] for c in per_class]))
        else:
            print(f"{'wild_dev recall: ' + name:<34}{'no photos of it':>29}")
        answered = [int(sum(row[list(wild[arm]['confusion_columns']).index(name)]
                            for row in wild[arm]["confusion_matrix"])) for arm in ARMS]
        print(_row(f"wild_dev photos answered {name}", answered, digits=0))


if __name__ == "__main__":
    main()
