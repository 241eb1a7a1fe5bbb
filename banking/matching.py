"""Statement-to-book matching: pure Python, no ORM, no Django.

Input: statement lines and book items as plain dataclasses; output: allocation suggestions
(line, item, amount, method, confidence) and what is left for review. The service layer
(`banking.reconciliation`) loads the rows, calls `match` and writes the result.

Steps, in order, each working on what the earlier ones left open:

1. Exact key: the line's bank id or reference (end-to-end id, cheque number) equals the book
   item's reference, case- and whitespace-insensitive. Equal amounts: confidence 1.00 (0.90
   when the key names several items of that amount, or when an earlier suggestion of this run
   took part of the item); unequal amounts: allocate the smaller open amount (a partial or
   instalment payment), confidence 0.90. A key is only sure within `reference_window_days`
   (90) of the line: a cheque number reused a year later is suggested at 0.60, for review.
2. Exact amount and sign within the date window: a hash join on (sign, open amount in cents),
   then, inside each (sign, amount) group, the pairs are assigned by global nearest date
   distance (party/reference similarity breaking ties), so a line is never taken by a
   competing line of the same amount further away. Confidence 0.98 on the same day, falling
   linearly to 0.90 at the edge of the window; when a pair still competes with another at the
   same distance and similarity (another item for the line, or another line for the item)
   that is not interchangeable with it (same reference and party), the earliest is taken and
   the confidence is cut by 15 % so a person looks at it.
3. Party/reference similarity among same-amount items outside the window (up to
   `similarity_max_days` away): rapidfuzz `token_set_ratio` >= threshold, refusing ties.
   Confidence 0.60 at the threshold rising to 0.90 at 100.
4. Many-to-one, bounded: for a line, open book items of its sign inside the window whose open
   amount is below the line's, within `max_group_scan` positions of its date. A group settles
   one counterparty: when the line names a party, only items whose party resembles it
   (confidence 0.80); when it names none, the items naming none, or those of one party (0.75),
   so a bank charge is never "paid" by unrelated receipts that happen to add up. Each set, when
   its total can reach the target, nearest `max_group_candidates` first: an exact subset sum
   (meet in the middle, so 20 candidates cost 2 x 1,024 sums); failing that a greedy
   oldest-first accumulation, accepted within `tolerance` (0.70). Then the same for one book
   item against several lines.
5. Everything still open is returned for review.

`forbidden` pairs (line id, item id), e.g. the pairs a person rejected, are never suggested
by any step: the matcher looks past them (a many-to-one group is built without them), so the
line and the item stay available to other partners.

Every step is a dictionary or sorted-list lookup per row, so the whole run is near-linear:
100,000 lines against 100,000 items match in about a second of pure Python.

Amounts are handled as integer cents inside; lines and items are processed in (date, id) order
so the result does not depend on the order of the input.
"""

from __future__ import annotations

import bisect
import functools
import itertools
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_UP, Decimal

from rapidfuzz import fuzz, process
from rapidfuzz.utils import default_process

METHOD_REFERENCE = "reference"
METHOD_AMOUNT_DATE = "amount_date"
METHOD_SIMILARITY = "similarity"
METHOD_MANY_TO_ONE = "many_to_one"

_CENT = Decimal("0.01")
_FAR = 1 << 40  # a date distance larger than any real one


@dataclass(frozen=True, slots=True)
class StatementLineIn:
    """A bank statement line. `amount` is signed (+ money in, - money out); `open_amount` is the
    part not yet allocated, as a positive figure (None: all of it)."""

    id: object
    date: date
    amount: Decimal
    bank_id: str = ""
    reference: str = ""
    counterparty: str = ""
    description: str = ""
    open_amount: Decimal | None = None


@dataclass(frozen=True, slots=True)
class BookItemIn:
    """A posted book transaction of the bank account. `amount` is signed like the statement
    (+ deposit, - payment); `open_amount` is the part not yet cleared, positive (None: all)."""

    id: object
    date: date
    amount: Decimal
    reference: str = ""
    counterparty: str = ""
    open_amount: Decimal | None = None


@dataclass(frozen=True, slots=True)
class MatchConfig:
    date_window_days: int = 3
    similarity_threshold: float = 80.0
    similarity_max_days: int = 60
    max_group_candidates: int = 20
    max_group_scan: int = 200
    tolerance: Decimal = Decimal("0.00")
    # A reference shared by more items than this is not a key (e.g. "SALARY" on every payslip).
    max_items_per_key: int = 20
    # Beyond this many days from the line a reference match is only suggested (confidence
    # `reference_far_confidence`, below any sensible auto-accept): cheque numbers are reused.
    reference_window_days: int = 90
    reference_far_confidence: Decimal = Decimal("0.60")


@dataclass(frozen=True, slots=True)
class Suggestion:
    line_id: object
    item_id: object
    amount: Decimal  # positive allocation
    method: str
    confidence: Decimal  # 0..1, two places


@dataclass(slots=True)
class MatchResult:
    suggestions: list[Suggestion]
    review_line_ids: list  # lines still holding an open amount, in (date, id) order
    review_item_ids: list  # book items still holding an open amount, in (date, id) order

    def count_by_method(self) -> dict[str, int]:
        return dict(Counter(s.method for s in self.suggestions))


def match(
    lines: Iterable[StatementLineIn],
    items: Iterable[BookItemIn],
    config: MatchConfig | None = None,
    forbidden: Iterable[tuple[object, object]] = (),
) -> MatchResult:
    """Suggest allocations of `items` to `lines`; see the module docstring for the steps.
    `forbidden`: (line id, item id) pairs never to suggest."""
    matcher = _Matcher(list(lines), list(items), config or MatchConfig(), forbidden)
    matcher.by_reference()
    matcher.by_amount_and_date()
    matcher.by_similarity()
    matcher.many_to_one()
    return matcher.result()


# --- helpers ------------------------------------------------------------------------------------


def _cents(value: Decimal) -> int:
    return int(value.quantize(_CENT, rounding=ROUND_HALF_UP).scaleb(2))


def _from_cents(cents: int) -> Decimal:
    return Decimal(cents).scaleb(-2)


def _key(text: str) -> str:
    return "".join(text.split()).casefold()


@functools.cache
def _confidence(value: float) -> Decimal:
    value = min(1.0, max(0.0, value))
    return Decimal(str(value)).quantize(_CENT, rounding=ROUND_HALF_UP)


class _Side:
    """One side (lines or items) as parallel lists in (date, id) order."""

    def __init__(self, rows: Sequence, text_parts: Callable[[object], tuple[str, ...]]):
        rows = sorted(rows, key=lambda r: (r.date, r.id))
        self.rows = rows
        self.ids = [r.id for r in rows]
        if len(set(self.ids)) != len(self.ids):
            raise ValueError("ids must be unique")
        self.days = [r.date.toordinal() for r in rows]
        self.signs = []
        self.open = []
        for r in rows:
            signed = _cents(r.amount)
            full = abs(signed)
            self.signs.append((signed > 0) - (signed < 0))
            left = full if r.open_amount is None else _cents(r.open_amount)
            if not 0 <= left <= full:
                raise ValueError(f"open amount of {r.id!r} must lie between 0 and |amount|")
            self.open.append(left)
        self.initial_open = list(self.open)
        self._text_parts = text_parts
        self._text: list[str | None] = [None] * len(rows)
        self._party: list[str | None] = [None] * len(rows)

    def __len__(self) -> int:
        return len(self.ids)

    def text(self, k: int) -> str:
        """Reference, party (and description) lowercased and stripped of punctuation."""
        value = self._text[k]
        if value is None:
            value = self._text[k] = default_process(" ".join(self._text_parts(self.rows[k])))
        return value

    def party(self, k: int) -> str:
        value = self._party[k]
        if value is None:
            value = self._party[k] = default_process(self.rows[k].counterparty or "")
        return value


class _Bucket:
    """Members of one (sign, amount) bucket in date order, with removal and nearest-date search.

    Two disjoint-set forests with path compression answer "next unused position at or after p"
    and "previous unused at or before p" in amortised constant time, so removing matched items
    never makes later searches walk over them.
    """

    __slots__ = ("members", "days", "_right", "_left")

    def __init__(self, members: list[int], days: list[int]):
        self.members = members
        self.days = [days[k] for k in members]
        n = len(members)
        self._right = list(range(n + 1))  # slot n: "none after"
        self._left = list(range(n + 1))  # slot p + 1 stands for position p; slot 0: "none before"

    @staticmethod
    def _find(parent: list[int], x: int) -> int:
        root = x
        while parent[root] != root:
            root = parent[root]
        while parent[x] != root:
            parent[x], x = root, parent[x]
        return root

    def remove(self, p: int) -> None:
        self._right[p] = p + 1
        self._left[p + 1] = p

    def outward(self, day: int, max_distance: int) -> Iterator[tuple[int, int]]:
        """Unused positions by growing date distance (earlier first on equal distance)."""
        days, n = self.days, len(self.days)
        pos = bisect.bisect_left(days, day)
        right = self._find(self._right, pos)
        left = self._find(self._left, pos) - 1
        while True:
            d_right = days[right] - day if right < n else _FAR
            d_left = day - days[left] if left >= 0 else _FAR
            if d_left <= d_right:
                if d_left > max_distance:
                    return
                yield left, d_left
                left = self._find(self._left, left) - 1
            else:
                if d_right > max_distance:
                    return
                yield right, d_right
                right = self._find(self._right, right + 1)


def _subset_sum(values: list[int], target: int) -> list[int] | None:
    """Positions of a subset of `values` summing exactly to `target`, fewest items first, or
    None. Meet in the middle: 20 values cost at most 2 x 1,024 sums instead of 2^20, and far
    fewer when the values are of the target's size (sums above the target are dropped).

    Written here rather than taken from a library: no maintained package does bounded subset
    sum over integers, and the search is a dozen lines. Callers pass values below the target,
    so any subset found has at least two items.
    """
    half = len(values) // 2

    def sums(vals: list[int], offset: int) -> dict[int, int]:
        """Every subset sum not above the target -> the mask with fewest items reaching it."""
        reach = [(0, 0)]
        for k, v in enumerate(vals):
            bit = 1 << (offset + k)
            reach += [(s + v, mask | bit) for s, mask in reach if s + v <= target]
        fewest: dict[int, int] = {}
        for s, mask in reach:
            known = fewest.get(s)
            if known is None or mask.bit_count() < known.bit_count():
                fewest[s] = mask
        return fewest

    left, right = sums(values[:half], 0), sums(values[half:], half)
    best = None
    for s, left_mask in left.items():
        right_mask = right.get(target - s)
        if right_mask is not None:
            mask = left_mask | right_mask
            if best is None or (mask.bit_count(), mask) < (best.bit_count(), best):
                best = mask
    if best is None:
        return None
    return [k for k in range(len(values)) if best >> k & 1]


# --- the matcher --------------------------------------------------------------------------------


class _Matcher:
    def __init__(self, lines: list, items: list, config: MatchConfig, forbidden=()):
        self.cfg = config
        self.lines = _Side(lines, lambda r: (r.reference, r.counterparty, r.description))
        self.items = _Side(items, lambda r: (r.reference, r.counterparty))
        line_pos = {v: k for k, v in enumerate(self.lines.ids)}
        item_pos = {v: k for k, v in enumerate(self.items.ids)}
        self._forbid: set[tuple[int, int]] = set()
        for line_id, item_id in forbidden:
            i, j = line_pos.get(line_id), item_pos.get(item_id)
            if i is not None and j is not None:
                self._forbid.add((i, j))
        self.suggestions: list[Suggestion] = []
        # (sign, open cents) -> items in date order, and the lines looking for that amount
        self._item_groups: dict[tuple[int, int], list[int]] = {}
        self._buckets: dict[tuple[int, int], _Bucket] = {}
        self._bucket_pos: dict[int, tuple[_Bucket, int]] = {}

    # bookkeeping

    def _allocate(self, i: int, j: int, cents: int, method: str, confidence: Decimal) -> None:
        lines, items = self.lines, self.items
        assert 0 < cents <= lines.open[i] and cents <= items.open[j]
        assert lines.signs[i] == items.signs[j]
        lines.open[i] -= cents
        items.open[j] -= cents
        placed = self._bucket_pos.pop(j, None)
        if placed is not None:  # the item's bucket is keyed by its old open amount
            placed[0].remove(placed[1])
        self.suggestions.append(
            Suggestion(lines.ids[i], items.ids[j], _from_cents(cents), method, confidence)
        )

    def _similar(self, text: str, candidates: list[int], side: _Side) -> tuple[int, float] | None:
        """The one candidate whose text scores highest (>= threshold) and its score; None on a
        tie for the top or when nothing reaches the threshold."""
        if not text:
            return None
        scored = sorted(
            ((fuzz.token_set_ratio(text, side.text(k), processor=None), k) for k in candidates),
            key=lambda pair: (-pair[0], pair[1]),
        )
        if not scored or scored[0][0] < self.cfg.similarity_threshold:
            return None
        if len(scored) > 1 and scored[1][0] == scored[0][0]:
            return None
        return scored[0][1], scored[0][0]

    def _bucket(self, key: tuple[int, int]) -> _Bucket | None:
        """The still-open items of one (sign, amount), built on first use."""
        bucket = self._buckets.get(key)
        if bucket is None:
            open_, amount = self.items.open, key[1]
            members = [j for j in self._item_groups.get(key, ()) if open_[j] == amount]
            if not members:
                return None
            bucket = self._buckets[key] = _Bucket(members, self.items.days)
            for p, j in enumerate(members):
                self._bucket_pos[j] = (bucket, p)
        return bucket

    # step 1

    def by_reference(self) -> None:
        lines, items = self.lines, self.items
        limit = self.cfg.max_items_per_key
        index: dict[str, list[int]] = defaultdict(list)
        for j, row in enumerate(items.rows):
            if row.reference and items.open[j]:
                key = _key(row.reference)
                if key:
                    index[key].append(j)
        if not index:
            return
        l_open, l_signs, l_days = lines.open, lines.signs, lines.days
        i_open, i_signs, i_days = items.open, items.signs, items.days
        for i, row in enumerate(lines.rows):
            if not l_open[i] or not (row.reference or row.bank_id):
                continue
            found: set[int] = set()
            for text in (row.bank_id, row.reference):
                hits = index.get(_key(text)) if text else None
                if hits and len(hits) <= limit:
                    found.update(hits)
            forbid = self._forbid
            candidates = sorted(
                j for j in found if i_signs[j] == l_signs[i] and i_open[j] and (i, j) not in forbid
            )
            if not candidates:
                continue
            far = self.cfg.reference_window_days
            far_confidence = self.cfg.reference_far_confidence
            exact = [j for j in candidates if i_open[j] == l_open[i]]
            if exact:
                j = min(exact, key=lambda j: (abs(i_days[j] - l_days[i]), j))
                # Sure only when the key names one item and no suggestion of this run (which
                # a person may still reject) has already taken part of it.
                sure = len(exact) == 1 and i_open[j] == items.initial_open[j]
                confidence = _confidence(1.0 if sure else 0.9)
                if abs(i_days[j] - l_days[i]) > far:
                    confidence = min(confidence, far_confidence)
                self._allocate(i, j, l_open[i], METHOD_REFERENCE, confidence)
                continue
            for j in candidates:  # partial payments or instalments: oldest first
                confidence = _confidence(0.9)
                if abs(i_days[j] - l_days[i]) > far:
                    confidence = min(confidence, far_confidence)
                self._allocate(i, j, min(l_open[i], i_open[j]), METHOD_REFERENCE, confidence)
                if not l_open[i]:
                    break

    # step 2

    def by_amount_and_date(self) -> None:
        lines, items, cfg = self.lines, self.items, self.cfg
        window = cfg.date_window_days
        groups: dict[tuple[int, int], list[int]] = defaultdict(list)
        i_open, i_signs, i_days = items.open, items.signs, items.days
        for j in range(len(items)):
            if i_open[j] and i_signs[j]:
                groups[(i_signs[j], i_open[j])].append(j)
        self._item_groups = groups
        line_groups: dict[tuple[int, int], list[int]] = defaultdict(list)
        l_open, l_signs, l_days = lines.open, lines.signs, lines.days
        for i in range(len(lines)):
            if l_open[i]:
                key = (l_signs[i], l_open[i])
                if key in groups:
                    line_groups[key].append(i)
        forbid = self._forbid
        for key, line_idx in line_groups.items():
            members = groups[key]
            if len(members) == 1 and len(line_idx) == 1:  # the common case, without a bucket
                i, j = line_idx[0], members[0]
                distance = abs(i_days[j] - l_days[i])
                if distance <= window and (i, j) not in forbid:
                    confidence = _confidence(0.98 - 0.08 * distance / max(window, 1))
                    self._allocate(i, j, l_open[i], METHOD_AMOUNT_DATE, confidence)
                continue
            self._assign_nearest(key, line_idx)

    def _assign_nearest(self, key: tuple[int, int], line_idx: list[int]) -> None:
        """Lines and items of one (sign, amount): every pair within the window (at most
        `max_group_candidates` nearest items per line), assigned by global nearest distance,
        then party/reference similarity (scores under the threshold count as none), then
        (line, item) position. A pair with an open, non-interchangeable rival at the same
        distance and similarity gets its confidence cut by 15 %."""
        lines, items, cfg = self.lines, self.items, self.cfg
        window, threshold = cfg.date_window_days, cfg.similarity_threshold
        bucket = self._bucket(key)
        if bucket is None:
            return
        forbid = self._forbid
        pairs = []
        for i in line_idx:
            text = lines.text(i)
            taken = 0
            for p, distance in bucket.outward(lines.days[i], window):
                j = bucket.members[p]
                if (i, j) in forbid:
                    continue
                score = 0.0
                if text:
                    score = fuzz.token_set_ratio(text, items.text(j), processor=None)
                    if score < threshold:
                        score = 0.0
                pairs.append((distance, -score, i, j))
                taken += 1
                if taken >= cfg.max_group_candidates:
                    break
        if not pairs:
            return
        pairs.sort()
        levels: dict[tuple[int, float], list[tuple[int, int]]] = defaultdict(list)
        for distance, score, i, j in pairs:
            levels[(distance, score)].append((i, j))
        l_open, i_open = lines.open, items.open

        def line_kind(i):
            row = lines.rows[i]
            return (_key(row.reference), lines.party(i), _key(row.description))

        def item_kind(j):
            return (_key(items.rows[j].reference), items.party(j))

        for distance, score, i, j in pairs:
            if not l_open[i] or i_open[j] != key[1] or l_open[i] != key[1]:
                continue
            confidence = 0.98 - 0.08 * distance / max(window, 1)
            contested = any(
                (i2 == i and j2 != j and i_open[j2] == key[1] and item_kind(j2) != item_kind(j))
                or (j2 == j and i2 != i and l_open[i2] == key[1] and line_kind(i2) != line_kind(i))
                for i2, j2 in levels[(distance, score)]
            )
            if contested:
                confidence *= 0.85
            self._allocate(i, j, l_open[i], METHOD_AMOUNT_DATE, _confidence(confidence))

    # step 3

    def by_similarity(self) -> None:
        lines, items, cfg = self.lines, self.items, self.cfg
        span = 100.0 - cfg.similarity_threshold
        for i in range(len(lines)):
            if not lines.open[i]:
                continue
            key = (lines.signs[i], lines.open[i])
            if key not in self._item_groups:
                continue
            text = lines.text(i)
            bucket = self._bucket(key) if text else None
            if bucket is None:
                continue
            candidates = []
            for p, _distance in bucket.outward(lines.days[i], cfg.similarity_max_days):
                if (i, bucket.members[p]) in self._forbid:
                    continue
                candidates.append(bucket.members[p])
                if len(candidates) >= cfg.max_group_candidates:
                    break
            found = self._similar(text, sorted(candidates), items)
            if found is None:
                continue
            chosen, score = found
            ratio = (score - cfg.similarity_threshold) / span if span > 0 else 1.0
            confidence = _confidence(round(0.6 + 0.3 * ratio, 2))
            self._allocate(i, chosen, lines.open[i], METHOD_SIMILARITY, confidence)

    # step 4

    def many_to_one(self) -> None:
        self._groups(self.lines, self.items, lambda t, k: (t, k))
        self._groups(self.items, self.lines, lambda t, k: (k, t))

    def _groups(self, targets: _Side, pool: _Side, as_pair: Callable) -> None:
        """Each open target against several open pool entries of its sign in the window.

        A group settles one counterparty: when the target names one, only pool entries whose
        party resembles it (0.80); when it names none, the entries naming none or those of a
        single party (0.75), each set tried in turn until one closes the target."""
        cfg = self.cfg
        window = cfg.date_window_days
        tolerance = _cents(cfg.tolerance)
        by_sign: dict[int, list[int]] = defaultdict(list)
        for k in range(len(pool)):
            if pool.open[k] and pool.signs[k]:
                by_sign[pool.signs[k]].append(k)
        sign_days = {s: [pool.days[k] for k in ks] for s, ks in by_sign.items()}
        # Running totals of the open amounts at the start: an upper bound later on (amounts
        # only shrink), so a window whose total is short of the target is skipped unscanned.
        sign_totals = {
            s: list(itertools.accumulate((pool.open[k] for k in ks), initial=0))
            for s, ks in by_sign.items()
        }
        # every pool entry's party, processed once (the lazy per-entry cache costs a call each)
        pool_party = [pool.party(k) for k in range(len(pool))]
        for t in range(len(targets)):
            target = targets.open[t]
            members = by_sign.get(targets.signs[t])
            if not target or not members:
                continue
            days, totals = sign_days[targets.signs[t]], sign_totals[targets.signs[t]]
            day = targets.days[t]
            lo = bisect.bisect_left(days, day - window)
            hi = bisect.bisect_right(days, day + window)
            if hi - lo < 2 or totals[hi] - totals[lo] < target - tolerance:
                continue
            # the open entries below the target within `max_group_scan` positions of the
            # target's date, in date order; narrowed by party before anything is sorted
            reach = cfg.max_group_scan
            pos = bisect.bisect_left(days, day, lo, hi)
            open_ = pool.open
            scanned = [
                k
                for k in members[max(lo, pos - reach) : min(hi, pos + reach)]
                if 0 < open_[k] < target
            ]
            if self._forbid:  # a group is built without the forbidden pairs
                scanned = [k for k in scanned if as_pair(t, k) not in self._forbid]
            if len(scanned) < 2:
                continue
            party = targets.party(t)
            if party:
                # only entries whose party resembles the target's
                hits = process.extract(
                    party,
                    [pool_party[k] for k in scanned],
                    scorer=fuzz.token_set_ratio,
                    processor=None,
                    score_cutoff=cfg.similarity_threshold,
                    limit=None,
                )
                if len(hits) < 2:
                    continue
                candidate_sets = [(sorted(scanned[n] for _c, _s, n in hits), 0.80)]
            else:
                # a target naming no party: the entries naming none, or those of one party
                # (a bank charge is not paid by three customers' receipts that happen to add up)
                by_party: dict[str, list[int]] = defaultdict(list)
                for k in scanned:
                    by_party[pool_party[k]].append(k)
                candidate_sets = [(ks, 0.75) for ks in by_party.values() if len(ks) >= 2]
            p_days = pool.days
            candidate_sets = [
                (sorted(ks, key=lambda k: (abs(p_days[k] - day), k))[:reach], confidence)
                for ks, confidence in candidate_sets
            ]
            for candidates, confidence in candidate_sets:
                if self._group(t, candidates, target, tolerance, pool, as_pair, confidence):
                    break

    def _group(
        self,
        t: int,
        scanned: list[int],
        target: int,
        tolerance: int,
        pool: _Side,
        as_pair: Callable,
        confidence: float,
    ) -> bool:
        """One group of candidates (nearest first) for a target: exact subset sum over the
        nearest `max_group_candidates`, else greedy; True when a group was allocated."""
        if len(scanned) < 2:
            return False
        open_ = pool.open
        if sum(open_[k] for k in scanned) < target - tolerance:
            return False  # cannot reach the target: no search
        group = scanned[: self.cfg.max_group_candidates]
        values = [open_[k] for k in group]
        chosen = None
        if sum(values) >= target:
            chosen = _subset_sum(values, target)
        if chosen is not None:
            picked = sorted(group[n] for n in chosen)
            for k in picked:
                self._allocate(
                    *as_pair(t, k), open_[k], METHOD_MANY_TO_ONE, _confidence(confidence)
                )
            return True
        return self._greedy(t, scanned, target, tolerance, pool, as_pair)

    def _greedy(
        self, t: int, scanned: list[int], target: int, tolerance: int, pool: _Side, as_pair
    ) -> bool:
        remaining = target
        taken = []
        for k in sorted(scanned[: self.cfg.max_group_scan]):  # oldest first
            if pool.open[k] <= remaining:
                taken.append(k)
                remaining -= pool.open[k]
                if remaining == 0:
                    break
        if len(taken) >= 2 and remaining <= tolerance:
            for k in taken:
                self._allocate(*as_pair(t, k), pool.open[k], METHOD_MANY_TO_ONE, _confidence(0.7))
            return True
        return False

    # step 5

    def result(self) -> MatchResult:
        lines, items = self.lines, self.items
        return MatchResult(
            suggestions=self.suggestions,
            review_line_ids=[lines.ids[i] for i in range(len(lines)) if lines.open[i]],
            review_item_ids=[items.ids[j] for j in range(len(items)) if items.open[j]],
        )
