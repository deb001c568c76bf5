//! Password hashes made by other people's code, at test time: passlib (with
//! argon2-cffi, configured as the Flask service had it), argon2-cffi, pyca
//! bcrypt, Werkzeug, Django, and PHP's `password_hash`. Nothing here is a
//! hash this project computed.

use std::process::{Command, Stdio};

use serde_json::{json, Value};

/// A reference hasher and its settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// The Flask service's `CryptContext(schemes=["argon2", "bcrypt"],
    /// default="argon2")`: argon2id.
    FlaskPasslib,
    /// argon2-cffi's argon2i.
    Argon2i,
    /// argon2-cffi's argon2id at version 16 (0x10), as old libraries wrote.
    Argon2idV16,
    /// passlib's `$pbkdf2-sha256$`, `$pbkdf2-sha512$` and `$pbkdf2$`.
    PasslibPbkdf2Sha256,
    PasslibPbkdf2Sha512,
    PasslibPbkdf2Sha1,
    /// Werkzeug's `generate_password_hash` with its own defaults (scrypt),
    /// and with PBKDF2.
    WerkzeugScrypt,
    WerkzeugPbkdf2Sha256,
    WerkzeugPbkdf2Sha512,
    /// Django's `make_password` with its default hasher (PBKDF2-SHA256).
    Django,
    /// pyca bcrypt at cost 4, `$2b$` and `$2a$`.
    Bcrypt2b,
    Bcrypt2a,
    /// PHP's `password_hash(…, PASSWORD_BCRYPT)` at cost 4: `$2y$`.
    Php2y,
}

impl Scheme {
    pub const ALL: [Scheme; 13] = [
        Scheme::FlaskPasslib,
        Scheme::Argon2i,
        Scheme::Argon2idV16,
        Scheme::PasslibPbkdf2Sha256,
        Scheme::PasslibPbkdf2Sha512,
        Scheme::PasslibPbkdf2Sha1,
        Scheme::WerkzeugScrypt,
        Scheme::WerkzeugPbkdf2Sha256,
        Scheme::WerkzeugPbkdf2Sha512,
        Scheme::Django,
        Scheme::Bcrypt2b,
        Scheme::Bcrypt2a,
        Scheme::Php2y,
    ];

    fn python_name(self) -> Option<&'static str> {
        Some(match self {
            Scheme::FlaskPasslib => "flask_passlib",
            Scheme::Argon2i => "argon2i",
            Scheme::Argon2idV16 => "argon2id_v16",
            Scheme::PasslibPbkdf2Sha256 => "passlib_pbkdf2_sha256",
            Scheme::PasslibPbkdf2Sha512 => "passlib_pbkdf2_sha512",
            Scheme::PasslibPbkdf2Sha1 => "passlib_pbkdf2_sha1",
            Scheme::WerkzeugScrypt => "werkzeug_default",
            Scheme::WerkzeugPbkdf2Sha256 => "werkzeug_pbkdf2_sha256",
            Scheme::WerkzeugPbkdf2Sha512 => "werkzeug_pbkdf2_sha512",
            Scheme::Django => "django",
            Scheme::Bcrypt2b => "bcrypt_2b",
            Scheme::Bcrypt2a => "bcrypt_2a",
            Scheme::Php2y => return None,
        })
    }
}

const PYTHON_HASHERS: &str = r#"
import json, sys

def flask_passlib(password):
    from passlib.context import CryptContext
    return CryptContext(schemes=["argon2", "bcrypt"], default="argon2").hash(password)

def argon2i(password):
    import argon2
    return argon2.PasswordHasher(type=argon2.Type.I).hash(password)

def argon2id_v16(password):
    import os
    from argon2.low_level import Type, hash_secret
    return hash_secret(password.encode(), os.urandom(16), time_cost=2, memory_cost=19456,
                       parallelism=1, hash_len=32, type=Type.ID, version=16).decode()

def passlib_pbkdf2_sha256(password):
    from passlib.hash import pbkdf2_sha256
    return pbkdf2_sha256.hash(password)

def passlib_pbkdf2_sha512(password):
    from passlib.hash import pbkdf2_sha512
    return pbkdf2_sha512.hash(password)

def passlib_pbkdf2_sha1(password):
    from passlib.hash import pbkdf2_sha1
    return pbkdf2_sha1.hash(password)

def werkzeug_default(password):
    from werkzeug.security import generate_password_hash
    return generate_password_hash(password)

def werkzeug_pbkdf2_sha256(password):
    from werkzeug.security import generate_password_hash
    return generate_password_hash(password, method="pbkdf2:sha256")

def werkzeug_pbkdf2_sha512(password):
    from werkzeug.security import generate_password_hash
    return generate_password_hash(password, method="pbkdf2:sha512:100000")

def django(password):
    from django.conf import settings
    if not settings.configured:
        settings.configure()
    from django.contrib.auth.hashers import make_password
    return make_password(password)

def bcrypt_2b(password):
    import bcrypt
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(4)).decode()

def bcrypt_2a(password):
    import bcrypt
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(4, prefix=b"2a")).decode()

print(json.dumps([globals()[scheme](password) for scheme, password in json.load(sys.stdin)]))
"#;

/// The Python that has the reference libraries (`./scripts/test` sets it).
pub fn python() -> String {
    std::env::var("TEST_PYTHON").expect(
        "TEST_PYTHON is not set. Run the suite with ./scripts/test, which installs the tools.",
    )
}

/// Runs `script` with the reference Python, `input` as JSON on stdin, and
/// returns its JSON output.
pub fn run_python(script: &str, args: &[&str], input: &Value) -> Value {
    let mut child = Command::new(python())
        .arg("-c")
        .arg(script)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the reference Python runs");
    serde_json::to_writer(child.stdin.take().unwrap(), input).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "the reference script failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("the reference script prints JSON")
}

/// One hash per `(scheme, password)`, in order.
pub fn hashes(requests: &[(Scheme, &str)]) -> Vec<String> {
    let python: Vec<Value> = requests
        .iter()
        .filter_map(|(scheme, password)| Some(json!([scheme.python_name()?, password])))
        .collect();
    let mut from_python = run_python(PYTHON_HASHERS, &[], &Value::Array(python))
        .as_array()
        .expect("a list of hashes")
        .iter()
        .map(|hash| hash.as_str().unwrap().to_owned())
        .collect::<Vec<_>>()
        .into_iter();
    requests
        .iter()
        .map(|(scheme, password)| match scheme {
            Scheme::Php2y => php_bcrypt(password),
            _ => from_python.next().unwrap(),
        })
        .collect()
}

fn php_bcrypt(password: &str) -> String {
    let output = Command::new("php")
        .args([
            "-r",
            r#"echo password_hash($argv[1], PASSWORD_BCRYPT, ["cost" => 4]);"#,
            password,
        ])
        .output()
        .expect("php runs (./scripts/test installs php-cli)");
    assert!(output.status.success());
    String::from_utf8(output.stdout).unwrap()
}

/// The creation second an ObjectId's hex carries, as RFC 3339 without
/// fractions, by pymongo's bson.
pub fn object_id_time(hex: &str) -> String {
    let script = r#"
import json, sys
from bson import ObjectId
print(json.dumps(ObjectId(sys.argv[1]).generation_time.strftime("%Y-%m-%dT%H:%M:%S")))
"#;
    run_python(script, &[hex], &Value::Null)
        .as_str()
        .unwrap()
        .to_owned()
}

/// The first 8 hex digits of an ObjectId made at `rfc3339`, by pymongo's
/// bson.
pub fn object_id_prefix_at(rfc3339: &str) -> String {
    let script = r#"
import json, sys
from datetime import datetime
from bson import ObjectId
print(json.dumps(str(ObjectId.from_datetime(datetime.fromisoformat(sys.argv[1])))[:8]))
"#;
    run_python(script, &[rfc3339], &Value::Null)
        .as_str()
        .unwrap()
        .to_owned()
}
