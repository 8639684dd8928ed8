#!/usr/bin/env python3
"""Lists import cycles between the files of src/ (exit status 1 if any).

Each `use crate::…` / `use super::…` / `use self::…` (and `crate::a::b::` paths
in code) is resolved to the file that defines the module it names; a cycle is
a set of files that import each other, directly or through others. A file's
own child modules (`mod x;` in it) and `#[cfg(test)]` modules are not
counted: a parent declaring and re-exporting its children is the module
tree, not an import.
"""
import os
import re
import sys

SRC = os.environ.get("SRC") or os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src")
SRC = os.path.normpath(SRC)


def module_of(path):
    rel = os.path.relpath(path, SRC)[:-3].split(os.sep)
    if rel[-1] in ("mod", "lib"):
        rel = rel[:-1]
    return rel


def file_of(module):
    """The file defining `module` (a list of names), or None."""
    if not module:
        return os.path.join(SRC, "lib.rs")
    base = os.path.join(SRC, *module)
    for candidate in (base + ".rs", os.path.join(base, "mod.rs")):
        if os.path.isfile(candidate):
            return candidate
    return None


def resolve(module, path):
    """Deepest file for the path `path` (list) used in `module`."""
    if path[0] == "crate":
        absolute = path[1:]
    elif path[0] in ("super", "self"):
        absolute = list(module)
        while path and path[0] in ("super", "self"):
            if path[0] == "super":
                absolute = absolute[:-1]
            path = path[1:]
        absolute = absolute + path
    else:
        return None
    for end in range(len(absolute), -1, -1):
        found = file_of(absolute[:end])
        if found:
            return found
    return None


def expand_use(tree):
    """`a::{b, c::{d, e}}` -> ["a::b", "a::c::d", "a::c::e"]."""
    tree = re.sub(r"\s+", "", tree)
    brace = tree.find("{")
    if brace < 0:
        return [tree.split(" as ")[0]] if tree else []
    prefix, inner = tree[:brace], tree[brace + 1 : tree.rfind("}")]
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(inner):
        depth += {"{": 1, "}": -1}.get(ch, 0)
        if ch == "," and depth == 0:
            parts.append(inner[start:i])
            start = i + 1
    parts.append(inner[start:])
    out = []
    for part in parts:
        if part in ("", "self"):
            out.append(prefix.rstrip(":"))
            continue
        out.extend(prefix + sub for sub in expand_use(part))
    return out


def strip_tests(text):
    """Drops `#[cfg(test)] mod … { … }` blocks (by brace counting)."""
    out, i = [], 0
    pattern = re.compile(r"#\[cfg\(test\)\]\s*mod\s+\w+\s*\{")
    while True:
        m = pattern.search(text, i)
        if not m:
            out.append(text[i:])
            return "".join(out)
        out.append(text[i : m.start()])
        depth, j = 1, m.end()
        while depth and j < len(text):
            depth += {"{": 1, "}": -1}.get(text[j], 0)
            j += 1
        i = j


def edges():
    graph = {}
    for root, _, files in os.walk(SRC):
        for name in files:
            if not name.endswith(".rs"):
                continue
            path = os.path.join(root, name)
            module = module_of(path)
            text = strip_tests(open(path, encoding="utf-8").read())
            text = re.sub(r"//.*", "", text)
            children = set(re.findall(r"^\s*(?:pub(?:\([^)]*\))?\s+)?mod\s+(\w+)\s*;", text, re.M))
            targets = set()
            paths = re.findall(r"\b((?:crate|super|self)(?:::\w+)+)", text)
            for tree in re.findall(r"\buse\s+((?:crate|super|self)::[^;]*\{[^;]*);", text):
                paths.extend(p.replace("asself", "") for p in expand_use(tree))
            for use in paths:
                parts = use.split("::")
                if parts[0] == "self" and len(parts) > 1 and parts[1] in children:
                    continue
                target = resolve(module, parts)
                if target and target != path:
                    tmod = module_of(target)
                    # A parent reaching into its own child is the tree, not an import.
                    if tmod[: len(module)] == module and len(tmod) > len(module):
                        continue
                    targets.add(target)
            graph[path] = targets
    return graph


def cycles(graph):
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            scc = []
            while True:
                w = stack.pop()
                on.discard(w)
                scc.append(w)
                if w == v:
                    break
            if len(scc) > 1:
                out.append(sorted(scc))

    sys.setrecursionlimit(10000)
    for v in graph:
        if v not in index:
            visit(v)
    return out


if __name__ == "__main__":
    found = cycles(edges())
    for scc in found:
        print("import cycle:", " <-> ".join(os.path.relpath(p, SRC) for p in scc))
    sys.exit(1 if found else 0)
