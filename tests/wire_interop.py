#!/usr/bin/env python3
"""wire_interop.py - the flatc side of tests/test_wire.c.

For every JSON fixture in --fixtures (one message each, in flatc's JSON form
of ipc/schema/inferd.fbs) this script, using Python code that flatc generates
into --work at run time:

  json   flatc --binary turns the fixture into WORK/NAME.infd (for C to read);
  py     the generated object API builds WORK/NAME.py.bin from the fixture
         (for C to read);
  pyself the generated readers decode NAME.py.bin and NAME.infd back to the
         fixture (a check of this script itself);
  c      when WORK/NAME.c.bin exists (built by the C builder): the generated
         readers decode it and every field must equal the fixture (absent
         fields: the schema default);
  cjson  flatc --json --strict-json of NAME.c.bin must equal the fixture.

Each check prints one line "RESULT NAME CHECK ok" or "RESULT NAME CHECK FAIL
why"; a last "coverage" line fails when some field of the schema never has a
non-default value in any fixture. Exit status: 0 when all passed.

Usage: wire_interop.py --flatc FLATC --schema FBS --fixtures DIR --work DIR
"""
import argparse
import glob
import importlib
import json
import math
import os
import re
import struct
import subprocess
import sys

# Tables reached through a field (for building from JSON); everything else
# is a scalar, a string or a vector of them.
SUBTABLES = {
    ("Hello", "requested"): "Limits",
    ("Welcome", "limits"): "Limits",
    ("Request", "sampling"): "SamplingParams",
    ("TokenChunk", "logprobs"): "TokenLogprobs",
    ("TokenLogprobs", "top"): "TopLogprob",
    ("Done", "usage"): "Usage",
    ("Done", "timings"): "Timings",
    ("Models", "models"): "ModelInfo",
    ("Stats", "histograms"): "Histogram",
}
# Enum-typed fields: fixtures name the value, the generated code uses ints.
# A vector of an enum is listed as "field[]" (its elements).
ENUM_FIELDS = {"finish_reason": "FinishReason", "code": "ErrorCode", "body_type": "Body",
               "sample_finish[]": "FinishReason", "id": "HistogramId"}


def snake(name):
    return re.sub(r"([A-Z])", lambda m: "_" + m.group(1).lower(), name)


def camel(name):
    head, *rest = name.split("_")
    return head + "".join(p[:1].upper() + p[1:] for p in rest)


class Wire:
    """The generated modules, imported from the work folder."""

    def __init__(self, pydir):
        sys.path.insert(0, pydir)
        self.mods = {}

    def mod(self, name):
        if name not in self.mods:
            self.mods[name] = importlib.import_module("inferd.wire." + name)
        return self.mods[name]

    def obj_class(self, name):
        return getattr(self.mod(name), name + "T")

    def enum_value(self, enum, label):
        cls = getattr(self.mod(enum), enum)
        if not hasattr(cls, label):
            raise ValueError("%s has no value %s" % (enum, label))
        return getattr(cls, label)

    def enum_name(self, enum, value):
        cls = getattr(self.mod(enum), enum)
        for k, v in vars(cls).items():
            if not k.startswith("_") and v == value:
                return k
        return value


def f32(x):
    return struct.unpack("<f", struct.pack("<f", x))[0]


class Mismatch(Exception):
    pass


class Checker:
    """Compares decoded object-API trees with fixtures; records coverage."""

    def __init__(self, wire):
        self.wire = wire
        self.fields = {}  # table name -> set of fields
        self.covered = {}  # table name -> set of fields given non-default values

    def compare(self, obj, exp, path, record):
        table = type(obj).__name__[:-1]  # FooT -> Foo
        if not isinstance(exp, dict):
            raise Mismatch("%s: fixture has %r where a table is expected" % (path, exp))
        defaults = vars(type(obj)())
        attrs = vars(obj)
        self.fields.setdefault(table, set()).update(snake(a) for a in attrs)
        for key in exp:
            if camel(key) not in attrs:
                raise Mismatch("%s: fixture field %s is not in %s" % (path, key, table))
        for attr, got in attrs.items():
            key = snake(attr)
            where = path + "." + key
            if key in exp:
                want = exp[key]
                if record and want != defaults[attr] and want is not None:
                    self.covered.setdefault(table, set()).add(key)
            else:
                want = defaults[attr]
            self.compare_value(table, key, got, want, where, record)

    def compare_value(self, table, key, got, want, where, record):
        if key in ENUM_FIELDS and isinstance(want, str):
            want = self.wire.enum_value(ENUM_FIELDS[key], want)
        if key == "body":
            if got is None or want is None:
                if got is not want:
                    raise Mismatch("%s: present on one side only" % where)
                return
            self.compare(got, want, where, record)
            return
        if hasattr(got, "tolist"):  # a numpy array, when numpy is installed
            got = got.tolist()
        if got is None or want is None:
            if got is not None or want is not None:
                raise Mismatch("%s: got %r, want %r" % (where, got, want))
            return
        if (table, key) in SUBTABLES and not isinstance(got, list):
            self.compare(got, want, where, record)
            return
        if isinstance(got, list):
            if not isinstance(want, list) or len(got) != len(want):
                raise Mismatch("%s: got %d elements, want %r" % (where, len(got), want))
            for i, (g, w) in enumerate(zip(got, want)):
                if (table, key) in SUBTABLES:
                    self.compare(g, w, "%s[%d]" % (where, i), record)
                else:
                    self.compare_value(table, key + "[]", g, w, "%s[%d]" % (where, i), record)
            return
        if isinstance(got, bytes):
            if not isinstance(want, str) or got != want.encode("utf-8"):
                raise Mismatch("%s: got %r, want %r" % (where, got, want))
            return
        if isinstance(got, float):
            # float32 fields; an absent one reads as the schema's literal.
            if not isinstance(want, (int, float)) or not (
                    f32(got) == f32(want) or (math.isnan(got) and math.isnan(want))):
                raise Mismatch("%s: got %r, want %r" % (where, got, want))
            return
        if isinstance(got, bool) or isinstance(want, bool):
            if bool(got) != bool(want) or not isinstance(want, bool):
                raise Mismatch("%s: got %r, want %r" % (where, got, want))
            return
        if got != want or type(got) is not type(want):
            raise Mismatch("%s: got %r, want %r" % (where, got, want))

    def uncovered(self):
        missing = []
        for table, fields in sorted(self.fields.items()):
            for f in sorted(fields - self.covered.get(table, set())):
                missing.append(table + "." + f)
        return missing


def build_obj(wire, table, data):
    """A generated object-API tree from a fixture table."""
    obj = wire.obj_class(table)()
    attrs = vars(obj)
    for key, val in data.items():
        attr = camel(key)
        if attr not in attrs:
            raise Mismatch("fixture field %s is not in %s" % (key, table))
        if key == "body_type":
            continue
        if key in ENUM_FIELDS and isinstance(val, str):
            val = wire.enum_value(ENUM_FIELDS[key], val)
        if key + "[]" in ENUM_FIELDS and isinstance(val, list):
            val = [wire.enum_value(ENUM_FIELDS[key + "[]"], v) if isinstance(v, str) else v
                   for v in val]
        sub = SUBTABLES.get((table, key))
        if key == "body":
            val = build_obj(wire, data["body_type"], val)
            setattr(obj, "bodyType", wire.enum_value("Body", data["body_type"]))
        elif sub and isinstance(val, list):
            val = [build_obj(wire, sub, v) for v in val]
        elif sub:
            val = build_obj(wire, sub, val)
        setattr(obj, attr, val)
    return obj


def decode(wire, data):
    msg_mod = wire.mod("Message")
    if not msg_mod.Message.MessageBufferHasIdentifier(data, 0):
        raise Mismatch("file identifier is not INFD")
    return wire.obj_class("Message").InitFromBuf(data, msg_mod.Message.GetRootAs(data, 0)._tab.Pos)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--flatc", required=True)
    ap.add_argument("--schema", required=True)
    ap.add_argument("--fixtures", required=True)
    ap.add_argument("--work", required=True)
    args = ap.parse_args()

    import flatbuffers  # noqa: F401 (fail early with a clear message)

    pydir = os.path.join(args.work, "py")
    subprocess.run([args.flatc, "--python", "--gen-object-api", "-o", pydir, args.schema],
                   check=True)
    wire = Wire(pydir)
    checker = Checker(wire)
    failed = 0

    def report(name, check, err):
        nonlocal failed
        if err is None:
            print("RESULT %s %s ok" % (name, check))
        else:
            failed += 1
            print("RESULT %s %s FAIL %s" % (name, check, str(err).replace("\n", " ")))

    fixtures = sorted(glob.glob(os.path.join(args.fixtures, "*.json")))
    if not fixtures:
        print("RESULT - fixtures FAIL no fixtures in %s" % args.fixtures)
        return 1
    for path in fixtures:
        name = os.path.basename(path)[:-len(".json")]
        with open(path, encoding="utf-8") as fp:
            fixture = json.load(fp)

        # json: flatc parses the fixture (C reads NAME.infd).
        err = None
        r = subprocess.run([args.flatc, "--binary", "-o", args.work, args.schema, path],
                           capture_output=True, text=True)
        if r.returncode != 0 or not os.path.exists(os.path.join(args.work, name + ".infd")):
            err = "flatc --binary: " + (r.stderr or r.stdout).strip()
        report(name, "json", err)

        # py: the generated builder (C reads NAME.py.bin).
        err = None
        try:
            import flatbuffers as fb
            b = fb.Builder(256)
            b.Finish(build_obj(wire, "Message", fixture).Pack(b), file_identifier=b"INFD")
            with open(os.path.join(args.work, name + ".py.bin"), "wb") as fp:
                fp.write(b.Output())
        except Exception as e:  # noqa: BLE001 (report, keep going)
            err = "%s: %s" % (type(e).__name__, e)
        report(name, "py", err)

        # pyself: both of those decode back to the fixture.
        err = None
        try:
            for suffix in (".py.bin", ".infd"):
                with open(os.path.join(args.work, name + suffix), "rb") as fp:
                    checker.compare(decode(wire, fp.read()), fixture, name + suffix, True)
        except Exception as e:  # noqa: BLE001
            err = "%s: %s" % (type(e).__name__, e)
        report(name, "pyself", err)

        cbin = os.path.join(args.work, name + ".c.bin")
        if not os.path.exists(cbin):
            continue
        # c: the generated readers on the C builder's bytes.
        err = None
        try:
            with open(cbin, "rb") as fp:
                checker.compare(decode(wire, fp.read()), fixture, name + ".c.bin", False)
        except Exception as e:  # noqa: BLE001
            err = "%s: %s" % (type(e).__name__, e)
        report(name, "c", err)

        # cjson: flatc's JSON of the C builder's bytes is the fixture.
        err = None
        jdir = os.path.join(args.work, "cjson")
        r = subprocess.run([args.flatc, "--json", "--strict-json", "-o", jdir,
                            args.schema, "--", cbin], capture_output=True, text=True)
        out = os.path.join(jdir, name + ".c.json")
        if r.returncode != 0 or not os.path.exists(out):
            err = "flatc --json: " + (r.stderr or r.stdout).strip()
        else:
            with open(out, encoding="utf-8") as fp:
                got = json.load(fp)
            if got != fixture:
                err = "flatc --json gives %s" % json.dumps(got, sort_keys=True)
        report(name, "cjson", err)

    missing = checker.uncovered()
    report("-", "coverage", "never set by a fixture: " + ", ".join(missing) if missing else None)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
