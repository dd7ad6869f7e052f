#!/usr/bin/env bash
# Benchmark `keyrotate check --json` on an SSH directory holding 1,000 key pairs (release build),
# beside `ssh-keygen -l -f` on one file holding the same 1,000 public keys.
#
#   bash bench/check-1000.sh           # 1,000 keys, 31 runs each, prints medians and the ratio
#   bash bench/check-1000.sh --smoke   # 20 keys, 3 runs: proves the script works (used by CI)
#
# The keys (10% RSA-3072, 20% ECDSA, 70% Ed25519, half of them passphrase-protected) are made
# once with ssh-keygen and cached under target/bench/. Needs: ssh-keygen, GNU date, sort.
set -euo pipefail
cd "$(dirname "$0")/.."

n=1000 runs=31
if [ "${1:-}" = --smoke ]; then n=20 runs=3; fi

cargo build --release --quiet
bin=$PWD/target/release/keyrotate
root=$PWD/target/bench/keys-$n
dir=$root/.ssh

make_key() {
    local i=$1 dir=$2 type bits pass
    case $((i % 10)) in
        0) type=rsa bits=3072 ;;
        1 | 2) type=ecdsa bits=$((i % 3 == 0 ? 521 : 256)) ;;
        *) type=ed25519 bits= ;;
    esac
    pass=$([ $((i % 2)) = 0 ] && echo "bench passphrase $i" || true)
    ssh-keygen -q -t "$type" ${bits:+-b "$bits"} -N "$pass" -C "bench key $i" \
        -f "$dir/id_${type}_$i" </dev/null
}
export -f make_key

if [ ! -f "$root/complete" ]; then
    echo "making $n key pairs in $dir (once) ..."
    rm -rf "$root"
    mkdir -p "$dir"
    chmod 700 "$dir"
    seq 1 "$n" | xargs -P "$(nproc)" -I{} bash -c 'make_key {} "$0"' "$dir"
    cat "$dir"/*.pub >"$root/all.pub"
    touch "$root/complete"
fi

# Median wall time in milliseconds of running "$@" $runs times (output discarded).
median_ms() {
    local times=() start end
    for _ in $(seq 1 "$runs"); do
        start=$(date +%s%N)
        "$@" >/dev/null 2>&1 || true
        end=$(date +%s%N)
        times+=($(((end - start) / 1000)))
    done
    printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR]=$1} END {printf "%.2f", a[int((NR+1)/2)]/1000}'
}

# Warm the page cache, and make sure the tool really reports every key.
keys=$("$bin" --ssh-dir "$dir" check --json | grep -c '"path"' || true)
ssh-keygen -l -f "$root/all.pub" >/dev/null
[ "$keys" -eq "$n" ] || { echo "expected $n keys in the report, got $keys" >&2; exit 1; }

ours=$(median_ms "$bin" --ssh-dir "$dir" check --json)
theirs=$(median_ms ssh-keygen -l -f "$root/all.pub")
# check exits 1 when it finds problems (the bench keys have some): that is not a failure here.
rss_kib=$( { /usr/bin/time -f '%M' "$bin" --ssh-dir "$dir" check --json >/dev/null || true; } 2>&1 | tail -1)

echo "machine: $(nproc) cores, $(uname -sr), $(ssh -V 2>&1)"
printf '%-52s %10s\n' "check --json on $n keys (median of $runs)" "$ours ms"
printf '%-52s %10s\n' "ssh-keygen -l -f on $n public keys (median of $runs)" "$theirs ms"
awk -v a="$ours" -v b="$theirs" 'BEGIN {printf "%-52s %10.2f\n", "ratio keyrotate / ssh-keygen", a / b}'
awk -v k="$rss_kib" 'BEGIN {printf "%-52s %7.1f MiB\n", "peak memory (max RSS) of check --json", k / 1024}'
