#!/usr/bin/env python3
"""Write raw auditd log lines (stdin) as laurel's JSON lines (stdout).

laurel is not packaged for Debian, so this follows its documented format
(json-format.md and laurel-about(7) of github.com/threathunters-io/laurel,
0.5-0.7): one JSON object per event with an "ID" of "SECONDS.MILLIS:SERIAL";
SYSCALL, EXECVE, CWD and PROCTITLE as objects, PATH and every other record
type as lists of objects; EXECVE's a* fields as "ARGV", PROCTITLE's
proctitle split at NUL as "ARGV"; decimal numbers as JSON numbers, hex ones
as "0x..." strings, octal ones as "0o..."; (null) as null; strings
percent-encoded below 0x20, at 0x7f and above, and for '%' and '+'; and
laurel's own enrichments (upper-case keys: ARCH, SYSCALL, UID, PPID) added
so that a reader must skip them.
"""
import collections
import json
import re
import sys

STRING_KEYS = {"proctitle", "comm", "ocomm", "exe", "cwd", "name", "key", "path", "dir", "acct", "cmd", "data"}
HEX_KEYS = {"arch", "a0", "a1", "a2", "a3", "cap_fp", "cap_fi", "cap_fver", "fp", "fi", "pp", "pi", "pe", "pa",
            "old_pp", "old_pi", "old_pe", "old_pa"}
OCTAL_KEYS = {"mode"}
FIELD = re.compile(r'([A-Za-z0-9_\[\]-]+)=("[^"]*"|\S*)')
HEADER = re.compile(r'^(?:node=(\S+) )?type=(\S+) msg=audit\(([0-9.]+:[0-9]+)\): ?(.*)$')


def pct(b):
    out = []
    for c in b:
        if c < 0x20 or c >= 0x7f or c in (0x25, 0x2b):
            out.append("%%%02x" % c)
        else:
            out.append(chr(c))
    return "".join(out)


def string_value(key, v, typ):
    if v.startswith('"') and v.endswith('"'):
        return v[1:-1].encode()
    if v == "(null)":
        return None
    if key in STRING_KEYS or (typ == "EXECVE" and re.match(r"^a\d+(\[\d+\])?$", key)):
        try:
            return bytes.fromhex(v)
        except ValueError:
            return v.encode()
    return v.encode()


def value(key, v, typ):
    if v == "(null)":
        return None
    if key in STRING_KEYS:
        return pct(string_value(key, v, typ))
    if key in HEX_KEYS and re.fullmatch(r"[0-9a-fA-F]+", v):
        return "0x" + v.lower()
    if key in OCTAL_KEYS and re.fullmatch(r"[0-7]+", v):
        return "0o" + v.lstrip("0")
    if re.fullmatch(r"-?[0-9]+", v) and not (len(v) > 1 and v.startswith("0")):
        return int(v)
    return pct(v.strip('"').encode())


def main():
    events = collections.OrderedDict()
    for line in sys.stdin:
        m = HEADER.match(line.rstrip("\n"))
        if not m:
            continue
        node, typ, ident, rest = m.groups()
        ev = events.setdefault(ident, {"ID": ident})
        if node:
            ev["NODE"] = node
        fields = FIELD.findall(rest)
        if typ == "EXECVE":
            obj = ev.setdefault("EXECVE", {"argc": 0, "ARGV": []})
            pieces = collections.OrderedDict()
            for k, v in fields:
                if k == "argc":
                    obj["argc"] = int(v)
                    continue
                mm = re.match(r"^a(\d+)(?:\[(\d+)\])?$", k)
                if mm:
                    pieces.setdefault(int(mm.group(1)), []).append(string_value(k, v, typ))
            for i in sorted(pieces):
                while len(obj["ARGV"]) <= i:
                    obj["ARGV"].append(b"")
                obj["ARGV"][i] = (obj["ARGV"][i] if isinstance(obj["ARGV"][i], bytes) else b"") + b"".join(pieces[i])
        elif typ == "PROCTITLE":
            raw = string_value("proctitle", dict(fields).get("proctitle", ""), typ)
            ev["PROCTITLE"] = {"ARGV": [pct(a) for a in raw.split(b"\0")]}
        else:
            obj = {k: value(k, v, typ) for k, v in fields}
            if typ == "SYSCALL":
                obj["ARCH"] = "x86_64" if obj.get("arch") == "0xc000003e" else "unknown"
                obj["SYSCALL"] = "execve" if obj.get("syscall") == 59 else "unknown"
                obj["UID"] = "root" if obj.get("uid") == 0 else "unknown"
                obj["PPID"] = {"EVENT_ID": "0.000:0", "comm": "enrichment", "exe": "/laurel/adds/this"}
                ev["SYSCALL"] = obj
            elif typ == "CWD":
                ev["CWD"] = obj
            else:
                ev.setdefault(typ, []).append(obj)
    for ev in events.values():
        if "EXECVE" in ev:
            ev["EXECVE"]["ARGV"] = [pct(a) if isinstance(a, bytes) else a for a in ev["EXECVE"]["ARGV"]]
        sys.stdout.write(json.dumps(ev, separators=(",", ":")) + "\n")


if __name__ == "__main__":
    main()
