#!/usr/bin/env bash
# Regenerates the caller voice prompts embedded by src/prompt/ (development time only: the
# WAVs are committed, the build does not run espeak-ng).
#
# Output: src/prompt/audio/{fr,en}/<name>.wav, mono, 16-bit PCM, 16 kHz, peak-normalised to
# -3 dBFS with 100 ms of silence at each end.
# Needs: espeak-ng (voices fr, en-us) and sox.
set -euo pipefail

cd "$(dirname "$0")/.."
out=src/prompt/audio
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

say() { # say <lang dir> <voice> <name> <text>
    local dir=$1 voice=$2 name=$3 text=$4
    mkdir -p "$out/$dir"
    espeak-ng -v "$voice" -s 150 -w "$tmp/raw.wav" "$text"
    sox "$tmp/raw.wav" -r 16000 -c 1 -b 16 -e signed-integer "$out/$dir/$name.wav" \
        norm -3 pad 0.1 0.1
}

say fr fr enter_pin "Veuillez saisir le code de la réunion, suivi de la touche dièse."
say fr fr wrong_pin "Code incorrect, veuillez réessayer."
say fr fr goodbye "Trop de tentatives incorrectes. Au revoir."
say fr fr first_participant "Vous êtes le premier participant."
say fr fr meeting_ended "La réunion est terminée."
say fr fr joining "Veuillez patienter, vous rejoignez la réunion."
say fr fr unavailable "Le service est momentanément indisponible. Veuillez rappeler plus tard."

say en en-us enter_pin "Please enter your meeting PIN, followed by the hash key."
say en en-us wrong_pin "Wrong PIN, please try again."
say en en-us goodbye "Too many wrong attempts. Goodbye."
say en en-us first_participant "You are the first participant."
say en en-us meeting_ended "The meeting has ended."
say en en-us joining "Please wait, you are joining the meeting."
say en en-us unavailable "The service is temporarily unavailable. Please call again later."

for f in "$out"/*/*.wav; do
    printf '%s\t%ss\n' "$f" "$(soxi -D "$f")"
done
