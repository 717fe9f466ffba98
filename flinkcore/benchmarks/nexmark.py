"""A Nexmark-style benchmark: persons, auctions and bids, and queries q0, q1, q2, q5, q7, q8.

The generator follows Nexmark's shape (one stream of interleaved events, in every 50: 1 person,
3 auctions, 46 bids; ids assigned in order from 1000; bids mostly on recent "hot" auctions and
by recent persons; prices log-uniform in cents) but is vectorised with numpy and seeded, so
every run and every system sees the same events. Event time advances at ``EVENTS_PER_SECOND``
events per second of event time, in order (Nexmark's generator is in-order too).

Queries (as in the Nexmark suite that Flink publishes numbers for):
- q0: pass-through of bids.
- q1: currency conversion: bid price in dollars to euros (x 0.908).
- q2: selection: bids whose auction id is a multiple of 123.
- q5: hot items: per sliding window (10 s, slide 2 s) the auctions with the most bids.
- q7: highest bid per 10 s tumbling window.
- q8: monitor new users: persons who opened an auction in the same 10 s window they joined.

Each query is written with flinkcore's DataStream API (``udf`` style) and has a pure-Python
reference that gives the expected (results, checksum).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

EVENTS_PER_SECOND = 10_000  # event time: ts = i // 10 ms
FIRST_ID = 1000
PROPORTION = 50  # in every 50 events: 1 person, 3 auctions, 46 bids
HOT_RATIO = 0.9  # share of bids on one of the last HOT auctions, by one of the last HOT persons
HOT = 10
WINDOW_MS = 10_000
SLIDE_MS = 2_000
DOLLAR_TO_EURO = 0.908
Q2_MODULUS = 123

CHANNELS = ["Google", "Facebook", "Baidu", "Apple"]
CITIES = [
    "Phoenix",
    "Los Angeles",
    "San Francisco",
    "Boise",
    "Portland",
    "Bend",
    "Redmond",
    "Seattle",
    "Kent",
]
STATES = ["AZ", "CA", "ID", "OR", "WA", "WY"]
FIRST_NAMES = ["Peter", "Paul", "Luke", "John", "Saul", "Vicky", "Kate", "Julie", "Sarah", "Deiter", "Walter"]
LAST_NAMES = ["Shultz", "Abrams", "Spencer", "White", "Bartels", "Walton", "Smith", "Jones", "Noris"]


@dataclass(frozen=True)
class Nexmark:
    """The three streams as lists of tuples, each in event-time order.

    person:  (id, name, email, credit_card, city, state, date_time)
    auction: (id, item_name, initial_bid, reserve, date_time, expires, seller, category)
    bid:     (auction, bidder, price, channel, url, date_time)
    """

    persons: list[tuple]
    auctions: list[tuple]
    bids: list[tuple]

    def __len__(self) -> int:
        return len(self.persons) + len(self.auctions) + len(self.bids)


def generate(n: int, seed: int = 7) -> Nexmark:
    """N events of the interleaved stream, split by kind; deterministic for a seed."""
    rng = np.random.default_rng(seed)
    i = np.arange(n, dtype=np.int64)
    ts = i * 1000 // EVENTS_PER_SECOND
    slot = i % PROPORTION
    is_person, is_auction = slot == 0, (slot >= 1) & (slot <= 3)
    # how many persons / auctions exist *before* each event (ids are assigned in order)
    persons_before = np.cumsum(is_person) - is_person
    auctions_before = np.cumsum(is_auction) - is_auction
    pick_hot = rng.random(n) < HOT_RATIO
    back = rng.integers(0, HOT, n)
    anywhere = rng.random(n)
    n_p, n_a = np.maximum(persons_before, 1), np.maximum(auctions_before, 1)
    recent_person = FIRST_ID + np.maximum(n_p - 1 - back, 0)
    recent_auction = FIRST_ID + np.maximum(n_a - 1 - back, 0)
    any_person = FIRST_ID + (anywhere * n_p).astype(np.int64)
    any_auction = FIRST_ID + (anywhere * n_a).astype(np.int64)
    person_ref = np.where(pick_hot, recent_person, any_person)
    auction_ref = np.where(pick_hot, recent_auction, any_auction)
    price = np.round(np.power(10.0, rng.random(n) * 6.0) * 100.0).astype(np.int64)  # cents
    words = rng.integers(0, 1 << 30, n)
    category = rng.integers(10, 15, n)
    channel = rng.integers(0, len(CHANNELS), n)

    persons, auctions, bids = [], [], []
    for j in np.flatnonzero(is_person).tolist():
        pid = FIRST_ID + int(persons_before[j])
        w = int(words[j])
        name = f"{FIRST_NAMES[w % len(FIRST_NAMES)]} {LAST_NAMES[(w >> 4) % len(LAST_NAMES)]}"
        persons.append(
            (
                pid,
                name,
                f"{name.split()[0].lower()}{w % 1000}@example.com",
                f"{w % 10000:04d} {(w >> 8) % 10000:04d}",
                CITIES[(w >> 12) % len(CITIES)],
                STATES[(w >> 16) % len(STATES)],
                int(ts[j]),
            )
        )
    for j in np.flatnonzero(is_auction).tolist():
        aid = FIRST_ID + int(auctions_before[j])
        initial = int(price[j])
        auctions.append(
            (
                aid,
                f"item-{int(words[j]) % 100000}",
                initial,
                initial * 2,
                int(ts[j]),
                int(ts[j]) + 2 * WINDOW_MS,
                int(person_ref[j]),
                int(category[j]),
            )
        )
    for j in np.flatnonzero(~is_person & ~is_auction).tolist():
        ch = CHANNELS[int(channel[j])]
        bids.append(
            (
                int(auction_ref[j]),
                int(person_ref[j]),
                int(price[j]),
                ch,
                f"https://www.nexmark.com/{ch.lower()}/item.htm?query=1",
                int(ts[j]),
            )
        )
    return Nexmark(persons, auctions, bids)


# --- pure-Python references: (results, checksum) ---------------------------------------------


def _window_starts(ts: int, size: int, slide: int) -> list[int]:
    last = ts - ts % slide
    return [s for s in range(last, ts - size, -slide)]


def reference(query: str, nx: Nexmark) -> tuple[int, float]:
    """What each query must produce: number of records and a checksum over them."""
    bids = nx.bids
    if query == "q0":
        return len(bids), float(sum(b[2] for b in bids))
    if query == "q1":
        return len(bids), float(sum(b[2] * DOLLAR_TO_EURO for b in bids))
    if query == "q2":
        sel = [b for b in bids if b[0] % Q2_MODULUS == 0]
        return len(sel), float(sum(b[2] for b in sel))
    if query == "q5":
        counts: dict[tuple[int, int], int] = {}
        for b in bids:
            for start in _window_starts(b[5], WINDOW_MS, SLIDE_MS):
                counts[(start, b[0])] = counts.get((start, b[0]), 0) + 1
        best: dict[int, int] = {}
        for (start, _a), c in counts.items():
            best[start] = max(best.get(start, 0), c)
        hot = [(s, a, c) for (s, a), c in counts.items() if c == best[s]]
        return len(hot), float(sum(a + c for _s, a, c in hot))
    if query == "q7":
        top: dict[int, int] = {}
        for b in bids:
            w = b[5] // WINDOW_MS
            top[w] = max(top.get(w, 0), b[2])
        return len(top), float(sum(top.values()))
    if query == "q8":
        joined = {(p[0], p[6] // WINDOW_MS) for p in nx.persons}
        hits = {(a[6], a[4] // WINDOW_MS) for a in nx.auctions} & joined
        return len(hits), float(sum(pid for pid, _w in hits))
    raise ValueError(f"unknown Nexmark query {query!r}; known: {', '.join(QUERIES)}")


# --- the queries with flinkcore's DataStream API ------------------------------------------------


class _Totals:
    def __init__(self, pick):
        self.pick = pick
        self.results = 0
        self.checksum = 0.0

    def invoke(self, value: Any, context: Any = None) -> None:
        self.results += 1
        self.checksum += self.pick(value)


def _sink(pick):
    from flinkcore.datastream.functions import SinkFunction

    class Totals(_Totals, SinkFunction):
        pass

    return Totals(pick)


def _source(env, items: list[tuple], ts_field: int):
    from flinkcore.common import WatermarkStrategy
    from flinkcore.common.watermark_strategy import TimestampAssigner

    class At(TimestampAssigner):
        def extract_timestamp(self, value, record_timestamp):
            return value[ts_field]

    strategy = WatermarkStrategy.for_monotonous_timestamps().with_timestamp_assigner(At())
    return env.from_collection(items).assign_timestamps_and_watermarks(strategy)


def run_query(query: str, nx: Nexmark) -> tuple[int, float]:
    """Run one query as a flinkcore job at parallelism 1; return what its sink saw."""
    from flinkcore.common.time import Time
    from flinkcore.datastream import StreamExecutionEnvironment
    from flinkcore.datastream.functions import ProcessWindowFunction
    from flinkcore.datastream.window import SlidingEventTimeWindows, TumblingEventTimeWindows

    env = StreamExecutionEnvironment.get_execution_environment()
    env.set_parallelism(1)
    if query == "q0":
        sink = _sink(lambda b: b[2])
        env.from_collection(nx.bids).map(lambda b: b).add_sink(sink)
    elif query == "q1":
        sink = _sink(lambda b: b[2])
        env.from_collection(nx.bids).map(lambda b: (b[0], b[1], b[2] * DOLLAR_TO_EURO, b[5])).add_sink(sink)
    elif query == "q2":
        sink = _sink(lambda r: r[1])
        env.from_collection(nx.bids).filter(lambda b: b[0] % Q2_MODULUS == 0).map(
            lambda b: (b[0], b[2])
        ).add_sink(sink)
    elif query == "q5":

        class HotItems(ProcessWindowFunction):
            """All (window start, auction, count) of a window's counts whose count is the max."""

            def process(self, key, context, elements):
                rows = list(elements)
                top = max(r[2] for r in rows)
                for r in rows:
                    if r[2] == top:
                        yield r

        class CountBids(ProcessWindowFunction):
            def process(self, key, context, elements):
                yield context.window().start, key, sum(1 for _ in elements)

        sink = _sink(lambda r: r[1] + r[2])
        (
            _source(env, nx.bids, 5)
            .key_by(lambda b: b[0])
            .window(SlidingEventTimeWindows.of(Time.milliseconds(WINDOW_MS), Time.milliseconds(SLIDE_MS)))
            .process(CountBids())
            .key_by(lambda r: r[0])  # the window's start: all counts of one window meet here
            .window(TumblingEventTimeWindows.of(Time.milliseconds(SLIDE_MS)))
            .process(HotItems())
            .add_sink(sink)
        )
    elif query == "q7":
        sink = _sink(lambda b: b[2])
        (
            _source(env, nx.bids, 5)
            .window_all(TumblingEventTimeWindows.of(Time.milliseconds(WINDOW_MS)))
            .reduce(lambda a, b: a if a[2] >= b[2] else b)
            .add_sink(sink)
        )
    elif query == "q8":

        class NewSellers(ProcessWindowFunction):
            """A person who joined and opened an auction in the same window."""

            def process(self, key, context, elements):
                kinds = {e[0] for e in elements}
                if kinds == {"person", "auction"}:
                    yield key, context.window().start

        sink = _sink(lambda r: r[0])
        persons = _source(env, nx.persons, 6).map(lambda p: ("person", p[0]))
        auctions = _source(env, nx.auctions, 4).map(lambda a: ("auction", a[6]))
        (
            persons.union(auctions)
            .key_by(lambda e: e[1])
            .window(TumblingEventTimeWindows.of(Time.milliseconds(WINDOW_MS)))
            .process(NewSellers())
            .add_sink(sink)
        )
    else:
        raise ValueError(f"unknown Nexmark query {query!r}; known: {', '.join(QUERIES)}")
    env.execute(f"nexmark {query}")
    return sink.results, sink.checksum


QUERIES = ["q0", "q1", "q2", "q5", "q7", "q8"]


def events_per_query(query: str, nx: Nexmark) -> int:
    """The input a query reads: bids only, except q8 (persons and auctions)."""
    return len(nx.persons) + len(nx.auctions) if query == "q8" else len(nx.bids)
