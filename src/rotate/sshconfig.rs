//! `IdentityFile` lines of `~/.ssh/config`: find those that name a given key file, and rewrite
//! them to name another, changing nothing else in the file.

use std::path::{Path, PathBuf};

/// One `IdentityFile` line that names a file of interest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityLine {
    /// 1-based.
    pub line_no: usize,
    pub text: String,
    /// The path as written (unquoted).
    pub value: String,
    /// Where the value points, `~` and `%d` expanded.
    pub path: PathBuf,
    /// Byte range of the value (including quotes) within the line.
    value_range: (usize, usize),
}

/// Expand what ssh expands in an `IdentityFile` that matters here: a leading `~` and `%d`
/// (home directory). Relative paths are taken relative to the SSH directory.
fn expand(value: &str, home: Option<&Path>, ssh_dir: &Path) -> PathBuf {
    let home_text = home.map(|h| h.to_string_lossy().into_owned());
    let mut text = value.to_string();
    if let Some(h) = &home_text {
        if text == "~" || text.starts_with("~/") {
            text = format!("{h}{}", &text[1..]);
        }
        text = text.replace("%d", h);
    }
    let path = PathBuf::from(text);
    if path.is_absolute() {
        path
    } else {
        ssh_dir.join(path)
    }
}

/// Every `IdentityFile` line of `config` whose path is one of `wanted`.
pub fn find(
    config: &str,
    wanted: &[PathBuf],
    home: Option<&Path>,
    ssh_dir: &Path,
) -> Vec<IdentityLine> {
    let mut found = Vec::new();
    for (i, line) in config.split_inclusive('\n').enumerate() {
        let Some((value, range)) = identity_value(line) else {
            continue;
        };
        let path = expand(&value, home, ssh_dir);
        if wanted.contains(&path) {
            found.push(IdentityLine {
                line_no: i + 1,
                text: line.trim_end_matches(['\n', '\r']).to_string(),
                value,
                path,
                value_range: range,
            });
        }
    }
    found
}

/// The value of an `IdentityFile` line, unquoted, and its byte range in the line.
fn identity_value(line: &str) -> Option<(String, (usize, usize))> {
    let body = line.trim_end_matches(['\n', '\r']);
    let start = body.len() - body.trim_start().len();
    let rest = &body[start..];
    if rest.starts_with('#') {
        return None;
    }
    let keyword_len = rest
        .find(|c: char| c.is_whitespace() || c == '=')
        .unwrap_or(rest.len());
    if !rest[..keyword_len].eq_ignore_ascii_case("identityfile") {
        return None;
    }
    let after = &rest[keyword_len..];
    let sep_len = after.len()
        - after
            .trim_start_matches(|c: char| c.is_whitespace())
            .trim_start_matches('=')
            .trim_start_matches(|c: char| c.is_whitespace())
            .len();
    let value_start = start + keyword_len + sep_len;
    let value_text = &body[value_start..];
    if let Some(quoted) = value_text.strip_prefix('"') {
        let end = quoted.find('"')?;
        return Some((
            quoted[..end].to_string(),
            (value_start, value_start + end + 2),
        ));
    }
    let end = value_text
        .find(char::is_whitespace)
        .unwrap_or(value_text.len());
    (end > 0).then(|| {
        (
            value_text[..end].to_string(),
            (value_start, value_start + end),
        )
    })
}

/// How to write `new` in the config: `~/...` when it is under `home` and the old value used `~`.
fn spelling(old_value: &str, new: &Path, home: Option<&Path>) -> String {
    let text = match (
        old_value.starts_with('~'),
        home.and_then(|h| new.strip_prefix(h).ok()),
    ) {
        (true, Some(rel)) => format!("~/{}", rel.to_string_lossy()),
        _ => new.to_string_lossy().into_owned(),
    };
    if text.contains(char::is_whitespace) {
        format!("\"{text}\"")
    } else {
        text
    }
}

/// `config` with each of `lines` now naming `new`; everything else is kept byte for byte.
pub fn rewrite(config: &str, lines: &[IdentityLine], new: &Path, home: Option<&Path>) -> String {
    let mut out = String::with_capacity(config.len());
    for (i, line) in config.split_inclusive('\n').enumerate() {
        match lines.iter().find(|l| l.line_no == i + 1) {
            Some(l) => {
                let (a, b) = l.value_range;
                out.push_str(&line[..a]);
                out.push_str(&spelling(&l.value, new, home));
                out.push_str(&line[b..]);
            }
            None => out.push_str(line),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_and_rewrites_only_the_lines_naming_the_old_key() {
        let home = Path::new("/home/alice");
        let ssh = home.join(".ssh");
        let config = "Host jasmin\n  User alice\n  IdentityFile ~/.ssh/id_rsa_jasmin\n\
                      Host other\n\tidentityfile=\"/home/alice/.ssh/id_rsa_jasmin\"\r\n\
                      # IdentityFile ~/.ssh/id_rsa_jasmin\nHost x\n  IdentityFile %d/.ssh/id_ed25519\n\
                      Host y\n  IdentityFile id_rsa_jasmin\n";
        let wanted = vec![ssh.join("id_rsa_jasmin")];
        let found = find(config, &wanted, Some(home), &ssh);
        assert_eq!(
            found.iter().map(|l| l.line_no).collect::<Vec<_>>(),
            [3, 5, 10]
        );
        let new = ssh.join("id_ecdsa_jasmin");
        let out = rewrite(config, &found, &new, Some(home));
        assert_eq!(
            out,
            "Host jasmin\n  User alice\n  IdentityFile ~/.ssh/id_ecdsa_jasmin\n\
             Host other\n\tidentityfile=/home/alice/.ssh/id_ecdsa_jasmin\r\n\
             # IdentityFile ~/.ssh/id_rsa_jasmin\nHost x\n  IdentityFile %d/.ssh/id_ed25519\n\
             Host y\n  IdentityFile /home/alice/.ssh/id_ecdsa_jasmin\n"
        );
        assert!(find(&out, &wanted, Some(home), &ssh).is_empty());
    }

    #[test]
    fn paths_with_spaces_stay_quoted() {
        let home = Path::new("/home/a b");
        let ssh = home.join(".ssh");
        let config = "IdentityFile \"~/.ssh/old key\"\n";
        let found = find(config, &[ssh.join("old key")], Some(home), &ssh);
        assert_eq!(found.len(), 1);
        let out = rewrite(config, &found, &ssh.join("new key"), Some(home));
        assert_eq!(out, "IdentityFile \"~/.ssh/new key\"\n");
    }
}
