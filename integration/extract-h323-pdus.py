#!/usr/bin/env python3
"""Extract the TCP PDUs (Q.931 on port 1720, H.245) of nDPI's h323.pcap into tests/data/h323/ndpi.

Each TCP direction is concatenated (retransmissions and 1-byte keep-alives dropped), split on
TPKT headers (RFC 1006), and each payload written as hex to `frameN-<kind>-<i>.hex`, N being the
frame where the TPKT starts. Q.931 payloads are kept whole (the tests unwrap them with
jonction's q931 module); H.245 payloads are MultimediaSystemControlMessage PDUs.
Usage: integration/extract-h323-pdus.py PCAP OUTDIR   (needs tshark)
"""
import subprocess, sys, os

pcap, out = sys.argv[1], sys.argv[2]
rows = subprocess.run(
    ["tshark", "-r", pcap, "-Y", "tcp.len>1 && !tcp.analysis.retransmission", "-T", "fields",
     "-e", "frame.number", "-e", "tcp.stream", "-e", "tcp.srcport", "-e", "tcp.dstport",
     "-e", "tcp.payload"], check=True, capture_output=True, text=True).stdout.splitlines()
streams = {}
for r in rows:
    frame, stream, sport, dport, payload = r.split("\t")
    key = (stream, sport)
    buf = streams.setdefault(key, {"q931": "1720" in (sport, dport), "data": b"", "frames": []})
    buf["frames"].append((len(buf["data"]), int(frame)))
    buf["data"] += bytes.fromhex(payload.replace(":", ""))
os.makedirs(out, exist_ok=True)
for key, s in streams.items():
    d, pos = s["data"], 0
    while pos + 4 <= len(d) and d[pos] == 3:
        n = int.from_bytes(d[pos + 2:pos + 4], "big")
        frame = max(f for off, f in s["frames"] if off <= pos)
        kind = "q931" if s["q931"] else "h245"
        body = d[pos + 4:pos + n]
        i = 0
        while os.path.exists(name := f"{out}/frame{frame:02}-{kind}-{i}.hex"):
            i += 1
        with open(name, "w") as f:
            f.write(body.hex() + "\n")
        pos += n
    if pos != len(d):
        print(f"stream {key}: {len(d) - pos} trailing bytes not TPKT", file=sys.stderr)
