//! A password hash as stored: bcrypt, which this service writes, or one of
//! the formats other services wrote and users bring with them (argon2,
//! PBKDF2 in passlib's, Werkzeug's and Django's notations, scrypt in
//! Werkzeug's). Each is parsed here, once, into its parameters; the rest of
//! the code verifies and upgrades through [`StoredHash`] and never looks at
//! a hash string's prefix. The cryptography is the RustCrypto crates' and
//! the bcrypt crate's.

use std::fmt;

use argon2::{password_hash::PasswordVerifier, Argon2, PasswordHash as PhcHash};
use base64::{
    engine::general_purpose::{STANDARD, STANDARD_NO_PAD},
    Engine,
};
use subtle::ConstantTimeEq;

/// Limits on a hash's parameters, so that verifying a hash someone handed
/// over (an import) cannot be made to exhaust the server's CPU or memory.
pub mod limits {
    pub const BCRYPT_COST: std::ops::RangeInclusive<u32> = 4..=31;
    /// KiB: 1 GiB.
    pub const ARGON2_MEMORY_KIB: u32 = 1024 * 1024;
    pub const ARGON2_PASSES: u32 = 20;
    pub const ARGON2_LANES: u32 = 64;
    pub const PBKDF2_ROUNDS: u32 = 10_000_000;
    /// N ≤ 2^20.
    pub const SCRYPT_LOG_N: u8 = 20;
    /// scrypt needs 128·N·r bytes: at most 1 GiB, as for argon2.
    pub const SCRYPT_MEMORY_BYTES: u64 = 1024 * 1024 * 1024;
    pub const SCRYPT_PARALLELISM: u32 = 64;
}

/// The digest behind a PBKDF2 hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Digest {
    Sha1,
    Sha256,
    Sha512,
}

impl Digest {
    fn named(name: &str) -> Option<Self> {
        match name {
            "sha1" => Some(Self::Sha1),
            "sha256" => Some(Self::Sha256),
            "sha512" => Some(Self::Sha512),
            _ => None,
        }
    }
}

#[derive(Clone, PartialEq, Eq)]
enum Scheme {
    Bcrypt {
        cost: u32,
        /// `$2b$`, the variant this service writes; `$2a$` and `$2y$` verify
        /// the same but are rewritten on upgrade.
        current_variant: bool,
    },
    /// An argon2id or argon2i PHC string, verified by the argon2 crate.
    Argon2,
    Pbkdf2 {
        digest: Digest,
        rounds: u32,
        salt: Vec<u8>,
        expected: Vec<u8>,
    },
    Scrypt {
        log_n: u8,
        r: u32,
        p: u32,
        salt: Vec<u8>,
        expected: Vec<u8>,
    },
}

/// A parsed password hash; its text is kept to be stored as it came.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredHash {
    text: String,
    scheme: Scheme,
}

impl fmt::Debug for StoredHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StoredHash({}, [REDACTED])", self.format())
    }
}

impl StoredHash {
    /// Parses any supported format, refusing parameters past [`limits`].
    pub fn parse(text: &str) -> Result<Self, String> {
        let scheme = if text.starts_with("$2") {
            parse_bcrypt(text)?
        } else if text.starts_with("$argon2") {
            parse_argon2(text)?
        } else if let Some(rest) = text.strip_prefix("$pbkdf2") {
            parse_passlib_pbkdf2(rest)?
        } else if let Some(rest) = text.strip_prefix("pbkdf2:") {
            parse_werkzeug_pbkdf2(rest)?
        } else if let Some(rest) = text.strip_prefix("scrypt:") {
            parse_werkzeug_scrypt(rest)?
        } else if let Some(rest) = text.strip_prefix("pbkdf2_") {
            parse_django_pbkdf2(rest)?
        } else {
            return Err(
                "is not a supported password hash: bcrypt ($2a$, $2b$, $2y$), argon2id or \
                 argon2i, passlib pbkdf2 ($pbkdf2-sha256$, $pbkdf2-sha512$, $pbkdf2$), Werkzeug \
                 (pbkdf2:sha256:…, scrypt:…) or Django (pbkdf2_sha256$…)"
                    .into(),
            );
        };
        Ok(Self {
            text: text.to_owned(),
            scheme,
        })
    }

    /// A bcrypt hash this service just made.
    pub fn from_bcrypt(text: String, cost: u32) -> Self {
        Self {
            text,
            scheme: Scheme::Bcrypt {
                cost,
                current_variant: true,
            },
        }
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The format's name, for logs and metrics.
    pub fn format(&self) -> &'static str {
        match &self.scheme {
            Scheme::Bcrypt { .. } => "bcrypt",
            Scheme::Argon2 => "argon2",
            Scheme::Pbkdf2 { .. } => "pbkdf2",
            Scheme::Scrypt { .. } => "scrypt",
        }
    }

    /// Whether `password` is the one this hash was made from. CPU-bound for
    /// as long as the hash's parameters say: run it off the async workers.
    /// bcrypt reads only 72 bytes, so a longer attempt never matches one.
    pub fn verify(&self, password: &[u8]) -> bool {
        match &self.scheme {
            Scheme::Bcrypt { .. } => {
                password.len() <= BCRYPT_MAX_BYTES
                    && bcrypt::verify(password, &self.text).unwrap_or(false)
            }
            Scheme::Argon2 => PhcHash::new(&self.text)
                .is_ok_and(|hash| Argon2::default().verify_password(password, &hash).is_ok()),
            Scheme::Pbkdf2 {
                digest,
                rounds,
                salt,
                expected,
            } => {
                let mut derived = vec![0u8; expected.len()];
                // The crate's own SHA-2 entry point where its parameter
                // rules allow (it is compiled optimized even in debug
                // builds, where the generic one is twenty times slower).
                let params = pbkdf2::Params::new_with_output_len(*rounds, expected.len()).ok();
                match (digest, params) {
                    (Digest::Sha256, Some(params)) => pbkdf2::pbkdf2_hmac_with_params(
                        password,
                        salt,
                        pbkdf2::Algorithm::Pbkdf2Sha256,
                        params,
                        &mut derived,
                    ),
                    (Digest::Sha512, Some(params)) => pbkdf2::pbkdf2_hmac_with_params(
                        password,
                        salt,
                        pbkdf2::Algorithm::Pbkdf2Sha512,
                        params,
                        &mut derived,
                    ),
                    (Digest::Sha1, _) => {
                        pbkdf2::pbkdf2_hmac::<sha1::Sha1>(password, salt, *rounds, &mut derived)
                    }
                    (Digest::Sha256, None) => {
                        pbkdf2::pbkdf2_hmac::<sha2::Sha256>(password, salt, *rounds, &mut derived)
                    }
                    (Digest::Sha512, None) => {
                        pbkdf2::pbkdf2_hmac::<sha2::Sha512>(password, salt, *rounds, &mut derived)
                    }
                }
                bool::from(derived.ct_eq(expected))
            }
            Scheme::Scrypt {
                log_n,
                r,
                p,
                salt,
                expected,
            } => {
                let mut derived = vec![0u8; expected.len()];
                scrypt::Params::new(*log_n, *r, *p)
                    .ok()
                    .and_then(|params| scrypt::scrypt(password, salt, &params, &mut derived).ok())
                    .is_some_and(|()| bool::from(derived.ct_eq(expected)))
            }
        }
    }

    /// Whether the hash should be replaced by bcrypt at `cost` once the
    /// password is known: every other format, other bcrypt variants, and
    /// bcrypt below `cost`.
    pub fn needs_upgrade(&self, cost: u32) -> bool {
        match self.scheme {
            Scheme::Bcrypt {
                cost: stored,
                current_variant,
            } => !current_variant || stored < cost,
            _ => true,
        }
    }
}

/// bcrypt uses at most 72 bytes of a password.
pub const BCRYPT_MAX_BYTES: usize = 72;

fn parse_bcrypt(text: &str) -> Result<Scheme, String> {
    let parts = text
        .parse::<bcrypt::HashParts>()
        .map_err(|_| "is not a valid bcrypt hash".to_owned())?;
    let variant = text.get(1..3).unwrap_or_default();
    if !["2a", "2b", "2y"].contains(&variant) {
        return Err(format!("bcrypt variant ${variant}$ is not supported"));
    }
    let cost = parts.get_cost();
    if !limits::BCRYPT_COST.contains(&cost) {
        return Err(format!("bcrypt cost must be 4 to 31 (got {cost})"));
    }
    Ok(Scheme::Bcrypt {
        cost,
        current_variant: variant == "2b",
    })
}

fn parse_argon2(text: &str) -> Result<Scheme, String> {
    let hash = PhcHash::new(text).map_err(|_| "is not a valid argon2 PHC string".to_owned())?;
    let algorithm = hash.algorithm.as_str();
    if algorithm != "argon2id" && algorithm != "argon2i" {
        return Err(format!(
            "{algorithm} is not supported; use argon2id or argon2i"
        ));
    }
    if hash.salt.is_none() || hash.hash.is_none() {
        return Err("an argon2 hash needs a salt and an output".into());
    }
    if let Some(version) = hash.version {
        if version != 16 && version != 19 {
            return Err(format!("argon2 version {version} is not 16 or 19"));
        }
    }
    let params =
        argon2::Params::try_from(&hash).map_err(|_| "has invalid argon2 parameters".to_owned())?;
    let (memory, passes, lanes) = (params.m_cost(), params.t_cost(), params.p_cost());
    if memory > limits::ARGON2_MEMORY_KIB
        || passes > limits::ARGON2_PASSES
        || lanes > limits::ARGON2_LANES
    {
        return Err(format!(
            "argon2 parameters m={memory}, t={passes}, p={lanes} exceed the limits \
             (m ≤ {} KiB, t ≤ {}, p ≤ {})",
            limits::ARGON2_MEMORY_KIB,
            limits::ARGON2_PASSES,
            limits::ARGON2_LANES
        ));
    }
    Ok(Scheme::Argon2)
}

fn pbkdf2_rounds(text: &str) -> Result<u32, String> {
    let rounds: u32 = text
        .parse()
        .map_err(|_| format!("PBKDF2 rounds `{text}` are not a number"))?;
    if rounds == 0 || rounds > limits::PBKDF2_ROUNDS {
        return Err(format!(
            "PBKDF2 rounds must be 1 to {} (got {rounds})",
            limits::PBKDF2_ROUNDS
        ));
    }
    Ok(rounds)
}

/// A derived key of a plausible length: at least 16 bytes (no truncated
/// output that would be easy to collide) and at most 128.
fn checked_output(bytes: Vec<u8>) -> Result<Vec<u8>, String> {
    if (16..=128).contains(&bytes.len()) {
        Ok(bytes)
    } else {
        Err(format!(
            "the hash output is {} bytes; 16 to 128 are accepted",
            bytes.len()
        ))
    }
}

/// passlib's "adapted base64": standard base64 with `.` for `+`, unpadded.
fn ab64(text: &str) -> Result<Vec<u8>, String> {
    STANDARD_NO_PAD
        .decode(text.replace('.', "+"))
        .map_err(|_| "is not valid passlib base64".to_owned())
}

/// `$pbkdf2-sha256$<rounds>$<salt>$<checksum>`, `-sha512`, or bare
/// (SHA-1), as passlib writes them; `rest` follows `$pbkdf2`.
fn parse_passlib_pbkdf2(rest: &str) -> Result<Scheme, String> {
    let (name, rest) = rest
        .split_once('$')
        .ok_or_else(|| "is not a passlib pbkdf2 hash".to_owned())?;
    let digest = match name {
        "" => Digest::Sha1,
        "-sha256" => Digest::Sha256,
        "-sha512" => Digest::Sha512,
        _ => return Err(format!("$pbkdf2{name}$ is not a supported passlib hash")),
    };
    let [rounds, salt, checksum] = fields(rest, '$')
        .ok_or_else(|| "a passlib pbkdf2 hash has rounds, salt and checksum".to_owned())?;
    Ok(Scheme::Pbkdf2 {
        digest,
        rounds: pbkdf2_rounds(rounds)?,
        salt: ab64(salt)?,
        expected: checked_output(ab64(checksum)?)?,
    })
}

/// Werkzeug: `pbkdf2:<digest>:<rounds>$<salt>$<hex>`; `rest` follows
/// `pbkdf2:`. The salt is used as text, as Werkzeug does.
fn parse_werkzeug_pbkdf2(rest: &str) -> Result<Scheme, String> {
    let [method, salt, hex] =
        fields(rest, '$').ok_or_else(|| "a Werkzeug hash is method$salt$hash".to_owned())?;
    let (name, rounds) = method.split_once(':').ok_or_else(|| {
        "a Werkzeug pbkdf2 hash names its rounds: pbkdf2:sha256:600000".to_owned()
    })?;
    let digest = Digest::named(name).ok_or_else(|| format!("pbkdf2:{name} is not supported"))?;
    Ok(Scheme::Pbkdf2 {
        digest,
        rounds: pbkdf2_rounds(rounds)?,
        salt: non_empty_salt(salt)?,
        expected: checked_output(from_hex(hex)?)?,
    })
}

/// Werkzeug: `scrypt:<n>:<r>:<p>$<salt>$<hex>`; `rest` follows `scrypt:`.
fn parse_werkzeug_scrypt(rest: &str) -> Result<Scheme, String> {
    let [method, salt, hex] =
        fields(rest, '$').ok_or_else(|| "a Werkzeug hash is method$salt$hash".to_owned())?;
    let [n, r, p] = fields(method, ':')
        .ok_or_else(|| "a Werkzeug scrypt hash names n, r and p: scrypt:32768:8:1".to_owned())?;
    let number = |text: &str, name: &str| {
        text.parse::<u64>()
            .ok()
            .filter(|value| *value > 0)
            .ok_or_else(|| format!("scrypt {name} `{text}` is not a positive number"))
    };
    let (n, r, p) = (number(n, "n")?, number(r, "r")?, number(p, "p")?);
    if !n.is_power_of_two() || n < 2 {
        return Err(format!("scrypt n must be a power of two (got {n})"));
    }
    let log_n = n.trailing_zeros() as u8;
    if log_n > limits::SCRYPT_LOG_N
        || 128 * n * r > limits::SCRYPT_MEMORY_BYTES
        || p > u64::from(limits::SCRYPT_PARALLELISM)
    {
        return Err(format!(
            "scrypt parameters n={n}, r={r}, p={p} exceed the limits (n ≤ 2^{}, 128·n·r ≤ 1 GiB, \
             p ≤ {})",
            limits::SCRYPT_LOG_N,
            limits::SCRYPT_PARALLELISM
        ));
    }
    let (r, p) = (r as u32, p as u32);
    scrypt::Params::new(log_n, r, p).map_err(|_| "has invalid scrypt parameters".to_owned())?;
    Ok(Scheme::Scrypt {
        log_n,
        r,
        p,
        salt: non_empty_salt(salt)?,
        expected: checked_output(from_hex(hex)?)?,
    })
}

/// Django: `pbkdf2_sha256$<rounds>$<salt>$<base64>` (or `pbkdf2_sha1`);
/// `rest` follows `pbkdf2_`. The salt is used as text, as Django does.
fn parse_django_pbkdf2(rest: &str) -> Result<Scheme, String> {
    let [name, rounds, salt, encoded] = fields(rest, '$')
        .ok_or_else(|| "a Django pbkdf2 hash is algorithm$rounds$salt$hash".to_owned())?;
    let digest = match name {
        "sha256" => Digest::Sha256,
        "sha1" => Digest::Sha1,
        _ => return Err(format!("pbkdf2_{name} is not supported")),
    };
    let expected = STANDARD
        .decode(encoded)
        .map_err(|_| "the Django hash is not valid base64".to_owned())?;
    Ok(Scheme::Pbkdf2 {
        digest,
        rounds: pbkdf2_rounds(rounds)?,
        salt: non_empty_salt(salt)?,
        expected: checked_output(expected)?,
    })
}

fn non_empty_salt(salt: &str) -> Result<Vec<u8>, String> {
    if salt.is_empty() {
        Err("the salt is empty".into())
    } else {
        Ok(salt.as_bytes().to_vec())
    }
}

fn from_hex(text: &str) -> Result<Vec<u8>, String> {
    if text.len() % 2 != 0 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err("the hash is not hexadecimal".into());
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).map_err(|e| e.to_string()))
        .collect()
}

/// Exactly `N` fields separated by `separator`.
fn fields<const N: usize>(text: &str, separator: char) -> Option<[&str; N]> {
    let parts: Vec<&str> = text.split(separator).collect();
    parts.try_into().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_formats_are_refused_by_name() {
        for text in [
            "",
            "hunter2",
            "$1$abc$def",
            "$5$rounds=5000$salt$hash",
            "md5$salt$hash",
            "$argon2d$v=19$m=16,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
        ] {
            assert!(StoredHash::parse(text).is_err(), "{text:?}");
        }
        assert!(StoredHash::parse(&bcrypt_like("2x", 10)).is_err());
    }

    /// A real bcrypt hash (cost 4) with its variant and cost rewritten.
    fn bcrypt_like(variant: &str, cost: u32) -> String {
        let real = bcrypt::hash("Password@123", 4).unwrap();
        format!("${variant}${cost:02}{}", &real[6..])
    }

    #[test]
    fn limits_are_enforced_per_format() {
        assert!(StoredHash::parse(&bcrypt_like("2b", 3)).is_err());
        assert!(StoredHash::parse(&bcrypt_like("2b", 4)).is_ok());
        assert!(StoredHash::parse(&bcrypt_like("2b", 31)).is_ok());
        assert!(StoredHash::parse(&bcrypt_like("2b", 32)).is_err());

        let argon = |m: u32, t: u32, p: u32| {
            format!("$argon2id$v=19$m={m},t={t},p={p}$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA")
        };
        assert!(StoredHash::parse(&argon(1 << 20, 20, 64)).is_ok());
        assert!(StoredHash::parse(&argon((1 << 20) + 1, 3, 4)).is_err());
        assert!(StoredHash::parse(&argon(65536, 21, 4)).is_err());
        assert!(StoredHash::parse(&argon(65536, 3, 65)).is_err());

        let hex32 = "ab".repeat(32);
        let werkzeug = |rounds: u32| format!("pbkdf2:sha256:{rounds}$salt${hex32}");
        assert!(StoredHash::parse(&werkzeug(10_000_000)).is_ok());
        assert!(StoredHash::parse(&werkzeug(10_000_001)).is_err());
        assert!(StoredHash::parse(&werkzeug(0)).is_err());

        let scrypt = |n: u64, r: u64| format!("scrypt:{n}:{r}:1$salt${hex32}");
        assert!(StoredHash::parse(&scrypt(1 << 20, 8)).is_ok());
        assert!(StoredHash::parse(&scrypt(1 << 21, 1)).is_err());
        assert!(
            StoredHash::parse(&scrypt(1 << 20, 9)).is_err(),
            "over 1 GiB"
        );
        assert!(
            StoredHash::parse(&scrypt(1000, 8)).is_err(),
            "not a power of two"
        );
    }

    #[test]
    fn only_current_bcrypt_needs_no_upgrade() {
        let bcrypt =
            |variant: &str, cost: u32| StoredHash::parse(&bcrypt_like(variant, cost)).unwrap();
        assert!(!bcrypt("2b", 12).needs_upgrade(12));
        assert!(!bcrypt("2b", 13).needs_upgrade(12));
        assert!(bcrypt("2b", 11).needs_upgrade(12));
        assert!(bcrypt("2a", 12).needs_upgrade(12));
        assert!(bcrypt("2y", 12).needs_upgrade(12));
        let django = StoredHash::parse(&format!(
            "pbkdf2_sha256$1000$salt${}",
            STANDARD.encode([7u8; 32])
        ))
        .unwrap();
        assert!(django.needs_upgrade(4));
    }

    #[test]
    fn debug_output_hides_the_hash() {
        let text = format!("pbkdf2:sha256:1000$salt${}", "ab".repeat(32));
        let hash = StoredHash::parse(&text).unwrap();
        assert!(!format!("{hash:?}").contains("abab"));
    }
}
