//! htpasswd entries as the collector's basicauth reads them (go-htpasswd v1.2.5 with its
//! default parsers): `user:hash` lines, the hash one of
//! - MD5-crypt, Apache's `$apr1$salt$hash` and the `$1$` variant;
//! - `{SHA}base64(sha1)` and `{SSHA}base64(sha1(password + salt) + salt)`;
//! - bcrypt, `$2y$`, `$2a$`, `$2b$` and `$2x$` (the `bcrypt` crate);
//! - SHA-crypt, `$5$` and `$6$` with optional `rounds=N` (RustCrypto's `sha-crypt`);
//! - anything else, plain text (nginx's `{PLAIN}password` matches too).
//!
//! As there, a line that is blank is skipped, and so is one without a colon or whose hash
//! has a known prefix but is malformed (it does not fall back to plain text): its user cannot
//! log in, and the rest of the file still works. Later lines win over earlier ones for the
//! same user. MD5-crypt is written here on top of `md-5`: no maintained crate has Apache's
//! `$apr1$` variant, and the algorithm is 40 lines.

use base64::Engine;
use sha1::{Digest, Sha1};
use std::collections::HashMap;

/// The longest line Go's `bufio.Scanner` reads; a longer one fails the whole file there.
const MAX_LINE: usize = 64 * 1024;

/// One user's stored password.
enum Hash {
    Md5Crypt {
        magic: &'static str,
        salt: String,
        hashed: String,
    },
    Sha1([u8; 20]),
    SaltedSha1 {
        hash: [u8; 20],
        salt: Vec<u8>,
    },
    Bcrypt(String),
    ShaCrypt(String),
    Plain(String),
}

/// The users of an htpasswd file, by name.
pub struct Users {
    users: HashMap<String, Hash>,
}

/// What reading a file found besides its users: lines skipped, by number and why (never a
/// hash, only the user's name).
pub type Skipped = Vec<String>;

/// Go's `base64.StdEncoding`: padded, lenient about the unused bits of the last character.
const GO_BASE64: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    base64::engine::GeneralPurposeConfig::new().with_decode_allow_trailing_bits(true),
);

impl Users {
    /// Reads `content`; fails only where the collector fails (a line over 64 KiB).
    pub fn parse(content: &str) -> Result<(Users, Skipped), String> {
        let mut users = HashMap::new();
        let mut skipped = Vec::new();
        for (number, line) in content.lines().enumerate() {
            if line.len() > MAX_LINE {
                return Err(format!(
                    "line {}: longer than 64 KiB (bufio.Scanner: token too long)",
                    number + 1
                ));
            }
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            let Some((user, encoded)) = line.split_once(':') else {
                skipped.push(format!("line {}: no colon", number + 1));
                continue;
            };
            match parse_hash(encoded) {
                Some(hash) => {
                    users.insert(user.to_string(), hash);
                }
                None => skipped.push(format!(
                    "line {}: malformed password hash for user `{user}`",
                    number + 1
                )),
            }
        }
        Ok((Users { users }, skipped))
    }

    /// Whether `user` is known and `password` is theirs.
    pub fn matches(&self, user: &str, password: &[u8]) -> bool {
        self.users
            .get(user)
            .is_some_and(|hash| hash.matches(password))
    }
}

/// The hash of a known format, or `None` when its prefix is known but the rest is malformed.
fn parse_hash(encoded: &str) -> Option<Hash> {
    for magic in ["$apr1$", "$1$"] {
        if let Some(rest) = encoded.strip_prefix(magic) {
            let (salt, hashed) = rest.split_once('$')?;
            return Some(Hash::Md5Crypt {
                magic,
                salt: salt.into(),
                hashed: hashed.into(),
            });
        }
    }
    if let Some(b64) = encoded.strip_prefix("{SHA}") {
        return GO_BASE64.decode(b64).ok()?.try_into().ok().map(Hash::Sha1);
    }
    if ["$2y$", "$2a$", "$2b$", "$2x$"]
        .iter()
        .any(|p| encoded.starts_with(p))
    {
        return Some(Hash::Bcrypt(encoded.into()));
    }
    if let Some(b64) = encoded.strip_prefix("{SSHA}") {
        let decoded = GO_BASE64.decode(b64).ok()?;
        let hash: [u8; 20] = decoded.get(..20)?.try_into().ok()?;
        return Some(Hash::SaltedSha1 {
            hash,
            salt: decoded[20..].to_vec(),
        });
    }
    for magic in ["$5$", "$6$"] {
        if let Some(rest) = encoded.strip_prefix(magic) {
            rest.split_once('$')?;
            return Some(Hash::ShaCrypt(encoded.into()));
        }
    }
    Some(Hash::Plain(encoded.into()))
}

impl Hash {
    fn matches(&self, password: &[u8]) -> bool {
        match self {
            Hash::Md5Crypt {
                magic,
                salt,
                hashed,
            } => super::constant_time_eq(
                md5_crypt(password, salt.as_bytes(), magic.as_bytes()).as_bytes(),
                hashed.as_bytes(),
            ),
            Hash::Sha1(hash) => super::constant_time_eq(&Sha1::digest(password), hash),
            Hash::SaltedSha1 { hash, salt } => {
                let mut sha = Sha1::new();
                sha.update(password);
                sha.update(salt);
                super::constant_time_eq(&sha.finalize(), hash)
            }
            Hash::Bcrypt(hash) => bcrypt::verify(password, hash).unwrap_or(false),
            Hash::ShaCrypt(hash) => {
                use sha_crypt::PasswordVerifier;
                sha_crypt::ShaCrypt::default()
                    .verify_password(password, hash.as_str())
                    .is_ok()
            }
            Hash::Plain(stored) => {
                let plain = [b"{PLAIN}".as_slice(), password].concat();
                super::constant_time_eq(password, stored.as_bytes())
                    || super::constant_time_eq(&plain, stored.as_bytes())
            }
        }
    }
}

/// MD5-crypt (Poul-Henning Kamp's, and Apache's with the `$apr1$` magic): the 22-character
/// hash after the salt. The salt is used whole, as go-htpasswd does.
fn md5_crypt(password: &[u8], salt: &[u8], magic: &[u8]) -> String {
    use md5::{Digest as _, Md5};
    let alternate = Md5::new()
        .chain_update(password)
        .chain_update(salt)
        .chain_update(password)
        .finalize();
    let mut context = Md5::new()
        .chain_update(password)
        .chain_update(magic)
        .chain_update(salt);
    let mut left = password.len();
    while left > 0 {
        let take = left.min(16);
        context.update(&alternate[..take]);
        left -= take;
    }
    let mut bits = password.len();
    while bits > 0 {
        // Odd bits add a zero byte, even ones the password's first byte.
        context.update(if bits & 1 == 1 {
            &[0u8][..]
        } else {
            &password[..1]
        });
        bits >>= 1;
    }
    let mut digest = context.finalize();
    for round in 0..1000 {
        let mut next = Md5::new();
        if round & 1 == 1 {
            next.update(password);
        } else {
            next.update(digest);
        }
        if round % 3 != 0 {
            next.update(salt);
        }
        if round % 7 != 0 {
            next.update(password);
        }
        if round & 1 == 1 {
            next.update(digest);
        } else {
            next.update(password);
        }
        digest = next.finalize();
    }
    crypt_base64(&digest)
}

/// crypt's own base-64 of an MD5 digest: its bytes taken in the order MD5-crypt defines,
/// three at a time, each group written low six bits first.
fn crypt_base64(digest: &[u8]) -> String {
    const CHARS: &[u8] = b"./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let groups = [(0, 6, 12), (1, 7, 13), (2, 8, 14), (3, 9, 15), (4, 10, 5)];
    let mut out = String::with_capacity(22);
    let mut write = |mut v: u32, chars: usize| {
        for _ in 0..chars {
            out.push(CHARS[(v & 0x3f) as usize] as char);
            v >>= 6;
        }
    };
    for (a, b, c) in groups {
        write(
            (u32::from(digest[a]) << 16) | (u32::from(digest[b]) << 8) | u32::from(digest[c]),
            4,
        );
    }
    write(u32::from(digest[11]), 2);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hashes of the password `s3cret` written by `openssl passwd` (-apr1, -1, -5, -6),
    /// Python's `bcrypt`, and {SHA} and {SSHA} as Apache's `htpasswd -s` and OpenLDAP write
    /// them (base64 of SHA-1, salted with `pepper`).
    const FILE: &str = "\
apr:$apr1$xyzsalt$46mF7obnb9sH9blgrPZAj0
md5:$1$abcsalt$8MbA0UiWYVj7xRpy5RjmQ/
sha:{SHA}/vNB+F2HQ559kaLUZbmHHvZrXpg=
ssha:{SSHA}Kd6WTgXUWO7I5P9fPmJ57jB1K5NwZXBwZXI=
bcrypt:$2b$04$/G3/D3cORq6ZJmgHM5JYWOWKjVO1axYsO8BLGTX2wuxqcnUpT53ri
sha256:$5$saltsalt$i1q2ZQzc.tl/BQ6CHiENAcVDvEY6nJ1OWlWXKh94b1.
sha512:$6$rounds=5000$saltsalt$As4wrv0kZlfch1du9WeH7qhskyLriQWySXrZzynnvi46nFnNxjdpl6ksRegrrKexvhIa/Iny8S8uF3fVWTMuC1
plain:s3cret
nginx:{PLAIN}s3cret
no colon here

broken:$apr1$nodollar
";

    #[test]
    fn every_hash_format_the_collector_accepts() {
        let (users, _) = Users::parse(FILE).unwrap();
        for user in ["apr", "md5", "sha", "ssha", "bcrypt", "sha256", "sha512"] {
            assert!(users.matches(user, b"s3cret"), "{user}");
            assert!(!users.matches(user, b"s3cres"), "{user}");
        }
    }

    #[test]
    fn plain_and_malformed_lines() {
        let (users, skipped) = Users::parse(FILE).unwrap();
        assert!(users.matches("plain", b"s3cret"));
        assert!(users.matches("nginx", b"s3cret"));
        assert!(!users.matches("plain", b"wrong"));
        assert!(!users.matches("nobody", b"s3cret"));
        // A malformed known prefix is not plain text: the user is skipped.
        assert!(!users.matches("broken", b"$apr1$nodollar"));
        assert_eq!(skipped.len(), 2, "{skipped:?}");
        assert!(
            skipped.iter().all(|s| !s.contains("nodollar")),
            "{skipped:?}"
        );
    }

    #[test]
    fn later_lines_win_and_long_lines_fail() {
        let (users, _) = Users::parse("u:first\nu:second\n").unwrap();
        assert!(users.matches("u", b"second") && !users.matches("u", b"first"));
        let long = format!("u:{}", "x".repeat(MAX_LINE));
        assert!(Users::parse(&long).is_err());
    }
}
