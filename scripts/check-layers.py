#!/usr/bin/env python3
"""Checks holdfast's layering: the top-level modules of src/ import one another without cycles.

Every `crate::<module>` path in a file counts as an import of that top-level module (doc
comments and line comments are ignored; test modules count too). Prints the import graph and
exits 1 naming each cycle. ARCHITECTURE.md describes the intended order of the layers.

Usage: scripts/check-layers.py [SRC_DIR]   (default: src next to this script's parent)
"""

import os
import re
import sys


def top_module(src, path):
    rel = os.path.relpath(path, src).split(os.sep)
    if len(rel) > 1:
        return rel[0]
    # `routes_tests.rs` holds the unit tests of `routes.rs` (included with #[path]).
    name = rel[0][:-3]
    return name[: -len("_tests")] if name.endswith("_tests") else name


def imports(src):
    graph = {}
    for folder, _, files in os.walk(src):
        for name in files:
            if not name.endswith(".rs"):
                continue
            path = os.path.join(folder, name)
            module = top_module(src, path)
            if module in ("lib", "main"):
                continue
            text = open(path, encoding="utf-8").read()
            text = re.sub(r"//[^\n]*", "", text)
            targets = graph.setdefault(module, set())
            for m in re.finditer(r"\bcrate::([a-z_][a-z0-9_]*)", text):
                if m.group(1) != module:
                    targets.add(m.group(1))
    return graph


def cycles(graph):
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    src = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "..", "src")
    graph = imports(src)
    for module in sorted(graph):
        print(f"{module:10} -> {', '.join(sorted(graph[module])) or '-'}")
    bad = cycles(graph)
    for component in bad:
        edges = [f"{a} -> {b}" for a in component for b in sorted(graph[a]) if b in component]
        print(f"cycle between {', '.join(component)}: {'; '.join(edges)}", file=sys.stderr)
    if bad:
        sys.exit(1)
    print("layers: no import cycle between top-level modules")


if __name__ == "__main__":
    main()
