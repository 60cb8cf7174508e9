#!/bin/sh
# Regenerates src/media/h264/data/no_video.h264: the still picture a room system is sent when
# nobody in the room publishes H.264 video. One IDR access unit, 640x360, Constrained Baseline
# level 3.0, each slice at most 1100 bytes (so packetization-mode 0 devices can take it too).
set -eu
out="$(dirname "$0")/../src/media/h264/data/no_video.h264"
font=/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf
ffmpeg -hide_banner -loglevel error -y -f lavfi -i "color=c=0x1d2733:s=640x360:r=1" \
  -vf "drawtext=fontfile=$font:text='jonction — no video':fontcolor=0xd0d8e0:fontsize=30:x=(w-text_w)/2:y=(h-text_h)/2" \
  -frames:v 1 -c:v libx264 -profile:v baseline -level 3.0 -pix_fmt yuv420p \
  -x264-params "slice-max-size=1100:keyint=1:aud=0:repeat-headers=1" -bsf:v h264_metadata=aud=remove \
  -f h264 "$out"
ls -l "$out"
