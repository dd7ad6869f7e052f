//! No length field in a key file can make the parsers allocate much more than the file is big:
//! no single allocation beyond twice the file's size plus one 4 KiB page.
//!
//! A tracking global allocator (test-only `unsafe`, reviewed: it forwards every call to the
//! system allocator unchanged and only records the largest request) watches `recognise` on real
//! keys whose length fields are set to hostile values. This file holds a single test, so no
//! other test's allocations are counted.
//!
//! That is why it stays a test crate of its own rather than a module of `tests/cli/`: a
//! `#[global_allocator]` is process-wide, so in the shared binary it would count the allocations
//! of every test running in parallel with this one and make its maximum meaningless.
// These tests drive OpenSSH, ptys and POSIX permissions: Unix only (CI cross-checks that they
// and the crate still build for Windows).
#![cfg(unix)]

// The helpers of the main test crate, `tests/cli/`.
#[path = "cli/common/mod.rs"]
mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use base64ct::Encoding;
use keyrotate::keyfile::recognise;

use common::*;

struct Tracking;

static LARGEST: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every method forwards its arguments unchanged to `System`, which upholds the
// `GlobalAlloc` contract; the only addition is an atomic maximum of the requested sizes.
unsafe impl GlobalAlloc for Tracking {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LARGEST.fetch_max(new_size, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Tracking = Tracking;

/// The largest single allocation `recognise` makes on `bytes`.
fn largest_allocation(bytes: &[u8]) -> usize {
    LARGEST.store(0, Ordering::SeqCst);
    let _ = recognise(bytes);
    LARGEST.load(Ordering::SeqCst)
}

#[test]
fn hostile_length_fields_never_allocate_more_than_the_file_size() {
    let mut cases = 0;
    let mut worst = (0usize, 0usize, String::new());
    for spec in all_specs() {
        let bytes = std::fs::read(fixture_dir().join(spec.name)).unwrap();
        let mut inputs: Vec<(String, Vec<u8>)> = vec![(spec.name.to_string(), bytes.clone())];
        if let Ok(block) = pem::parse(&bytes) {
            let headers: Vec<(String, String)> = block
                .headers()
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            let body = block.contents().to_vec();
            for at in 0..body.len().saturating_sub(4) {
                for value in [u32::MAX, 0x000f_ffff, 0x0001_0000, 0x7fff_ffff] {
                    let mut b = body.clone();
                    b[at..at + 4].copy_from_slice(&value.to_be_bytes());
                    inputs.push((
                        format!("{} @{at}={value:#x}", spec.name),
                        rearmour(block.tag(), &headers, &b),
                    ));
                }
            }
        }
        // The public key line: the same hostile lengths inside its base64 blob.
        let public =
            std::fs::read_to_string(fixture_dir().join(format!("{}.pub", spec.name))).unwrap();
        inputs.push((format!("{}.pub", spec.name), public.clone().into_bytes()));
        let mut words = public.split_whitespace();
        let (kind, b64) = (words.next().unwrap(), words.next().unwrap());
        let blob = base64ct::Base64::decode_vec(b64).unwrap();
        for at in 0..blob.len().saturating_sub(4) {
            let mut b = blob.clone();
            b[at..at + 4].copy_from_slice(&0x000f_ffffu32.to_be_bytes());
            let line = format!("{kind} {} c\n", base64ct::Base64::encode_string(&b));
            inputs.push((format!("{}.pub @{at}", spec.name), line.into_bytes()));
            // And as a PuTTY file's public lines.
            let ppk = format!(
                "PuTTY-User-Key-File-3: {kind}\nEncryption: none\nComment: c\nPublic-Lines: 1\n{}\n\
                 Private-Lines: 1\nAAAA\nPrivate-MAC: {}\n",
                base64ct::Base64::encode_string(&b),
                "0".repeat(64)
            );
            inputs.push((format!("{}.ppk @{at}", spec.name), ppk.into_bytes()));
        }
        for (label, input) in inputs {
            let largest = largest_allocation(&input);
            cases += 1;
            if largest.saturating_sub(input.len()) > worst.0.saturating_sub(worst.1) {
                worst = (largest, input.len(), label.clone());
            }
            assert!(
                largest <= 2 * input.len() + 4096,
                "{label}: a {}-byte file made keyrotate allocate {largest} bytes at once",
                input.len()
            );
        }
    }
    eprintln!("{cases} inputs; largest allocation over file size: {worst:?}");
    assert!(cases > 10_000);
}
