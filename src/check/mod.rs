//! `check`: what is in an SSH directory and what is wrong with it. [`inventory`] scans and pairs
//! the files (it reads, never decrypts); [`findings`] is the policy, from a key's facts to
//! findings with stable codes (pure, table-tested).

pub mod findings;
pub mod inventory;
