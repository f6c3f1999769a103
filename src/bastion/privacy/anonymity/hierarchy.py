"""Generalization hierarchies for categorical quasi-identifiers.

A hierarchy is a tree whose leaves are the column's values; generalizing a set of values
replaces each by the label of their lowest common ancestor. Leaves are numbered in
depth-first order, so every node covers a contiguous range of leaf codes and the lowest
common ancestor of a group is found from its smallest and largest code alone.

Hierarchy files use ARX's CSV layout: one row per value, from the value itself to the
most general label (``Paris;Île-de-France;France;*``).

>>> h = Hierarchy.from_paths([["Paris", "FR", "*"], ["Lyon", "FR", "*"], ["Rome", "IT", "*"]])
>>> codes = h.codes(["Paris", "Lyon"])
>>> h.label(h.common(int(codes.min()), int(codes.max())))
'FR'
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from bastion.errors import InvalidInput


@dataclass(frozen=True)
class Node:
    """One node: its label and the range of leaf codes it covers."""

    label: str
    low: int
    high: int  # inclusive
    children: tuple[int, ...]  # indexes into Hierarchy.nodes


class Hierarchy:
    """A tree over a column's values; node 0 is the root."""

    def __init__(self, nodes: Sequence[Node], leaves: Sequence[str]) -> None:
        self.nodes = tuple(nodes)
        self.leaves = tuple(leaves)
        self._code = {value: code for code, value in enumerate(leaves)}
        self._ancestors: dict[tuple[int, int], int] = {}  # (low, high) -> node, filled on use

    @classmethod
    def from_paths(cls, paths: Iterable[Sequence[str]]) -> Hierarchy:
        """A hierarchy from rows ``value, parent, grandparent, …, root``.

        Raises:
            InvalidInput: rows of different lengths, two roots, or a value listed twice.
        """
        rows = [list(path) for path in paths if path]
        if not rows or len({len(row) for row in rows}) != 1:
            raise InvalidInput("Every hierarchy row needs the same number of levels.")
        if len({row[-1] for row in rows}) != 1:
            raise InvalidInput("A hierarchy has one root (the last column is the same everywhere).")
        if len({row[0] for row in rows}) != len(rows):
            raise InvalidInput("A value appears twice in the hierarchy.")
        tree: dict[tuple[str, ...], list[tuple[str, ...]]] = {}
        for row in rows:
            path = tuple(reversed(row))  # root first
            for depth in range(1, len(path)):
                children = tree.setdefault(path[:depth], [])
                if path[: depth + 1] not in children:
                    children.append(path[: depth + 1])
        return cls._build(tree, (rows[0][-1],))

    @classmethod
    def from_csv(cls, path: Path) -> Hierarchy:
        """Read an ARX-style hierarchy (``;`` or ``,`` separated).

        Raises:
            InvalidInput: the file cannot be read or is not a hierarchy.
        """
        try:
            text = path.read_text()
        except OSError as exc:
            raise InvalidInput(f"Cannot read the hierarchy {path}: {exc.strerror}") from None
        delimiter = ";" if ";" in text.splitlines()[0] else ","
        return cls.from_paths(
            [r.strip() for r in row] for row in csv.reader(text.splitlines(), delimiter=delimiter)
        )

    @classmethod
    def flat(cls, values: Iterable[str]) -> Hierarchy:
        """A balanced binary tree over the values in the order given (duplicates ignored).

        For columns without a hierarchy. Each inner node is labelled with the values it
        covers (``a|b|c``), so a generalized value still says exactly which values it may be.
        """
        leaves = list(dict.fromkeys(values))
        if not leaves:
            raise InvalidInput("A column without values cannot be generalized.")
        nodes: list[Node] = []

        def build(low: int, high: int) -> int:
            index = len(nodes)
            nodes.append(Node("|".join(leaves[low : high + 1]), low, high, ()))
            if low < high:
                middle = (low + high) // 2
                children = (build(low, middle), build(middle + 1, high))
                nodes[index] = Node(nodes[index].label, low, high, children)
            return index

        build(0, len(leaves) - 1)
        return cls(nodes, leaves)

    @classmethod
    def _build(
        cls, tree: dict[tuple[str, ...], list[tuple[str, ...]]], root: tuple[str, ...]
    ) -> Hierarchy:
        nodes: list[Node] = []
        leaves: list[str] = []

        def build(path: tuple[str, ...]) -> int:
            index = len(nodes)
            nodes.append(Node(path[-1], len(leaves), len(leaves), ()))
            kids = tree.get(path, [])
            if not kids:
                leaves.append(path[-1])
                return index
            children = tuple(build(kid) for kid in kids)
            nodes[index] = Node(path[-1], nodes[children[0]].low, len(leaves) - 1, children)
            return index

        build(root)
        return cls(nodes, leaves)

    def codes(self, values: Sequence[str]) -> NDArray[np.int64]:
        """The leaf code of each value.

        Raises:
            InvalidInput: a value the hierarchy does not have.
        """
        try:
            return np.fromiter((self._code[v] for v in values), dtype=np.int64, count=len(values))
        except KeyError as exc:
            raise InvalidInput(f"The hierarchy has no value {str(exc)[:40]}.") from None

    def common(self, low: int, high: int) -> int:
        """The deepest node covering every code from ``low`` to ``high``."""
        found = self._ancestors.get((low, high))
        if found is None:
            found = self._ancestors[(low, high)] = self._walk(low, high)
        return found

    def _walk(self, low: int, high: int) -> int:
        node = 0
        while True:
            inside = [
                c
                for c in self.nodes[node].children
                if self.nodes[c].low <= low and high <= self.nodes[c].high
            ]
            if not inside:
                return node
            node = inside[0]

    def label(self, node: int) -> str:
        """The generalized value a node stands for."""
        return self.nodes[node].label

    def width(self, node: int) -> int:
        """How many values the node covers."""
        return self.nodes[node].high - self.nodes[node].low + 1
