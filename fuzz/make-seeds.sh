#!/usr/bin/env bash
# Seed corpus for `cargo fuzz run recognise` and `oldkey`: the committed PuTTY and P-521 fixtures
# plus fresh throwaway keys of every type and format from ssh-keygen (not committed, so that no
# private key, however throwaway, lives in the repository). Run from fuzz/.
set -euo pipefail
out=seeds/recognise
mkdir -p "$out" seeds/oldkey seeds/sshconfig
cp ../tests/fixtures/putty/*.ppk ../tests/fixtures/putty/expected/*.pub ../tests/fixtures/ecdsa521_short_scalar* "$out"/
for spec in "rsa 2048" "ecdsa 256" "ecdsa 521" "ed25519 0" "dsa 1024"; do
    set -- $spec
    for fmt in RFC4716 PEM PKCS8; do
        for pass in "" "fuzz passphrase"; do
            f="$out/$1-$2-$fmt-${#pass}"
            rm -f "$f" "$f.pub"
            bits=(); [ "$2" != 0 ] && bits=(-b "$2")
            ssh-keygen -q -t "$1" "${bits[@]}" -m "$fmt" -N "$pass" -a 2 -f "$f" </dev/null
        done
    done
done
cp "$out"/* seeds/oldkey/
printf 'Host jasmin\n  IdentityFile ~/.ssh/id_rsa_jasmin\nHost x\n\tidentityfile="/home/alice/.ssh/id rsa"\n' >seeds/sshconfig/config
ls "$out" | wc -l
