"""Read plans for flattened JSON readings, by payload shape (pure, no I/O).

A fleet sends the same shape over and over: a Tasmota plug's SENSOR message has the same keys, the
same value types and the same units every time, only the numbers change. The reference reader
(:meth:`ingest.decoding.mapped.JsonReadings.readings` + :func:`~ingest.decoding.mapped.points_of`)
walks every leaf in Python, asks for its unit and checks its name on every message. A
:class:`Plan` is what that walk found for one shape, compiled once: where the numeric leaves are
(one ``itemgetter`` per object), their field names (already checked), and the points they make
(one for the declared-unit and unit-less fields, one per unit the payload sent; in the
reference's order). A message of a known shape is then read with C-level
gets and ``float`` conversions.

The shape (:func:`shape_of`) is every object's keys and the types of their values, nested (as deep
as the reference reads), plus the values of the top-level keys the unit function reads
(``unit_context``): everything the reference's result depends on except the numbers themselves.
A plan is only made after the reference path has read a message of that shape without refusing it,
so every name and unit was checked by it; whatever the plan cannot vouch for on a later message
(a non-finite or overflowing number, limits lower than when it was made) goes back to the
reference path, which gives the reason. tests/test_mapped_plans.py holds the two paths equal.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from operator import itemgetter
from typing import Any, Literal, NamedTuple

from core.model import DeclaredUnits, FieldValue, Point
from ingest.decoding.codecs import Source
from ingest.decoding.units import Unit

MAX_DEPTH = 16  # nesting a flattened object may have; deeper leaves are not fields
Shape = tuple[Any, ...]
UnitOf = Callable[[str, str, dict[str, Any]], Unit | None]  # (field name, leaf key, whole object) -> unit


def shape_checks(obj: dict[str, Any]) -> tuple[tuple[tuple[str, ...], tuple[str, ...], tuple[type, ...]], ...]:
    """``shape_of(obj)`` as a list of (path, keys, value types), one per object it covers, parents
    first: an object has the same shape exactly when each of its objects at those paths has those
    keys in that order and values of those types (:meth:`Plan.fits`)."""
    out: list[tuple[tuple[str, ...], tuple[str, ...], tuple[type, ...]]] = []

    def visit(node: dict[str, Any], path: tuple[str, ...], depth: int) -> None:
        types = tuple(map(type, node.values()))
        out.append((path, tuple(node), types))
        if dict in types and depth < MAX_DEPTH:  # as shape_of descends
            for k, v in node.items():
                if type(v) is dict:
                    visit(v, (*path, k), depth + 1)

    visit(obj, (), 1)
    return tuple(out)


def shape_of(obj: dict[str, Any], depth: int = 1) -> Shape:
    """Keys and value types of ``obj`` and of every object under it (to MAX_DEPTH)."""
    values = obj.values()
    types = tuple(map(type, values))
    if dict not in types or depth >= MAX_DEPTH:
        return (tuple(obj), types)
    inner = []
    for v in values:  # what shape_of(v, depth + 1) gives, without a call for an object of leaves
        if type(v) is dict:
            child = tuple(map(type, v.values()))
            inner.append(shape_of(v, depth + 1) if dict in child and depth + 1 < MAX_DEPTH else (tuple(v), child))
    return (tuple(obj), types, tuple(inner))


_interned: dict[DeclaredUnits, DeclaredUnits] = {}


def interned(units: DeclaredUnits) -> DeclaredUnits:
    """The one object for these declared units (plans and the reference path share it, so the
    field_units log recognises them by identity)."""
    found = _interned.get(units)
    if found is None:
        if len(_interned) >= 4096:
            _interned.clear()
        found = _interned[units] = units
    return found


def _get_one(key: str) -> Callable[[dict[str, Any]], tuple[Any, ...]]:
    return lambda d: (d[key],)


class Direct(NamedTuple):
    """What :meth:`Plan.read` needs for a plan of one object of numbers (unpacked at once)."""

    top_keys: tuple[str, ...]
    top_types: tuple[type, ...]
    at: str | None  # the key of the object read, or None: the message's object itself
    node_keys: tuple[str, ...]
    node_types: tuple[type, ...]
    get: Callable[[dict[str, Any]], tuple[Any, ...]]
    names: tuple[str, ...]
    tags: dict[str, str]
    units: DeclaredUnits | None


class Plan:
    """How to read one shape: objects to visit, leaves to take from each, points to make."""

    __slots__ = (
        "bools",
        "checks",
        "context",
        "ctx",
        "direct",
        "groups",
        "n_fields",
        "n_units",
        "nodes",
        "one",
        "order",
    )

    def __init__(
        self,
        obj: dict[str, Any],
        separator: str,
        skip: frozenset[str],
        bools: bool,
        unit_of: UnitOf,
        unit_context: tuple[str, ...] = (),
    ) -> None:
        # what fits() compares: the shape, and the unit context's values (only when one of its keys
        # is in the object: else the same top-level keys mean the same values, all absent)
        self.checks = shape_checks(obj)
        self.context = unit_context if any(k in obj for k in unit_context) else ()
        self.ctx = tuple(map(obj.get, self.context))
        leaves: list[tuple[int, int, str, bool, Unit | None]] = []  # (node, index in it, name, is bool, unit)
        nodes: list[tuple[tuple[str, ...], list[str]]] = []

        def walk(node: dict[str, Any], path: tuple[str, ...], prefix: str, depth: int) -> None:
            keys: list[str] = []
            at = len(nodes)
            nodes.append((path, keys))
            for k, v in node.items():
                if depth == 1 and k in skip:
                    continue
                tv = type(v)
                if tv is int or tv is float or (tv is bool and bools):
                    name = prefix + k
                    leaves.append((at, len(keys), name, tv is bool, unit_of(name, k, obj)))
                    keys.append(k)
                elif tv is dict and depth < MAX_DEPTH:
                    walk(v, (*path, k), prefix + k + separator, depth + 1)

        # the reference visits leaves depth-first in key order; values come out object by object
        # (one itemgetter each), so `order` maps them back, grouped by point (first seen first):
        # one for the fields without a unit or with a declared one, one per unit the payload sent
        walk(obj, (), "", 1)
        offsets, total = [], 0
        for _path, keys in nodes:
            offsets.append(total)
            total += len(keys)
        self.nodes = [(path, itemgetter(*keys) if len(keys) > 1 else _get_one(keys[0])) for path, keys in nodes if keys]
        by_tag: dict[str | None, list[tuple[int, str, bool]]] = {}
        declared: dict[str, str] = {}
        texts: set[str] = set()
        for node_at, index, name, is_bool, unit in leaves:
            tag = None
            if unit is not None:
                texts.add(unit.text)
                if unit.declared:
                    declared[name] = unit.text
                else:
                    tag = unit.text
            by_tag.setdefault(tag, []).append((offsets[node_at] + index, name, is_bool))
        units_of = interned(DeclaredUnits(declared)) if declared else None
        flat: list[int] = []
        groups: list[tuple[dict[str, str], DeclaredUnits | None, str | None, tuple[str, ...], int, int]] = []
        bool_at: list[int] = []
        for tag, members in by_tag.items():
            start = len(flat)
            for index, _name, is_bool in members:
                if is_bool:
                    bool_at.append(len(flat))
                flat.append(index)
            names = tuple(n for _, n, _ in members)
            tags, units = ({"unit": tag}, None) if tag is not None else ({}, units_of)
            groups.append((tags, units, names[0] if len(names) == 1 else None, names, start, len(flat)))
        self.order: Callable[[list[Any]], tuple[Any, ...]] | None = (
            None  # the objects give their values in the points' order (a plug's ENERGY object)
            if flat == list(range(len(flat)))
            else itemgetter(*flat)
            if len(flat) > 1
            else (lambda values: (values[0],))
        )
        # one object holds every leaf and they make one point: (its path, its getter, the point's
        # tags, declared units, field names); the common case, read without the general loop
        self.one: (
            tuple[
                tuple[str, ...],
                Callable[[dict[str, Any]], tuple[Any, ...]],
                dict[str, str],
                DeclaredUnits | None,
                tuple[str, ...],
            ]
            | None
        ) = (
            (self.nodes[0][0], self.nodes[0][1], groups[0][0], groups[0][1], groups[0][3])
            if len(self.nodes) == 1 and len(groups) == 1 and self.order is None
            else None
        )
        self.groups = groups
        self.bools = tuple(bool_at)
        self.n_fields = len(flat)
        self.n_units = len(texts)
        # read() without fits() and points(): numbers only, one point from one object that is the
        # object itself or one of its keys, and no other object to check (a plug's ENERGY); what
        # fits() compares, then that object's getter, field names, tags and declared units
        one_path = self.nodes[0][0] if self.nodes else ()
        self.direct: Direct | None = None
        if (
            self.one is not None
            and not self.bools
            and not self.context
            and len(one_path) <= 1
            and len(self.checks) == 1 + len(one_path)
            and self.checks[-1][0] == one_path
        ):
            _, top_keys, top_types = self.checks[0]
            _, node_keys, node_types = self.checks[-1]
            _, get, tags, units, names = self.one
            at = one_path[0] if one_path else None
            self.direct = Direct(top_keys, top_types, at, node_keys, node_types, get, names, tags, units)

    def fits(self, obj: dict[str, Any]) -> bool:
        """Whether ``obj`` has this plan's shape and unit context: what keying the plans by
        (``shape_of(obj)``, the context's values) decides, without building that key."""
        _, keys, types = self.checks[0]  # the object itself
        if tuple(obj) != keys or tuple(map(type, obj.values())) != types:
            return False
        for path, keys, types in self.checks[1:]:
            node = obj
            for key in path:  # an object the checks before this one found there
                node = node[key]
            if tuple(node) != keys or tuple(map(type, node.values())) != types:
                return False
        return not self.context or tuple(map(obj.get, self.context)) == self.ctx

    def read(self, source: Source, obj: dict[str, Any], ts: int) -> list[Point] | Literal[False] | None:
        """``points(source, obj, ts)`` if ``fits(obj)``, else False: a device's last plan tried in
        one call (tests/test_mapped_plans.py holds it to the two)."""
        direct = self.direct
        if direct is None:
            return self.points(source, obj, ts) if self.fits(obj) else False
        top_keys, top_types, at, node_keys, node_types, get, names, tags, units = direct
        if tuple(obj) != top_keys or tuple(map(type, obj.values())) != top_types:
            return False
        if at is None:
            node = obj
        else:
            node = obj[at]
            if tuple(node) != node_keys or tuple(map(type, node.values())) != node_types:
                return False
        if self.n_fields > source.max_fields or self.n_units > source.max_units:
            return None
        try:
            fields: dict[str, FieldValue] = dict(zip(names, map(float, get(node))))  # noqa: B905
        except OverflowError:
            return None
        added = sum(fields.values())  # type: ignore[arg-type]
        if added - added != 0.0:  # a non-finite value: the reference decides
            return None
        return [Point(source.measurement, source.device_id, fields, ts, dict(tags) if tags else {}, units)]

    def points(self, source: Source, obj: dict[str, Any], ts: int) -> list[Point] | None:
        """The points of ``obj`` (of this plan's shape), or None: the reference path must decide."""
        if self.n_fields > source.max_fields or self.n_units > source.max_units:
            return None
        one = self.one
        ordered: Sequence[Any]
        if one is not None:
            path, get, tags, units, names = one
            node = obj
            for key in path:
                node = node[key]
            if not self.bools:  # numbers only, one point (a plug's ENERGY): the fields straight from get
                try:
                    fields: dict[str, FieldValue] = dict(zip(names, map(float, get(node))))  # noqa: B905
                except OverflowError:
                    return None
                added = sum(fields.values())  # type: ignore[arg-type]
                if added - added != 0.0:  # as below
                    return None
                return [Point(source.measurement, source.device_id, fields, ts, dict(tags) if tags else {}, units)]
            ordered = get(node)
        else:
            values: list[Any] = []
            for path, get in self.nodes:
                node = obj
                for key in path:
                    node = node[key]
                values += get(node)
            ordered = values if self.order is None else self.order(values)
        try:
            if self.bools:
                out: list[FieldValue] = [v if type(v) is bool else float(v) for v in ordered]
                total = sum(v for v in out if type(v) is float)
            else:
                out = list(map(float, ordered))
                total = sum(out)  # type: ignore[arg-type]
        except OverflowError:
            return None
        if total - total != 0.0:  # a non-finite value (or a sum that overflowed): the reference decides
            return None
        m, device = source.measurement, source.device_id
        if one is not None:
            return [Point(m, device, dict(zip(one[4], out)), ts, dict(one[2]), one[3])]  # noqa: B905
        return [
            Point(m, device, {one: out[a]} if one is not None else dict(zip(names, out[a:b])), ts, dict(tags), units)  # noqa: B905
            for tags, units, one, names, a, b in self.groups
        ]
