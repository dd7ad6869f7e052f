//! The old-key passphrase check (decryption of OpenSSH, legacy PEM and PKCS#8 keys) on arbitrary
//! bytes, with the KDF work capped low so that each run stays fast.
#![no_main]

use keyrotate::rotate::oldkey::{KdfLimits, passphrase_opens};
use keyrotate::passphrase::Passphrase;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = KdfLimits {
        max_bcrypt_rounds: 2,
        max_pbkdf2_iterations: 2048,
        max_scrypt_bytes: 1 << 20,
    };
    let passphrase = Passphrase::new(zeroize::Zeroizing::new(b"fuzz passphrase".to_vec()));
    let _ = passphrase_opens(data, &passphrase, &limits);
});
