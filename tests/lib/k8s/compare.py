#!/usr/bin/env python3
# compare.py — do two renderings of one kustomization hold the same objects?
# FIRST and SECOND are JSON arrays of Kubernetes objects (`kubectl kustomize`
# output turned into JSON, as tests/integration/k8s_render.sh writes it).
# Objects are keyed by (apiVersion, kind, namespace, name) and compared field
# by field, lists in order. Not a semantic diff: a defaulted field or a
# reordered list is a difference.
#
# Generated ConfigMaps and Secrets end in a hash of their content, and kustomize
# v2 and v5 compute it differently: that suffix is replaced by -HASH on both
# sides, where the object is named and wherever it is referenced.
#
# Takes triples LABEL FIRST SECOND; prints per triple `ok   LABEL: N objects
# identical (...)` or `FAIL LABEL: the first differences`, and exits 1 when any
# pair differs or is empty.
#   python3 compare.py overlays/us-east5 v5/us.json v2/us.json [LABEL A B ...]
import json
import re
import sys

HASH = re.compile(r"(.+)-[bcdfghkmt2-9]{10}")


def load(path):
    objs = json.load(open(path))
    text = json.dumps(objs)
    for o in objs:
        m = HASH.fullmatch(o["metadata"]["name"])
        if o["kind"] in ("ConfigMap", "Secret") and m:
            text = text.replace(json.dumps(o["metadata"]["name"]), json.dumps(m.group(1) + "-HASH"))
    return {(o["apiVersion"], o["kind"], o["metadata"].get("namespace", ""), o["metadata"]["name"]): o
            for o in json.loads(text)}


def diff(a, b, path):
    if type(a) is not type(b) or (not isinstance(a, (dict, list)) and a != b):
        yield f"{path}: {json.dumps(a)[:120]} / {json.dumps(b)[:120]}"
    elif isinstance(a, dict):
        for k in sorted(set(a) | set(b)):
            yield from diff(a.get(k), b.get(k), f"{path}.{k}")
    elif isinstance(a, list):
        if len(a) != len(b):
            yield f"{path}: {len(a)} items / {len(b)}"
        for i, (x, y) in enumerate(zip(a, b)):
            yield from diff(x, y, f"{path}[{i}]")


def compare(first, second):
    a, b = load(first), load(second)
    d = [f"only in the first: {'/'.join(k)}" for k in sorted(a.keys() - b.keys())]
    d += [f"only in the second: {'/'.join(k)}" for k in sorted(b.keys() - a.keys())]
    for k in sorted(a.keys() & b.keys()):
        d += list(diff(a[k], b[k], f"{k[1]}/{k[3]}"))
    if d:
        return False, f"{len(d)} differences: " + "; ".join(d[:6])
    if not a:
        return False, "nothing rendered"
    kinds = {}
    for k in a:
        kinds[k[1]] = kinds.get(k[1], 0) + 1
    return True, f"{len(a)} objects identical ({', '.join(f'{n} {k}' for k, n in sorted(kinds.items()))})"


def main(args):
    if not args or len(args) % 3:
        print("usage: compare.py LABEL FIRST SECOND [LABEL FIRST SECOND ...]", file=sys.stderr)
        return 2
    failed = 0
    for i in range(0, len(args), 3):
        try:
            same, what = compare(args[i + 1], args[i + 2])
        except (OSError, ValueError, KeyError, TypeError) as e:
            same, what = False, f"unreadable: {e}"
        print(f"{'ok  ' if same else 'FAIL'} {args[i]}: {what}")
        failed += not same
    return 1 if failed else 0


sys.exit(main(sys.argv[1:]))
