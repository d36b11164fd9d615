"""promtext.py - a strict parser of the Prometheus text exposition format
(version 0.0.4) for tests/test_metrics.sh: every line's grammar, one TYPE and
HELP per family, counters named _total and non-negative, histograms with
cumulative buckets ending at +Inf equal to _count, and one _sum."""
import re

NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL = r'[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*"'
SAMPLE = re.compile(rf"^({NAME})(?:\{{((?:{LABEL})(?:,{LABEL})*)?\}})? (\S+)(?: (-?\d+))?$")
TYPES = {"counter", "gauge", "histogram", "summary", "untyped"}

def parse(text):
    """(types by family, [(name, labels, value, family)])"""
    assert text.endswith("\n"), "exposition must end with a newline"
    types, samples, helps = {}, [], set()
    for ln, line in enumerate(text.split("\n")[:-1], 1):
        if line.startswith("#"):
            p = line.split(" ", 3)
            if len(p) >= 3 and p[1] in ("HELP", "TYPE"):
                assert re.fullmatch(NAME, p[2]), f"{ln}: bad name {p[2]}"
                if p[1] == "TYPE":
                    assert len(p) == 4 and p[3] in TYPES, f"{ln}: bad TYPE line"
                    assert p[2] not in types, f"{ln}: second TYPE for {p[2]}"
                    assert not any(s[0] == p[2] for s in samples), f"{ln}: TYPE after samples"
                    types[p[2]] = p[3]
                else:
                    assert p[2] not in helps, f"{ln}: second HELP for {p[2]}"
                    helps.add(p[2])
            continue
        assert line.strip(), f"{ln}: empty line"
        mt = SAMPLE.match(line)
        assert mt, f"{ln}: not a sample: {line!r}"
        name, labels, value = mt.group(1), mt.group(2) or "", mt.group(3)
        v = float(value) if value not in ("+Inf", "-Inf", "NaN") else float(value.replace("Inf", "inf"))
        lab = dict(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"', labels))
        fam = name
        for suf in ("_bucket", "_sum", "_count"):
            if name.endswith(suf) and types.get(name[: -len(suf)]) == "histogram":
                fam = name[: -len(suf)]
        assert fam in types, f"{ln}: sample {name} of an undeclared family"
        if types[fam] == "histogram":
            assert name != fam, f"{ln}: bare histogram sample"
        if types[fam] == "counter":
            assert v >= 0 and name.endswith("_total"), f"{ln}: counter {name}"
        samples.append((name, lab, v, fam))
    # histograms: cumulative buckets, +Inf last and equal to _count
    for fam, t in types.items():
        if t != "histogram":
            continue
        b = [(s[1]["le"], s[2]) for s in samples if s[0] == fam + "_bucket"]
        assert b and b[-1][0] == "+Inf", f"{fam}: no +Inf bucket"
        les = [float(x.replace("+Inf", "inf")) for x, _ in b]
        assert les == sorted(les) and len(set(les)) == len(les), f"{fam}: le not increasing"
        assert all(b[i][1] <= b[i + 1][1] for i in range(len(b) - 1)), f"{fam}: not cumulative"
        cnt = [s[2] for s in samples if s[0] == fam + "_count"]
        assert cnt == [b[-1][1]], f"{fam}: _count != +Inf bucket"
        assert len([s for s in samples if s[0] == fam + "_sum"]) == 1, f"{fam}: _sum"
    return types, samples
