#!/usr/bin/env python3
"""Known-answer vectors for src/media/srtp.rs from libsrtp (pip install pylibsrtp):
    python3 integration/make-srtp-vectors.py > tests/data/srtp/libsrtp_vectors.txt (then re-add the header)"""
import pylibsrtp
key = bytes(range(1, 31))      # master key (16) + salt (14)
gcm_key = bytes(range(1, 29))  # master key (16) + salt (12)
rtp = bytes.fromhex("80000001" "000000a0" "12345678") + bytes(range(160))
rtcp = bytes.fromhex("80c80006" "12345678") + bytes(20)
for name, prof, k in [("AES_CM_128_HMAC_SHA1_80", pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_80, key),
                      ("AES_CM_128_HMAC_SHA1_32", pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_32, key),
                      ("AEAD_AES_128_GCM", pylibsrtp.Policy.SRTP_PROFILE_AEAD_AES_128_GCM, gcm_key)]:
    pol = pylibsrtp.Policy(key=k, ssrc_type=pylibsrtp.Policy.SSRC_ANY_OUTBOUND, srtp_profile=prof)
    s = pylibsrtp.Session(policy=pol)
    p = s.protect(rtp)
    c = s.protect_rtcp(rtcp)
    print(name, p.hex(), c.hex())
