//! Every key-file parser (OpenSSH, PEM, PKCS#8, PuTTY, public keys) on arbitrary bytes.
#![no_main]

use keyrotate::keyfile::{Recognised, recognise};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Recognised::Key(key) = recognise(data) {
        // What check does with a parsed key must not panic either.
        let _ = key.encrypted();
        let _ = key.algorithm();
        if let Some(public) = &key.public {
            let _ = public.to_openssh_line(key.comment.as_deref());
        }
    }
    let _ = keyrotate::keyfile::looks_private(data);
});
