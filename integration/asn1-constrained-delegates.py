#!/usr/bin/env python3
"""Post-processes rasn-compiler's output (src/h323/asn/src/generated.rs, in place, idempotent).

rasn 0.30 loses a named type's own constraints in two places: an OPTIONAL field whose
field-level constraints replace them (`Option<T>` carries no constraints, so
`imsi TBCD-STRING(SIZE(3..16))` loses TBCD-STRING's permitted alphabet) and an extension
addition without field-level constraints (decoded with none at all, so
`gatekeeperIdentifier` is read as an unconstrained BMPString and `timeToLive` as an
unconstrained INTEGER). Both misread real RAS messages. Every constrained delegate type
(`#[rasn(delegate, size/value/from ...)] pub struct X(pub T);`) therefore gets its codecs
from `constrained_delegate!` (src/h323/asn/src/lib.rs), which always applies the type's
own constraints, intersected with whatever the caller passes, instead of derived ones.
"""
import re
import sys

path = sys.argv[1]
text = open(path, encoding="utf-8").read()
derive = "# [derive (AsnType , Debug , Clone , Decode , Encode , PartialEq , Eq , Hash)]"
pattern = re.compile(
    re.escape(derive)
    + r" (# \[rasn \(delegate , [^\]]*\b(?:size|value|from) \([^\]]*\)\]) pub struct (\w+) \(pub ([^;]*?)\) ;"
)
count = 0


def fix(match):
    global count
    count += 1
    attrs, name, inner = match.groups()
    return (
        "# [derive (AsnType , Debug , Clone , PartialEq , Eq , Hash)] "
        f"{attrs} pub struct {name} (pub {inner}) ; "
        f"crate :: constrained_delegate ! ({name} , {inner}) ;"
    )


text = pattern.sub(fix, text)
open(path, "w", encoding="utf-8").write(text)
print(f"{path}: {count} constrained delegate types get constrained_delegate! codecs")
