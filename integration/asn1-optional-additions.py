#!/usr/bin/env python3
"""Marks every mandatory SEQUENCE extension addition of an ASN.1 module OPTIONAL, in place,
and prints one `-- CHANGED:` line per field (Type.field), for the module header.

Why: H.225.0 made fields mandatory in later versions (e.g. RegistrationRequest.keepAlive,
v2+) that older endpoints never send. In PER an extension addition is flagged present or
absent in the extension bitmap either way, so OPTIONAL changes no encoding; it only lets a
decoder accept a PDU from an older version, as X.691 requires. rasn rejects the absent
mandatory ones ("Extension ... required, but not present").
Usage: integration/asn1-optional-additions.py asn1/H323-MESSAGES.asn
"""
import re, sys

path = sys.argv[1]
text = open(path).read()

# Comments masked to spaces (same length) so positions stay valid.
masked = list(text)
i = 0
while i < len(text):
    if text.startswith("--", i):
        j = i + 2
        while j < len(text) and text[j] != "\n" and not text.startswith("--", j):
            j += 1
        end = j + 2 if text.startswith("--", j) else j
        for k in range(i, end):
            if masked[k] != "\n":
                masked[k] = " "
        i = end
    else:
        i += 1
masked = "".join(masked)

inserts, changed = [], []
for m in re.finditer(r"\bSEQUENCE\s*\{", masked):
    owner = re.findall(r"([A-Za-z][\w-]*)\s*(?:::=|SEQUENCE\s*\{|\s)", masked[:m.start()])
    tname = re.findall(r"([A-Za-z][\w-]*)\s*::=", masked[:m.start()])[-1]
    fname = masked[:m.start()].split()[-1] if not masked[:m.start()].rstrip().endswith("::=") else ""
    where = tname + ("." + fname if fname else "")
    depth, start, ellipses = 0, m.end(), 0
    pos = m.end()
    while True:
        c = masked[pos]
        if c in "{(":
            depth += 1
        elif c in ")}" and depth > 0:
            depth -= 1
        elif (c == "," or c == "}") and depth == 0:
            comp = masked[start:pos]
            flat = re.sub(r"\{[^{}]*\}", "", comp)
            while re.search(r"\{[^{}]*\}", flat):
                flat = re.sub(r"\{[^{}]*\}", "", flat)
            word = comp.strip()
            if word.startswith("..."):
                ellipses += 1
            elif ellipses % 2 == 1 and word and not re.search(r"\b(OPTIONAL|DEFAULT)\b", flat):
                end = start + len(comp.rstrip())
                inserts.append(end)
                changed.append(f"{where}.{word.split()[0]}")
            start = pos + 1
            if c == "}":
                break
        pos += 1

for pos in sorted(set(inserts), reverse=True):
    text = text[:pos] + " OPTIONAL" + text[pos:]
open(path, "w").write(text)
for c in changed:
    print(c)
