//! Every key parser fed damaged versions of real keys (made by `ssh-keygen` and `puttygen`):
//! truncation at every offset, flipped bytes in the armour, and flipped bytes and hostile length
//! fields inside the decoded key. Nothing may panic, hang, or take more than a moment.
// These tests drive OpenSSH, ptys and POSIX permissions: Unix only (CI cross-checks that they
// and the crate still build for Windows).
#![cfg(unix)]

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use keyrotate::keyfile::{Recognised, recognise};

use crate::common::*;

fn originals() -> Vec<(String, Vec<u8>)> {
    let mut keys = Vec::new();
    for spec in all_specs() {
        let path = fixture_dir().join(spec.name);
        keys.push((spec.name.to_string(), fs::read(&path).unwrap()));
        let pub_path = fixture_dir().join(format!("{}.pub", spec.name));
        keys.push((format!("{}.pub", spec.name), fs::read(pub_path).unwrap()));
    }
    let putty = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/putty");
    for name in [
        "rsa2048-v2-enc",
        "ecdsa521-v3-plain",
        "ed25519-v3-enc",
        "dsa1024-v2-plain",
    ] {
        keys.push((
            name.to_string(),
            fs::read(putty.join(format!("{name}.ppk"))).unwrap(),
        ));
    }
    keys
}

fn recognise_quickly(what: &str, bytes: &[u8]) -> Recognised {
    let start = Instant::now();
    let verdict = recognise(bytes);
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "{what}: took {:?}",
        start.elapsed()
    );
    verdict
}

#[test]
fn the_originals_parse() {
    for (name, bytes) in originals() {
        assert!(matches!(recognise(&bytes), Recognised::Key(_)), "{name}");
    }
}

#[test]
fn truncation_at_every_offset_never_panics_and_is_never_the_original() {
    for (name, bytes) in originals() {
        let Recognised::Key(original) = recognise(&bytes) else {
            panic!("{name}")
        };
        // The final newline (and the base64 padding line break) may go without loss.
        let meaningful = bytes
            .iter()
            .rposition(|b| !b.is_ascii_whitespace())
            .unwrap()
            + 1;
        for cut in 0..meaningful {
            if let Recognised::Key(key) = recognise_quickly(&name, &bytes[..cut]) {
                // A public key line cut inside its comment is still the same key.
                let same_key = key.public.as_ref().map(|p| p.fingerprint())
                    == original.public.as_ref().map(|p| p.fingerprint());
                assert!(
                    same_key && key.format == keyrotate::keyfile::Format::Public,
                    "{name} cut at {cut} parsed as a different key"
                );
            }
        }
    }
}

#[test]
fn flipped_bytes_in_the_file_never_panic() {
    for (name, bytes) in originals() {
        for at in 0..bytes.len() {
            for mask in [0x01u8, 0x80, 0xff] {
                let mut damaged = bytes.clone();
                damaged[at] ^= mask;
                recognise_quickly(&name, &damaged);
            }
        }
    }
}

/// Re-armour a modified binary body the way the original was armoured.
#[test]
fn damage_inside_the_decoded_key_never_panics() {
    let mut cases = 0usize;
    for (name, bytes) in originals() {
        let Ok(block) = pem::parse(&bytes) else {
            continue;
        };
        let tag = block.tag().to_string();
        let headers: Vec<(String, String)> = block
            .headers()
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let body = block.contents().to_vec();
        for at in 0..body.len() {
            let mut mutations: Vec<Vec<u8>> = Vec::new();
            // Every single-bit flip, and the whole byte inverted.
            for mask in [0x01u8, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40, 0x80, 0xff] {
                let mut b = body.clone();
                b[at] ^= mask;
                mutations.push(b);
            }
            // Length fields: a 32-bit big-endian value at every offset, huge and off-by-one.
            if at + 4 <= body.len() {
                let old = u32::from_be_bytes(body[at..at + 4].try_into().unwrap());
                for value in [
                    u32::MAX,
                    0x7fff_ffff,
                    0x0010_0000,
                    old.wrapping_add(1),
                    old.wrapping_sub(1),
                    0,
                ] {
                    let mut b = body.clone();
                    b[at..at + 4].copy_from_slice(&value.to_be_bytes());
                    mutations.push(b);
                }
            }
            for damaged in mutations {
                recognise_quickly(
                    &format!("{name} @{at}"),
                    &rearmour(&tag, &headers, &damaged),
                );
                cases += 1;
            }
        }
        for cut in 0..body.len() {
            recognise_quickly(&name, &rearmour(&tag, &headers, &body[..cut]));
            cases += 1;
        }
        // Two-bit flips at pseudo-random places (a fixed LCG, so every run tries the same ones).
        let mut state = 0x2545_f491_4f6c_dd1du64 ^ body.len() as u64;
        let mut next = |limit: usize| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            ((state >> 33) as usize) % limit
        };
        for _ in 0..400 {
            let mut b = body.clone();
            let (i, j) = (next(b.len()), next(b.len()));
            b[i] ^= 1 << next(8);
            b[j] ^= 1 << next(8);
            recognise_quickly(&format!("{name} 2-bit"), &rearmour(&tag, &headers, &b));
            cases += 1;
        }
    }
    eprintln!("{cases} decoded-key mutations");
    assert!(cases > 200_000, "only {cases} mutations exercised");
}

#[test]
fn base64_level_damage_never_panics() {
    for (name, bytes) in originals() {
        let text = String::from_utf8(bytes).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        for i in 0..lines.len() {
            let mut without = lines.clone();
            without.remove(i);
            recognise_quickly(&name, without.join("\n").as_bytes());
            let mut doubled = lines.clone();
            doubled.insert(i, lines[i]);
            recognise_quickly(&name, doubled.join("\n").as_bytes());
            for junk in [
                "!!!!",
                "====",
                "\u{0}",
                "é",
                "-----END OPENSSH PRIVATE KEY-----",
            ] {
                let mut with_junk = lines.clone();
                with_junk.insert(i, junk);
                recognise_quickly(&name, with_junk.join("\n").as_bytes());
            }
        }
        recognise_quickly(&name, text.replace('\n', "\r\n").as_bytes());
    }
}
