"""Columns of one kind of record (messages or calls) plus the records created live."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from switchboard.sandbox.sids import id_for, sid_for


class Store:
    """The world's records of one kind as numpy columns (categoricals as codes, code -1 = None),
    with per-account and per-filter id caches, and ``live``: the records created through the API."""

    def __init__(self, prefix: str, salt: int, frame: pd.DataFrame, columns: dict[str, str]):
        self.prefix = prefix
        self.salt = salt
        self.n = len(frame)
        self.cols: dict[str, np.ndarray] = {}
        self.cats: dict[str, list] = {}
        self.cat_index: dict[str, dict] = {}
        for name, kind in columns.items():
            s = frame[name]
            if kind == "cat":
                self.cols[name] = s.cat.codes.to_numpy()
                self.cats[name] = list(s.cat.categories) + [None]  # code -1 indexes None
            else:
                self.cols[name] = s.to_numpy()
        self.live: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self._by_account: dict[int, np.ndarray] = {}
        self._filter_cache: dict[tuple, np.ndarray] = {}
        self._json_cats: dict[str, list[str]] = {}

    def code_of(self, col: str, value: str) -> int | None:
        idx = self.cat_index.get(col)
        if idx is None:
            idx = {v: i for i, v in enumerate(self.cats[col][:-1])}
            self.cat_index[col] = idx
        return idx.get(value)

    def json_cats(self, col: str) -> list[str]:
        """The categories of ``col`` serialised as JSON values (None, code -1, becomes null)."""
        cached = self._json_cats.get(col)
        if cached is None:
            cached = [json.dumps(v) for v in self.cats[col]]
            self._json_cats[col] = cached
        return cached

    def account_ids(self, ai: int) -> np.ndarray:
        ids = self._by_account.get(ai)
        if ids is None:
            ids = np.flatnonzero(self.cols["account_idx"] == ai)
            self._by_account[ai] = ids
        return ids

    def cached(self, key: tuple, build: Callable[[], np.ndarray]) -> np.ndarray:
        hit = self._filter_cache.get(key)
        if hit is None:
            hit = build()
            if len(self._filter_cache) > 256:
                self._filter_cache.clear()
            self._filter_cache[key] = hit
        return hit

    def sid(self, rid: int) -> str:
        if rid < self.n:
            return sid_for(self.prefix, rid, self.salt)
        return self.live[rid - self.n]["sid"]

    def rid(self, sid: str) -> int | None:
        rid = id_for(sid, self.prefix, self.salt)
        if rid is None or rid >= self.n + len(self.live):
            return None
        return rid

    def account_of(self, rid: int) -> int:
        return int(self.cols["account_idx"][rid]) if rid < self.n else self.live[rid - self.n]["account_idx"]
