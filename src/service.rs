//! Service profiles: what each service needs after a rotation (where the public key goes, how to
//! paste it, the wait, its re-use rules, how to test the login), its default key type and format,
//! and the user's own profiles from `config.toml`, which override the built-ins field by field.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::generate::{KeyFormat, KeyType};

/// Where a profile came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Builtin,
    Config,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Builtin => "builtin",
            Source::Config => "config",
        }
    }
}

/// One service: everything keyrotate says or defaults to for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    /// The `--service` name (lower case).
    pub name: String,
    pub display_name: String,
    pub source: Source,
    /// The page the public key is pasted into.
    pub upload_url: Option<String>,
    /// How to paste it ("replace your key with this whole line").
    pub paste_rule: Option<String>,
    /// How long the new key takes to come into effect.
    pub wait_minutes: Option<u32>,
    /// The service's rules about keys used before.
    pub reuse: Option<String>,
    /// `generate`/`rotate`'s default when set (rotate: only without a current key).
    pub key_type: Option<KeyType>,
    pub key_format: Option<KeyFormat>,
    /// `user@host`: verify's default destination, and the login the test command uses.
    pub login: Option<String>,
    /// The login host when the user name is not known (`ssh -i KEY HOST` tests the key as the
    /// local user, or as ~/.ssh/config's `User`).
    pub host: Option<String>,
    /// deploy's default destinations.
    pub deploy: Vec<String>,
    /// Service-specific advice.
    pub notes: Vec<String>,
    /// A command that tests the new key as it is (no user name needed), e.g. `ssh -T git@github.com`.
    pub test_command: Option<String>,
    /// A command-line tool that uploads the `.pub` file given after it (`gh ssh-key add`).
    pub cli_upload: Option<String>,
    /// Certificate services: no upload; how to get a certificate for the new key instead.
    pub certificate: Option<String>,
}

/// The built-in names, in the order `services` lists them.
pub const BUILTIN: [&str; 7] = [
    "jasmin",
    "archer2",
    "cosma",
    "isambard",
    "github",
    "gitlab",
    "bitbucket",
];

fn base(name: &str, display: &str) -> Profile {
    Profile {
        name: name.to_string(),
        display_name: display.to_string(),
        source: Source::Builtin,
        upload_url: None,
        paste_rule: None,
        wait_minutes: None,
        reuse: None,
        key_type: None,
        key_format: None,
        login: None,
        host: None,
        deploy: Vec::new(),
        notes: Vec::new(),
        test_command: None,
        cli_upload: None,
        certificate: None,
    }
}

fn s(text: &str) -> Option<String> {
    Some(text.to_string())
}

/// The built-in profile of `name` (any case), if there is one.
pub fn builtin(name: &str) -> Option<Profile> {
    let name = name.to_lowercase();
    let p = match name.as_str() {
        // cedadev/jasmin-help-hugo-hinode (HEAD 1acf655, 2026-03-12):
        // content/docs/getting-started/update-a-jasmin-account.md (profile page, "Update key",
        // "allow 15 minutes", "will reject any key that it recognises has been used before (across
        // all users)", "a single line of text"); content/docs/interactive-computing/login-problems.md
        // ("20 to 60 minutes"); content/docs/interactive-computing/login-servers.md (the numbered
        // login-0N servers closed on 10 Feb 2026: login.jasmin.ac.uk);
        // content/docs/getting-started/generate-ssh-key-pair.md (ECDSA recommended since November
        // 2024: `ssh-keygen -m PEM -t ecdsa -b 521`). key_type/key_format stay unset on purpose:
        // generate's contract defaults (RSA 4096, OpenSSH) apply; the recommendation is a note.
        "jasmin" => Profile {
            upload_url: s("https://accounts.jasmin.ac.uk/account/profile/"),
            paste_rule: s("click \"Update key\" and replace your key with this whole line"),
            wait_minutes: Some(15),
            host: s("login.jasmin.ac.uk"),
            reuse: s(
                "JASMIN rejects any key it has seen before, from anyone: never upload a \
                      retired key again",
            ),
            notes: vec![
                "the portal asks you to allow 15 minutes; its login-problems page says it can take \
                 20 to 60 minutes before the key reaches every JASMIN server"
                    .to_string(),
                "JASMIN recommends ECDSA keys (since November 2024), in PEM format for the NX \
                 graphical desktop: give -t ecdsa --format pem to rotate or generate for one"
                    .to_string(),
            ],
            ..base("jasmin", "JASMIN")
        },
        // ARCHER2-HPC/archer2-docs (HEAD 7a5396d, 2026-06-24): docs/user-guide/connecting.md
        // ("Upload public part of key pair to SAFE": https://safe.epcc.ed.ac.uk, Login accounts,
        // Add Credential, SSH public key; "MFA Time-based one-time passcode"; login.archer2.ac.uk;
        // "if the same key is re-uploaded, SAFE will not map the "new" key to ARCHER2 ... delete
        // the key first, then re-upload").
        "archer2" => Profile {
            upload_url: s("https://safe.epcc.ed.ac.uk"),
            paste_rule: s(
                "open Login accounts, choose your ARCHER2 account, click Add Credential, \
                           choose SSH public key and paste this whole line",
            ),
            reuse: s(
                "SAFE does not map a key uploaded again to ARCHER2 unless the old copy is \
                      deleted first; delete the retired key from the account",
            ),
            notes: vec![
                "logging in to ARCHER2 needs both the key and a TOTP code from the authenticator \
                 you set up in SAFE"
                    .to_string(),
            ],
            host: s("login.archer2.ac.uk"),
            ..base("archer2", "ARCHER2")
        },
        // https://www.durham.ac.uk/departments/academic/physics/cosma/cosma-support/getting-a-cosma-account/
        // (the key goes into the DiRAC SAFE, https://safe.epcc.ed.ac.uk/dirac/; "cosma-support will
        // then add your key to the system (so it might take a few minutes"); ed25519 first);
        // https://cosma.readthedocs.io/en/latest/sshkey.html (`ssh-keygen -t ed25519`). The login
        // host was not confirmed by those pages, so `login` stays unset.
        "cosma" => Profile {
            upload_url: s("https://safe.epcc.ed.ac.uk/dirac/"),
            paste_rule: s("add this whole line as an SSH public key of your COSMA login account"),
            key_type: Some(KeyType::Ed25519),
            reuse: s(
                "delete the retired key from SAFE too (SAFE maps a key uploaded again only \
                      after the old one is deleted)",
            ),
            notes: vec![
                "COSMA staff add the key to the system by hand: it might take a few minutes, or \
                 longer when they are busy"
                    .to_string(),
            ],
            ..base("cosma", "COSMA")
        },
        // isambard-sc/clifton README.md (`clifton auth` "will authenticate with the online portal
        // and download a signed SSH certificate", `--identity=` for a non-standard key file;
        // `clifton ssh-config write`) and its docs ("you will likely need to run `clifton auth`
        // each time": certificates are short-lived).
        "isambard" => Profile {
            certificate: s("clifton auth"),
            reuse: s("the retired key's certificates are no use any more: delete them"),
            notes: vec![
                "its certificates are short-lived: run clifton auth again whenever yours expires"
                    .to_string(),
                "`clifton ssh-config write` writes the matching ~/.ssh/config entries".to_string(),
            ],
            ..base("isambard", "Isambard")
        },
        // GitHub's own docs were not in the stored corpus; checked against public pages quoting
        // them: https://gist.github.com/jamescmartinez/a1f32830e57cf2a3fa62 (settings/keys,
        // `ssh-keygen -t ed25519`, checked 10/2025), https://github.com/brotherkaif/dev-notes
        // git/git-setting-up-github-keys.md (`ssh -T git@github.com`). `gh ssh-key add` is from
        // issue 15 (GitHub CLI manual: gh ssh-key add [<key-file>]).
        "github" => Profile {
            upload_url: s("https://github.com/settings/keys"),
            paste_rule: s(
                "click \"New SSH key\" and paste this whole line, then delete the old \
                           key there",
            ),
            key_type: Some(KeyType::Ed25519),
            login: s("git@github.com"),
            test_command: s("ssh -T git@github.com"),
            cli_upload: s("gh ssh-key add"),
            ..base("github", "GitHub")
        },
        // glab-ssh-key(1), https://man.archlinux.org/man/glab-ssh-key.1.en (`glab ssh-key add
        // [key-file]`); the -/user_settings/ssh_keys page is issue 15's (not in the stored corpus).
        "gitlab" => Profile {
            upload_url: s("https://gitlab.com/-/user_settings/ssh_keys"),
            paste_rule: s(
                "click \"Add new key\" and paste this whole line, then delete the old \
                           key there",
            ),
            key_type: Some(KeyType::Ed25519),
            login: s("git@gitlab.com"),
            test_command: s("ssh -T git@gitlab.com"),
            cli_upload: s("glab ssh-key add"),
            notes: vec!["a self-managed GitLab has the same page on its own host".to_string()],
            ..base("gitlab", "GitLab")
        },
        // https://support.atlassian.com/bitbucket-cloud/docs/supported-ssh-key-formats/ ("only
        // accepts public keys in OpenSSH's authorized_keys format"; Ed25519 listed first);
        // `ssh -T git@bitbucket.org` as in https://gist.github.com/alexej-d/730874958c1a531ae61c8f9869c74199.
        // The settings URL (Personal settings, SSH keys) was not confirmed by a stored page.
        "bitbucket" => Profile {
            upload_url: s("https://bitbucket.org/account/settings/ssh-keys/"),
            paste_rule: s(
                "click \"Add key\" and paste this whole line, then delete the old key \
                           there",
            ),
            key_type: Some(KeyType::Ed25519),
            login: s("git@bitbucket.org"),
            test_command: s("ssh -T git@bitbucket.org"),
            notes: vec![
                "Bitbucket accepts only OpenSSH public key lines (the .pub file), never a .ppk"
                    .to_string(),
            ],
            ..base("bitbucket", "Bitbucket")
        },
        _ => return None,
    };
    Some(p)
}

/// Any other service: generic steps only.
pub fn generic(name: &str) -> Profile {
    base(&name.to_lowercase(), &name.to_lowercase())
}

/// A `[services.NAME]` table of `config.toml`: every field optional.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserProfile {
    pub display_name: Option<String>,
    pub upload_url: Option<String>,
    pub wait_minutes: Option<u32>,
    pub login: Option<String>,
    pub key_type: Option<ConfigKeyType>,
    pub key_format: Option<ConfigKeyFormat>,
    pub deploy: Option<Vec<String>>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ConfigKeyType {
    Rsa,
    Ed25519,
    Ecdsa,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ConfigKeyFormat {
    Openssh,
    Pem,
    Putty,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    #[serde(default)]
    services: BTreeMap<String, UserProfile>,
}

impl UserProfile {
    /// `profile` with the fields this table sets replaced.
    fn apply(&self, mut profile: Profile) -> Profile {
        profile.source = Source::Config;
        if let Some(v) = &self.display_name {
            profile.display_name = v.clone();
        }
        if let Some(v) = &self.upload_url {
            profile.upload_url = Some(v.clone());
        }
        if let Some(v) = self.wait_minutes {
            profile.wait_minutes = Some(v);
        }
        if let Some(v) = &self.login {
            profile.login = Some(v.clone());
        }
        if let Some(v) = self.key_type {
            profile.key_type = Some(match v {
                ConfigKeyType::Rsa => KeyType::Rsa,
                ConfigKeyType::Ed25519 => KeyType::Ed25519,
                ConfigKeyType::Ecdsa => KeyType::Ecdsa,
            });
        }
        if let Some(v) = self.key_format {
            profile.key_format = Some(match v {
                ConfigKeyFormat::Openssh => KeyFormat::Openssh,
                ConfigKeyFormat::Pem => KeyFormat::Pem,
                ConfigKeyFormat::Putty => KeyFormat::Putty,
            });
        }
        if let Some(v) = &self.deploy {
            profile.deploy = v.clone();
        }
        profile
    }
}

/// A config file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the config file {}: {}", .path.display(), crate::sys::io_reason(.source))]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("the config file {} named by KEYROTATE_CONFIG does not exist", .path.display())]
    Missing { path: PathBuf },
    #[error("{}{}: {message}", .path.display(), .line.map(|l| format!(" line {l}")).unwrap_or_default())]
    Invalid {
        path: PathBuf,
        line: Option<usize>,
        /// The field the error is about, when one is named.
        field: Option<String>,
        message: String,
    },
}

impl ConfigError {
    pub fn hint(&self) -> String {
        match self {
            ConfigError::Read { source, .. } => crate::sys::io_hint(source),
            ConfigError::Missing { .. } => "create the file, or unset KEYROTATE_CONFIG to use the \
                 default one"
                .to_string(),
            ConfigError::Invalid { field, .. } => format!(
                "fix {} in the file (fields of [services.NAME]: display_name, upload_url, \
                 wait_minutes, login, key_type = rsa|ed25519|ecdsa, key_format = \
                 openssh|pem|putty, deploy = [...]); nothing was changed",
                field
                    .as_deref()
                    .map(|f| format!("the field `{f}`"))
                    .unwrap_or_else(|| "the line named above".to_string())
            ),
        }
    }
}

/// The built-in profiles and the user's.
#[derive(Debug, Clone, Default)]
pub struct Profiles {
    /// The config file read, if there was one.
    pub path: Option<PathBuf>,
    user: BTreeMap<String, UserProfile>,
}

impl Profiles {
    /// Read the config: `explicit` (KEYROTATE_CONFIG) must exist; `default` may be absent.
    pub fn load(explicit: Option<&Path>, default: Option<&Path>) -> Result<Profiles, ConfigError> {
        let (path, must_exist) = match (explicit, default) {
            (Some(p), _) => (p, true),
            (None, Some(p)) => (p, false),
            (None, None) => return Ok(Profiles::default()),
        };
        let text = match std::fs::read(path) {
            Ok(bytes) => String::from_utf8(bytes).map_err(|_| ConfigError::Invalid {
                path: path.to_path_buf(),
                line: None,
                field: None,
                message: "not UTF-8 text".to_string(),
            })?,
            Err(e) if e.kind() == io::ErrorKind::NotFound && !must_exist => {
                return Ok(Profiles::default());
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(ConfigError::Missing {
                    path: path.to_path_buf(),
                });
            }
            Err(source) => {
                return Err(ConfigError::Read {
                    path: path.to_path_buf(),
                    source,
                });
            }
        };
        let mut profiles = Profiles::parse(path, &text)?;
        profiles.path = Some(path.to_path_buf());
        Ok(profiles)
    }

    /// Parse the text of `path`.
    pub fn parse(path: &Path, text: &str) -> Result<Profiles, ConfigError> {
        let file: ConfigFile = toml::from_str(text).map_err(|e| {
            let (line, field) = match e.span() {
                Some(span) => located(text, span.start),
                None => (None, None),
            };
            ConfigError::Invalid {
                path: path.to_path_buf(),
                line,
                field,
                message: e.message().trim().replace('\n', " "),
            }
        })?;
        let mut user = BTreeMap::new();
        for (name, p) in file.services {
            let lower = name.to_lowercase();
            if !crate::generate::valid_service_name(&lower) {
                let at = text.find(&name).unwrap_or(0);
                return Err(ConfigError::Invalid {
                    path: path.to_path_buf(),
                    line: located(text, at).0,
                    field: Some(format!("services.{name}")),
                    message: format!(
                        "\"{}\" cannot be a service name (letters, digits, '.', '_', '-')",
                        crate::text::sanitize(&name)
                    ),
                });
            }
            user.insert(lower, p);
        }
        Ok(Profiles {
            path: Some(path.to_path_buf()),
            user,
        })
    }

    /// The profile of `name` (any case): built-in, generic, either overridden by the config.
    pub fn get(&self, name: &str) -> Profile {
        let name = name.to_lowercase();
        let profile = builtin(&name).unwrap_or_else(|| generic(&name));
        match self.user.get(&name) {
            Some(u) => u.apply(profile),
            None => profile,
        }
    }

    /// Every profile: the built-ins in their order, then the user's own, by name.
    pub fn all(&self) -> Vec<Profile> {
        let mut out: Vec<Profile> = BUILTIN.iter().map(|n| self.get(n)).collect();
        for name in self.user.keys() {
            if !BUILTIN.contains(&name.as_str()) {
                out.push(self.get(name));
            }
        }
        out
    }
}

/// The line (1-based) of byte `at`, and the key of that line's `key = value`, if it has one.
fn located(text: &str, at: usize) -> (Option<usize>, Option<String>) {
    let at = at.min(text.len());
    let line_no = text[..at].matches('\n').count() + 1;
    let start = text[..at].rfind('\n').map_or(0, |i| i + 1);
    let line = text[start..].lines().next().unwrap_or("");
    let field = line
        .split_once('=')
        .map(|(k, _)| k.trim().trim_matches('"').to_string())
        .filter(|k| !k.is_empty() && !k.starts_with('[') && !k.starts_with('#'))
        .or_else(|| {
            // A table header: `[services.lab]`.
            let t = line.trim();
            t.strip_prefix('[')
                .and_then(|t| t.strip_suffix(']'))
                .map(|t| t.trim_matches(['[', ']']).to_string())
        });
    (Some(line_no), field)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Profiles, ConfigError> {
        Profiles::parse(Path::new("/c/config.toml"), text)
    }

    #[test]
    fn every_builtin_is_found_in_any_case_and_others_are_generic() {
        for name in BUILTIN {
            let p = builtin(&name.to_uppercase()).expect(name);
            assert_eq!(p.name, name);
            assert_eq!(p.source, Source::Builtin);
        }
        assert_eq!(builtin("lab"), None);
        assert_eq!(Profiles::default().get("Lab").display_name, "lab");
    }

    #[test]
    fn jasmin_leaves_generates_defaults_alone() {
        let p = builtin("jasmin").unwrap();
        assert_eq!((p.key_type, p.key_format), (None, None));
        assert_eq!(builtin("github").unwrap().key_type, Some(KeyType::Ed25519));
    }

    #[test]
    fn a_user_profile_overrides_only_the_fields_it_sets() {
        let profiles = parse(
            "[services.JASMIN]\nwait_minutes = 30\n\n[services.lab]\ndisplay_name = \"Lab\"\n\
             key_type = \"ed25519\"\ndeploy = [\"a@b\"]\n",
        )
        .unwrap();
        let j = profiles.get("jasmin");
        assert_eq!(j.wait_minutes, Some(30));
        assert_eq!(j.source, Source::Config);
        assert_eq!(j.upload_url, builtin("jasmin").unwrap().upload_url);
        let lab = profiles.get("lab");
        assert_eq!(lab.display_name, "Lab");
        assert_eq!(lab.key_type, Some(KeyType::Ed25519));
        assert_eq!(lab.deploy, ["a@b"]);
        let names: Vec<_> = profiles.all().into_iter().map(|p| p.name).collect();
        assert_eq!(names.len(), 8);
        assert_eq!(names[7], "lab");
    }

    #[test]
    fn errors_name_the_line_and_the_field() {
        for (text, line, field) in [
            (
                "[services.lab]\nwait_minutes = \"soon\"\n",
                2,
                "wait_minutes",
            ),
            ("[services.lab]\n\ncolour = \"red\"\n", 3, "colour"),
            ("[services.lab]\nkey_type = \"dsa\"\n", 2, "key_type"),
            ("[services.lab]\nkey_format = \"ppk\"\n", 2, "key_format"),
            ("[services.lab]\nlogin = \"a@b\n", 2, "login"),
        ] {
            match parse(text) {
                Err(ConfigError::Invalid {
                    line: l, field: f, ..
                }) => {
                    assert_eq!((l, f.as_deref()), (Some(line), Some(field)), "{text:?}");
                }
                other => panic!("{text:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn a_missing_default_file_is_no_config_but_a_named_one_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("none.toml");
        let p = Profiles::load(None, Some(&missing)).unwrap();
        assert_eq!(p.path, None);
        assert!(matches!(
            Profiles::load(Some(&missing), None),
            Err(ConfigError::Missing { .. })
        ));
        // A directory is unreadable, not absent.
        assert!(matches!(
            Profiles::load(None, Some(dir.path())),
            Err(ConfigError::Read { .. })
        ));
    }
}
