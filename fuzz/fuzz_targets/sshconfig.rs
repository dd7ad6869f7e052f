//! Finding and rewriting `IdentityFile` lines of arbitrary ssh config text.
#![no_main]

use std::path::{Path, PathBuf};

use keyrotate::rotate::sshconfig::{find, rewrite};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let home = Path::new("/home/alice");
    let ssh = home.join(".ssh");
    let wanted: Vec<PathBuf> = vec![ssh.join("id_rsa_jasmin"), ssh.join("id rsa")];
    let lines = find(text, &wanted, Some(home), &ssh);
    let out = rewrite(text, &lines, &ssh.join("id_ecdsa_jasmin"), Some(home));
    // Rewriting changes only the matched lines: line count is kept, and nothing matches after.
    assert_eq!(out.split_inclusive('\n').count(), text.split_inclusive('\n').count());
    assert!(find(&out, &wanted, Some(home), &ssh).is_empty());
});
