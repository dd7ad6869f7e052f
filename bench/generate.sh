#!/usr/bin/env bash
# Benchmark `keyrotate generate` against `ssh-keygen` on the same machine (release build).
# Runs are alternated (keyrotate, ssh-keygen, keyrotate, ...) so that both see the same load; each
# row reports both medians and the median of the pairwise ratios keyrotate / ssh-keygen.
#
#   bash bench/generate.sh           # 31 pairs for Ed25519 and ECDSA, 15 for RSA
#   bash bench/generate.sh --smoke   # 2 pairs of the fast types and 1 of RSA-3072 (CI)
#
# Both write an encrypted key with 16 bcrypt rounds to a temporary directory.
set -euo pipefail
cd "$(dirname "$0")/.."

fast=31 rsa=15 rows="ed25519 ecdsa521 rsa3072 rsa4096"
if [ "${1:-}" = --smoke ]; then fast=2 rsa=1 rows="ed25519 ecdsa521 rsa3072"; fi

cargo build --release --quiet
bin=$PWD/target/release/keyrotate
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
pass="bench passphrase correct horse battery"
printf '%s\n' "$pass" >"$work/pass"

now() { date +%s%N; }

# One timed run of each, in the given order; prints "keyrotate_ns sshkeygen_ns".
pair() {
    local type=$1 bits=$2 order=$3 a b start
    rm -rf "$work/k" "$work/s" "$work/s.pub" && mkdir -m 700 "$work/k"
    run_ours() {
        start=$(now)
        "$bin" --ssh-dir "$work/k" generate -q -t "$type" ${bits:+-b "$bits"} \
            --passphrase-file "$work/pass" -f "$work/k/key"
        a=$(($(now) - start))
    }
    run_theirs() {
        start=$(now)
        ssh-keygen -q -t "$type" ${bits:+-b "$bits"} -a 16 -N "$pass" -f "$work/s" </dev/null
        b=$(($(now) - start))
    }
    if [ "$order" = 0 ]; then run_ours; run_theirs; else run_theirs; run_ours; fi
    echo "$a $b"
}

median() { sort -g | awk '{v[NR]=$1} END {print (NR % 2) ? v[(NR+1)/2] : (v[NR/2] + v[NR/2+1]) / 2}'; }

echo "machine: $(nproc) cores, $(uname -sr), $(ssh -V 2>&1)"
printf '%-22s %14s %14s %10s %6s\n' operation "keyrotate ms" "ssh-keygen ms" ratio pairs
for row in $rows; do
    case $row in
        ed25519) type=ed25519 bits= n=$fast ;;
        ecdsa521) type=ecdsa bits=521 n=$fast ;;
        rsa3072) type=rsa bits=3072 n=$rsa ;;
        rsa4096) type=rsa bits=4096 n=$rsa ;;
    esac
    results=$(for i in $(seq 1 "$n"); do pair "$type" "$bits" $((i % 2)); done)
    ours=$(awk '{print $1 / 1e6}' <<<"$results" | median)
    theirs=$(awk '{print $2 / 1e6}' <<<"$results" | median)
    ratio=$(awk '{print $1 / $2}' <<<"$results" | median)
    printf '%-22s %14.1f %14.1f %10.2f %6d\n' "generate $row" "$ours" "$theirs" "$ratio" "$n"
done
