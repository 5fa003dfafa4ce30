"""An experiment's recorded plan (variant order, control first, and planned weights), read from
JSON files the CALLER names: the sandbox writes ``ground_truth.json`` beside its send logs, a platform
may write ``experiments.json``. The analysis never looks for files itself; it takes a lookup
(``PlanFiles(files)``, or none: equal split, control by name).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any

from switchboard.analytics.experiments.model import NO_PLAN, ExperimentPlan

PLAN_FILE_NAMES = ("ground_truth.json", "experiments.json")


def plan_files(*dirs: Path) -> list[Path]:
    """The plan files to look for in ``dirs``, in order (each folder's ``PLAN_FILE_NAMES``)."""
    return [Path(d) / name for d in dirs for name in PLAN_FILE_NAMES]


def _find_entry(node: Any, experiment_id: str) -> dict[str, Any] | None:
    """The JSON object describing ``experiment_id``, in any of these layouts:

    ``{"experiments": [{"experiment_id"|"id"|"name": "<id>", ...}]}`` (the sandbox's
    ground_truth.json) or ``{"experiments": {"<id>": {...}}}``.
    """
    if isinstance(node, dict):
        for key in ("experiment_id", "experiment", "id", "name"):
            if node.get(key) == experiment_id:
                return node
        if isinstance(node.get(experiment_id), dict):
            return node[experiment_id]
        children = list(node.values())
    elif isinstance(node, list):
        children = node
    else:
        return None
    for child in children:
        found = _find_entry(child, experiment_id)
        if found is not None:
            return found
    return None


def _plan_from_entry(entry: dict[str, Any]) -> tuple[tuple[str, ...] | None, dict[str, float] | None]:
    """Variant order and weights from an entry: ``"variants": ["A", "B"]`` with ``"weights":
    [.5, .5]`` or ``{"A": .5, ...}``, or ``"variants": [{"name": "A", "weight": .5}, ...]``."""
    raw = entry.get("variants") or entry.get("arms")
    names: tuple[str, ...] | None = None
    weights: dict[str, float] | None = None
    if isinstance(raw, list) and raw:
        if all(isinstance(v, str) for v in raw):
            names = tuple(raw)
        elif all(isinstance(v, dict) for v in raw):
            names = tuple(str(v.get("name") or v.get("variant") or v.get("id")) for v in raw)
            if all(v.get("weight") is not None for v in raw):
                weights = {n: float(v["weight"]) for n, v in zip(names, raw)}
    for key in ("weights", "planned_weights", "split", "traffic_split", "allocation"):
        w = entry.get(key)
        if isinstance(w, dict):
            weights = {str(k): float(v) for k, v in w.items()}
        elif isinstance(w, list) and names is not None and len(w) == len(names):
            weights = {n: float(x) for n, x in zip(names, w)}
    if names is None and weights:
        names = tuple(weights)
    return names, weights


def experiment_plan(experiment_id: str, files: Sequence[Path]) -> ExperimentPlan:
    """The recorded plan of ``experiment_id`` from the first of ``files`` that mentions it
    (``plan_files(dirs)`` names them). Unreadable files are skipped; nothing found gives an empty plan.
    """
    for path in files:
        try:
            doc = json.loads(Path(path).read_text())
        except (OSError, ValueError):
            continue
        entry = _find_entry(doc, experiment_id)
        if entry is not None:
            names, weights = _plan_from_entry(entry)
            return ExperimentPlan(names, weights, Path(path).name)
    return NO_PLAN


def planned_weights(
    experiment_id: str, variants: Sequence[str], files: Sequence[Path] | None = None,
    plan: ExperimentPlan | None = None,
) -> tuple[tuple[float, ...], str]:
    """The planned split for ``variants`` (in that order) and a sentence saying where it came from.

    From the experiment's plan when it gives a positive weight for every variant;
    otherwise an equal split, and the sentence says it was assumed.
    """
    plan = plan or (experiment_plan(experiment_id, files) if files is not None else NO_PLAN)
    w = plan.weights
    if w and all(v in w and w[v] > 0 for v in variants):
        return tuple(float(w[v]) for v in variants), f"planned split from {plan.source}"
    equal = tuple(1.0 for _ in variants)
    return equal, "no planned split recorded for this experiment: assuming an equal split"


class PlanFiles:
    """A plan lookup over ``files`` (see ``experiment_plan``); each experiment is read once."""

    def __init__(self, files: Sequence[Path]):
        self.files = tuple(Path(f) for f in files)
        self._read = cache(lambda experiment_id: experiment_plan(experiment_id, self.files))

    def __call__(self, experiment_id: str) -> ExperimentPlan:
        return self._read(experiment_id)
