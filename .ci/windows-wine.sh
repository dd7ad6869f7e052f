#!/usr/bin/env bash
# Run the Windows build of keyrotate under Wine and check what only Windows does: private files
# get an owner-only access list, `check` reports a key whose access list lets others read it,
# and the default SSH directory is %USERPROFILE%\.ssh. Called by .ci/run (needs root for apt).
# Wine is not Windows: this proves the Win32 calls work as documented, not every Windows quirk.
set -euo pipefail
cd "$(dirname "$0")/.."

warn() {
    echo "ci: ##########################################################################" >&2
    echo "ci: WARNING: $*" >&2
    echo "ci: the Windows run under Wine DID NOT RUN" >&2
    echo "ci: ##########################################################################" >&2
    exit 0
}

WINE=/usr/lib/wine/wine64
if ! command -v x86_64-w64-mingw32-gcc >/dev/null || [ ! -x "$WINE" ]; then
    echo "ci: installing gcc-mingw-w64-x86-64 and wine64"
    sudo=()
    [ "$(id -u)" = 0 ] || sudo=(sudo -n)
    { "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
        "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
            gcc-mingw-w64-x86-64 wine64 >/dev/null; } ||
        warn "could not install gcc-mingw-w64-x86-64 and wine64"
fi

cargo build --locked --target x86_64-pc-windows-gnu
bindir=target/x86_64-pc-windows-gnu/debug
exe="$bindir/keyrotate.exe"
# Wine 8 lacks ProcessPrng (see .ci/wine/bcryptprimitives.c); the loader looks beside the .exe.
x86_64-w64-mingw32-gcc -shared -O2 -o "$bindir/bcryptprimitives.dll" \
    .ci/wine/bcryptprimitives.c .ci/wine/bcryptprimitives.def -ladvapi32

work=$(mktemp -d "$PWD/target/wine-XXXXXX")
trap '/usr/lib/wine/wineserver -k 2>/dev/null; rm -rf "$work"' EXIT
export WINEPREFIX="$work/prefix" WINEDEBUG=-all
winpath() { echo "Z:${1//\//\\}"; }
kr() { timeout 300 "$WINE" "$exe" "$@" </dev/null; }
fail() { echo "ci: Windows under Wine: FAILED: $*" >&2; exit 1; }
json() { python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print($1)" "$2"; }

kr --version || fail "keyrotate.exe does not start"

# 1. generate: the private key is born with an owner-only access list (Wine maps that to no
#    group/other bits on the Unix side); the key opens with its passphrase; check finds nothing.
echo "correct horse battery staple zebra" >"$work/pass"
kr --ssh-dir "$(winpath "$work/ssh")" generate -t ed25519 \
    --passphrase-file "$(winpath "$work/pass")" >/dev/null || fail "generate"
key="$work/ssh/id_ed25519_jasmin"
mode=$(stat -c %a "$key")
[ $((8#$mode & 8#007)) -eq 0 ] || fail "the new private key is open to others (unix mode $mode)"
# (Wine maps the owner's entry to group bits as well, which ssh-keygen on Linux refuses: copy.)
install -m 600 "$key" "$work/copy"
ssh-keygen -y -P "correct horse battery staple zebra" -f "$work/copy" >/dev/null ||
    fail "ssh-keygen cannot open the key"
set +e
kr --ssh-dir "$(winpath "$work/ssh")" check --json >"$work/clean.json"
status=$?
set -e
[ $status -eq 0 ] || fail "check of the new key exited $status: $(cat "$work/clean.json")"

# 2. backup: the store and the set are owner-only too.
kr --ssh-dir "$(winpath "$work/ssh")" backup --json >"$work/backup.json" || fail "backup"
for dir in "$work/ssh/key_backup" "$work/ssh/key_backup"/*/; do
    mode=$(stat -c %a "$dir")
    [ $((8#$mode & 8#007)) -eq 0 ] || fail "$dir is open to others (unix mode $mode)"
done

# 2b. A hand-made key_backup that others may read (`mkdir key_backup` of the manual procedure)
#     is tightened to owner-only, as chmod 700 does on Unix.
mkdir -p "$work/hand/key_backup"
chmod 755 "$work/hand/key_backup"
cp "$key" "$key.pub" "$work/hand/"
kr --ssh-dir "$(winpath "$work/hand")" backup -q || fail "backup into a hand-made key_backup"
mode=$(stat -c %a "$work/hand/key_backup")
[ $((8#$mode & 8#007)) -eq 0 ] || fail "a hand-made key_backup stayed open (unix mode $mode)"

# 3. A key whose access list lets Everyone read it (Wine derives it from mode 0644).
mkdir -p "$work/open"
ssh-keygen -q -t ed25519 -N "another passphrase here" -f "$work/open/id_ed25519"
chmod 644 "$work/open/id_ed25519"
set +e
kr --ssh-dir "$(winpath "$work/open")" check --json >"$work/open.json"
status=$?
set -e
[ $status -eq 1 ] || fail "check of a key readable by Everyone exited $status"
codes=$(json "[f['code'] for f in d['keys'][0]['findings']]" "$work/open.json")
message=$(json "d['keys'][0]['findings'][0]['message']" "$work/open.json")
[ "$codes" = "['insecure-permissions']" ] || fail "findings $codes"
case "$message" in *Everyone*icacls*) ;; *) fail "message: $message" ;; esac

# 4. Without --ssh-dir (and without HOME), the SSH directory is %USERPROFILE%\.ssh.
set +e
env -u HOME -u KEYROTATE_SSH_DIR timeout 300 "$WINE" "$exe" check --json </dev/null >"$work/default.json"
set -e
dir=$(json "d['ssh_dir']" "$work/default.json")
case "$dir" in 'C:\users\'*'\.ssh') ;; *) fail "default SSH directory $dir" ;; esac

# 5. rotate (the journaled transaction: renames over live files, hard links, a backup set) from
#    an ssh-keygen key to a new type; the old pair ends in a verified set, the new key opens.
mkdir -p "$work/rot"
ssh-keygen -q -t ed25519 -N "the old passphrase here" -C old -f "$work/rot/id_ed25519_jasmin"
cp "$work/rot/id_ed25519_jasmin" "$work/original"
kr --ssh-dir "$(winpath "$work/rot")" rotate -t ecdsa --no-agent --json \
    --passphrase-file "$(winpath "$work/pass")" >"$work/rotate.json" || fail "rotate"
[ ! -e "$work/rot/id_ed25519_jasmin" ] || fail "rotate left the old key live"
install -m 600 "$work/rot/id_ecdsa_jasmin" "$work/copy2"
ssh-keygen -y -P "correct horse battery staple zebra" -f "$work/copy2" >/dev/null ||
    fail "ssh-keygen cannot open the rotated key"
kr --ssh-dir "$(winpath "$work/rot")" backup --list --json >"$work/list.json" || fail "backup --list"
state=$(json "[s['state'] for s in d['sets']]" "$work/list.json")
[ "$state" = "['verified']" ] || fail "backup sets after rotate: $state"
cmp "$work/original" "$work/rot/key_backup/"2*/id_ed25519_jasmin ||
    fail "the backed-up old key differs from the original"

echo "ci: Windows under Wine: owner-only ACLs, the ACL finding, %USERPROFILE%\\.ssh and rotate work"
