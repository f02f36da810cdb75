"""previewer.cache.index: LRU order, byte and item bounds, reload, and thread safety."""

from __future__ import annotations

import random
import sys
import threading
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)

from previewer.cache.index import CacheIndex


def _order(index: CacheIndex[object]) -> list[str]:
    """The keys from least to most recently used (the index keeps no public listing)."""
    return list(index._entries)


def filled(max_bytes: int, *entries: tuple[str, int], max_items: int = 0) -> CacheIndex:
    index = CacheIndex(max_bytes, max_items)
    for key, size in entries:
        assert index.reserve(key, size) == []
    return index


# --- construction -----------------------------------------------------------------


def test_budget_must_not_be_negative() -> None:
    with pytest.raises(ValueError, match="max_bytes"):
        CacheIndex(-1)


def test_zero_budget_holds_nothing_and_load_evicts_everything() -> None:
    index = CacheIndex[object](0)
    assert index.reserve("a", 1) is None
    assert index.load([("a", 1), ("b", 2)]) == ["a", "b"]
    assert len(index) == 0


def test_item_bound_must_not_be_negative() -> None:
    with pytest.raises(ValueError, match="max_items"):
        CacheIndex(10, -1)


def test_memory_budget_must_not_be_negative() -> None:
    with pytest.raises(ValueError, match="memory_bytes"):
        CacheIndex(10, memory_bytes=-1)


def test_new_index_is_empty() -> None:
    index = CacheIndex(100)
    assert len(index) == 0
    assert index.total_bytes == 0
    assert _order(index) == []
    assert "a" not in _order(index)


# --- LRU order and eviction -------------------------------------------------------


def test_reserve_appends_as_most_recent() -> None:
    index = filled(100, ("a", 10), ("b", 10), ("c", 10))
    assert _order(index) == ["a", "b", "c"]
    assert "b" in _order(index)
    assert len(index) == 3


def test_eviction_takes_the_least_recent_first() -> None:
    index = filled(30, ("a", 10), ("b", 10), ("c", 10))
    assert index.reserve("d", 10) == ["a"]
    assert _order(index) == ["b", "c", "d"]
    assert index.reserve("e", 20) == ["b", "c"]
    assert _order(index) == ["d", "e"]
    assert index.total_bytes == 30


def test_eviction_stops_as_soon_as_the_entry_fits() -> None:
    index = filled(100, ("a", 10), ("b", 50), ("c", 10), ("d", 10))
    assert index.reserve("e", 40) == ["a", "b"]
    assert _order(index) == ["c", "d", "e"]
    assert index.total_bytes == 60


def test_an_entry_of_the_whole_budget_evicts_everything_else() -> None:
    index = filled(30, ("a", 10), ("b", 10))
    assert index.reserve("big", 30) == ["a", "b"]
    assert _order(index) == ["big"]
    assert index.total_bytes == 30


def test_touch_refreshes_recency() -> None:
    index = filled(30, ("a", 10), ("b", 10), ("c", 10))
    assert index.touch("a") is True
    assert _order(index) == ["b", "c", "a"]
    assert index.reserve("d", 10) == ["b"]
    assert _order(index) == ["c", "a", "d"]


def test_touch_of_a_missing_key_changes_nothing() -> None:
    index = filled(30, ("a", 10), ("b", 10))
    assert index.touch("zzz") is False
    assert _order(index) == ["a", "b"]
    assert "zzz" not in _order(index)
    assert index.total_bytes == 20


def test_total_bytes_is_the_sum_of_sizes() -> None:
    index = filled(1000, ("a", 1), ("b", 20), ("c", 300), ("empty", 0))
    assert index.total_bytes == 321
    index.remove("b")
    assert index.total_bytes == 301


def test_re_reserving_a_key_replaces_its_size_and_refreshes_it() -> None:
    index = filled(100, ("a", 10), ("b", 20))
    assert index.reserve("a", 50) == []
    assert index.total_bytes == 70
    assert _order(index) == ["b", "a"]
    assert index.reserve("a", 5) == []
    assert index.total_bytes == 25
    assert len(index) == 2


def test_re_reserving_a_key_bigger_evicts_others_not_itself() -> None:
    index = filled(30, ("a", 10), ("b", 10), ("c", 10))
    assert index.reserve("b", 25) == ["a", "c"]
    assert _order(index) == ["b"]
    assert index.total_bytes == 25


@pytest.mark.parametrize("size", [31, 10**9, -1])
def test_an_entry_that_can_never_fit_returns_none_and_changes_nothing(size: int) -> None:
    index = filled(30, ("a", 10), ("b", 10))
    assert index.reserve("c", size) is None
    assert index.reserve("a", size) is None
    assert _order(index) == ["a", "b"]
    assert index.total_bytes == 20
    assert "c" not in _order(index)


def test_fits() -> None:
    index = CacheIndex(30)
    assert index.fits(0)
    assert index.fits(30)
    assert not index.fits(31)
    assert not index.fits(-1)


def test_item_count_bound() -> None:
    index = CacheIndex(10**6, max_items=2)
    assert index.reserve("a", 1) == []
    assert index.reserve("b", 1) == []
    assert index.reserve("c", 1) == ["a"]
    index.touch("b")
    assert index.reserve("d", 1) == ["c"]
    assert _order(index) == ["b", "d"]
    assert index.total_bytes == 2


def test_zero_item_bound_means_no_item_bound() -> None:
    index = CacheIndex(10**6, max_items=0)
    for i in range(1000):
        assert index.reserve(f"k{i}", 1) == []
    assert len(index) == 1000


def test_both_bounds_apply_together() -> None:
    index = filled(100, ("a", 10), ("b", 10), max_items=3)
    assert index.reserve("c", 10) == []
    assert index.reserve("d", 10) == ["a"]  # item bound
    assert index.reserve("e", 85) == ["b", "c"]  # byte bound
    assert _order(index) == ["d", "e"]


def test_remove() -> None:
    index = filled(100, ("a", 10), ("b", 20), ("c", 30))
    assert index.remove("b") is True
    assert _order(index) == ["a", "c"]
    assert index.total_bytes == 40
    assert "b" not in _order(index)
    assert index.remove("b") is False
    assert index.remove("never") is False
    assert index.total_bytes == 40


def test_removed_key_can_be_reserved_again() -> None:
    index = filled(100, ("a", 10), ("b", 20))
    index.remove("a")
    assert index.reserve("a", 15) == []
    assert _order(index) == ["b", "a"]
    assert index.total_bytes == 35


# --- load -------------------------------------------------------------------------


def test_load_rebuilds_in_the_given_order() -> None:
    index = filled(100, ("old", 50))
    assert index.load([("a", 1), ("b", 2), ("c", 3)]) == []
    assert _order(index) == ["a", "b", "c"]
    assert index.total_bytes == 6
    assert "old" not in _order(index)


def test_load_with_a_lowered_item_bound_evicts_the_oldest() -> None:
    index = CacheIndex(10**6, max_items=3)
    evicted = index.load([("a", 1), ("b", 1), ("c", 1), ("d", 1), ("e", 1)])
    assert evicted == ["a", "b"]
    assert _order(index) == ["c", "d", "e"]
    assert index.total_bytes == 3


def test_load_with_a_lowered_byte_bound_evicts_the_oldest() -> None:
    index = CacheIndex(25)
    evicted = index.load([("a", 10), ("b", 10), ("c", 10), ("d", 10)])
    assert evicted == ["a", "b"]
    assert _order(index) == ["c", "d"]
    assert index.total_bytes == 20


def test_load_of_repeated_keys_keeps_the_last() -> None:
    index = CacheIndex(100)
    assert index.load([("a", 10), ("b", 20), ("a", 30)]) == []
    assert _order(index) == ["b", "a"]
    assert index.total_bytes == 50


def test_load_of_an_entry_over_the_budget_evicts_it() -> None:
    index = CacheIndex(10)
    evicted = index.load([("huge", 11)])
    assert evicted == ["huge"]
    assert len(index) == 0
    assert index.total_bytes == 0


# --- threads ----------------------------------------------------------------------


def _size_of(key: str) -> int:
    """Each key always has the same size, so the total can be checked from the keys."""
    return 1 + int(key[1:]) % 7


@pytest.fixture
def busy_switching() -> Iterator[None]:
    """Switch threads as often as possible, to interleave the workers."""
    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(previous)


@pytest.mark.usefixtures("busy_switching")
def test_concurrent_use_keeps_the_accounting_and_bounds() -> None:
    index = CacheIndex(max_bytes=60, max_items=12)
    keys = [f"k{i}" for i in range(40)]
    workers = 8
    start = threading.Barrier(workers)
    errors: list[BaseException] = []

    def work(seed: int) -> None:
        rng = random.Random(seed)
        try:
            start.wait()
            for _ in range(3000):
                key = rng.choice(keys)
                op = rng.random()
                if op < 0.5:
                    evicted = index.reserve(key, _size_of(key))
                    assert evicted is not None
                    assert key not in evicted
                elif op < 0.8:
                    index.touch(key)
                else:
                    index.remove(key)
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(seed,)) for seed in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    remaining = _order(index)
    assert len(remaining) == len(set(remaining)) == len(index)
    assert index.total_bytes == sum(_size_of(key) for key in remaining)
    assert index.total_bytes <= index.max_bytes
    assert len(index) <= index.max_items


@pytest.mark.usefixtures("busy_switching")
def test_concurrent_reserves_of_one_key_count_it_once() -> None:
    index = CacheIndex(max_bytes=10**6)
    workers = 8
    start = threading.Barrier(workers)

    def work() -> None:
        start.wait()
        for _ in range(2000):
            index.reserve("same", 10)
            index.touch("same")

    threads = [threading.Thread(target=work) for _ in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert _order(index) == ["same"]
    assert index.total_bytes == 10


# --- against a model --------------------------------------------------------------


class _Model:
    """The obvious LRU: a list of (key, size), least recent first."""

    def __init__(self, max_bytes: int, max_items: int) -> None:
        self.max_bytes = max_bytes
        self.max_items = max_items
        self.entries: list[tuple[str, int]] = []

    def _drop(self, key: str) -> int | None:
        for i, (k, size) in enumerate(self.entries):
            if k == key:
                del self.entries[i]
                return size
        return None

    def _evict(self) -> list[str]:
        evicted = []
        while self.entries and (
            sum(size for _, size in self.entries) > self.max_bytes
            or (self.max_items and len(self.entries) > self.max_items)
        ):
            evicted.append(self.entries.pop(0)[0])
        return evicted

    def reserve(self, key: str, size: int) -> list[str] | None:
        if not 0 <= size <= self.max_bytes:
            return None
        self._drop(key)
        self.entries.append((key, size))
        return self._evict()

    def touch(self, key: str) -> bool:
        size = self._drop(key)
        if size is None:
            return False
        self.entries.append((key, size))
        return True

    def remove(self, key: str) -> bool:
        return self._drop(key) is not None

    def load(self, entries: list[tuple[str, int]]) -> list[str]:
        self.entries = []
        for key, size in entries:
            self._drop(key)
            self.entries.append((key, size))
        return self._evict()


_keys = st.sampled_from([f"k{i}" for i in range(8)])
_sizes = st.integers(min_value=-2, max_value=40)


class _IndexMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.index = CacheIndex[object](1)
        self.model = _Model(1, 0)

    @initialize(max_bytes=st.integers(1, 60), max_items=st.integers(0, 5))
    def create(self, max_bytes: int, max_items: int) -> None:
        self.index = CacheIndex(max_bytes, max_items)
        self.model = _Model(max_bytes, max_items)

    @rule(key=_keys, size=_sizes)
    def reserve(self, key: str, size: int) -> None:
        assert self.index.reserve(key, size) == self.model.reserve(key, size)

    @rule(key=_keys)
    def touch(self, key: str) -> None:
        assert self.index.touch(key) == self.model.touch(key)

    @rule(key=_keys)
    def remove(self, key: str) -> None:
        assert self.index.remove(key) == self.model.remove(key)

    @rule(entries=st.lists(st.tuples(_keys, st.integers(0, 40)), max_size=10))
    def load(self, entries: list[tuple[str, int]]) -> None:
        assert self.index.load(entries) == self.model.load(entries)

    @invariant()
    def agrees_with_the_model(self) -> None:
        assert _order(self.index) == [key for key, _ in self.model.entries]
        assert self.index.total_bytes == sum(size for _, size in self.model.entries)
        assert len(self.index) == len(self.model.entries)
        assert self.index.total_bytes <= self.index.max_bytes
        if self.index.max_items:
            assert len(self.index) <= self.index.max_items


def test_index_behaves_like_a_simple_lru_model() -> None:
    run_state_machine_as_test(
        _IndexMachine, settings=settings(max_examples=100, stateful_step_count=40, deadline=None)
    )


@given(
    max_bytes=st.integers(1, 100),
    max_items=st.integers(0, 6),
    ops=st.lists(
        st.tuples(st.sampled_from(["reserve", "touch", "remove"]), _keys, _sizes), max_size=60
    ),
)
def test_random_operations_match_the_model(
    max_bytes: int, max_items: int, ops: list[tuple[str, str, int]]
) -> None:
    index = CacheIndex(max_bytes, max_items)
    model = _Model(max_bytes, max_items)
    for op, key, size in ops:
        if op == "reserve":
            assert index.reserve(key, size) == model.reserve(key, size)
        elif op == "touch":
            assert index.touch(key) == model.touch(key)
        else:
            assert index.remove(key) == model.remove(key)
        assert _order(index) == [k for k, _ in model.entries]
        assert index.total_bytes == sum(s for _, s in model.entries)


def test_evict_oldest_frees_at_least_the_bytes_asked_and_spares_keep() -> None:
    index = CacheIndex(max_bytes=1000)
    for key in ("a", "b", "c", "d"):
        index.reserve(key, 100)
    index.touch("a")  # order now b, c, d, a
    evicted = index.evict_oldest(150, keep="b")
    assert evicted == ["c", "d"]
    assert _order(index) == ["b", "a"]
    assert index.total_bytes == 200


def test_evict_oldest_stops_when_only_keep_is_left() -> None:
    index = CacheIndex(max_bytes=1000)
    index.reserve("only", 100)
    assert index.evict_oldest(500, keep="only") == []
    assert index.total_bytes == 100


# --- the hot set ------------------------------------------------------------------


def test_hot_set_bound_and_order() -> None:
    index = CacheIndex[str](10_000, memory_bytes=2_500)
    for key in ("0", "1", "2"):
        index.reserve(key, 1000)
    index.remember("0", "zero", 1000)
    index.remember("1", "one", 1000)
    assert index.recall("0") is not None  # refresh 0: 1 is now the oldest in memory
    index.remember("2", "two", 1000)
    assert index.recall("1") is None
    assert index.recall("0") == ("zero", False)
    assert (index.hot_entries, index.hot_bytes) == (2, 2000)


def test_a_memory_hit_refreshes_the_disk_order_too() -> None:
    index = CacheIndex[str](300, memory_bytes=1000)
    for key in ("a", "b", "c"):
        index.reserve(key, 100)
    index.remember("a", "A", 100)
    assert index.recall("a") == ("A", False)
    assert index.reserve("d", 100) == ["b"]  # a was used last: b is the oldest


def test_keys_leaving_the_disk_order_leave_the_hot_set() -> None:
    index = CacheIndex[str](200, memory_bytes=1000)
    index.reserve("a", 100)
    index.remember("a", "A", 100)
    index.reserve("b", 100)
    index.remember("b", "B", 100)
    assert index.reserve("c", 100) == ["a"]
    assert index.recall("a") is None
    index.remove("b")
    assert index.recall("b") is None
    assert (index.hot_entries, index.hot_bytes) == (0, 0)


def test_once_loaded_only_indexed_keys_enter_the_hot_set() -> None:
    index = CacheIndex[str](1000, memory_bytes=1000)
    index.remember("early", "E", 10)  # before the load: a file read directly
    index.remember("gone", "G", 10)
    assert index.load([("early", 66)]) == []
    assert index.recall("early") == ("E", False)
    assert index.recall("gone") is None  # not on disk after all
    index.remember("evicted", "X", 10)  # read while a store evicted it
    assert index.recall("evicted") is None


def test_hot_set_ignores_values_larger_than_itself() -> None:
    index = CacheIndex[str](1000, memory_bytes=10)
    index.reserve("big", 11)
    index.remember("big", "B", 11)
    assert index.recall("big") is None


def test_hot_set_reports_when_a_disk_touch_is_due(monkeypatch: pytest.MonkeyPatch) -> None:
    index = CacheIndex[str](1000, memory_bytes=1000)
    index.reserve("k", 1)
    index.remember("k", "K", 1)
    assert index.recall("k") == ("K", False)
    assert index.unrecorded() != []  # the use is not written yet
    assert index.unrecorded() == []  # and is reported once
    monkeypatch.setattr(CacheIndex, "TOUCH_INTERVAL", 0.0)
    assert index.recall("k") == ("K", True)
