//! Databases as the Flask service left them: written by pymongo, with the
//! Flask service's own validation (pydantic's `EmailStr`, which lowercases
//! the domain, keeps the local part as typed and stores a punycode domain in
//! Unicode) and hashing (passlib's `CryptContext(schemes=["argon2",
//! "bcrypt"], default="argon2")`). Nothing here is written the way this
//! project writes users.

use serde_json::{json, Value};

use crate::reference::run_python;

/// One user to write as the Flask service did.
#[derive(Debug, Clone)]
pub struct FlaskUser {
    pub name: String,
    /// The email as a client sent it; stored as `EmailStr` normalized it.
    pub email: String,
    pub password: Secret,
    /// Its `_id` as an ObjectId, as a document imported by hand might have;
    /// the Flask service itself stored `str(ObjectId())`.
    pub object_id: bool,
}

#[derive(Debug, Clone)]
pub enum Secret {
    /// Hashed by the Flask service's CryptContext (argon2id).
    Password(String),
    /// The Flask service's bug: a client sent a hash, stored as it came.
    /// This one is pyca bcrypt's hash of the password, at cost 4.
    ClientSentBcryptOf(String),
}

impl FlaskUser {
    pub fn new(name: &str, email: &str, password: &str) -> Self {
        Self {
            name: name.to_owned(),
            email: email.to_owned(),
            password: Secret::Password(password.to_owned()),
            object_id: false,
        }
    }
}

const WRITER: &str = r#"
import json, sys
import bcrypt
from bson import ObjectId
from passlib.context import CryptContext
from pydantic import EmailStr, TypeAdapter
from pymongo import MongoClient

uri, database, collection = sys.argv[1:4]
users = MongoClient(uri)[database][collection]
context = CryptContext(schemes=["argon2", "bcrypt"], default="argon2")
email_str = TypeAdapter(EmailStr)
written = []
for user in json.load(sys.stdin):
    oid = ObjectId()
    if "password" in user:
        password = context.hash(user["password"])
    else:
        password = bcrypt.hashpw(user["client_bcrypt_of"].encode(), bcrypt.gensalt(4)).decode()
    document = {
        "_id": oid if user["object_id"] else str(oid),
        "name": user["name"],
        "email": email_str.validate_python(user["email"]),
        "password": password,
    }
    users.insert_one(document)
    written.append({"_id": str(oid), "name": document["name"], "email": document["email"],
                    "password": document["password"]})
print(json.dumps(written))
"#;

/// Writes `users` into `collection` of `database` at `uri` and returns each
/// document as written: `_id` (hex), `name`, `email`, `password` (the hash).
pub fn write(uri: &str, database: &str, collection: &str, users: &[FlaskUser]) -> Vec<Value> {
    let input: Vec<Value> = users
        .iter()
        .map(|user| {
            let mut item = json!({
                "name": user.name, "email": user.email, "object_id": user.object_id,
            });
            match &user.password {
                Secret::Password(password) => item["password"] = json!(password),
                Secret::ClientSentBcryptOf(password) => item["client_bcrypt_of"] = json!(password),
            }
            item
        })
        .collect();
    run_python(WRITER, &[uri, database, collection], &Value::Array(input))
        .as_array()
        .expect("the written documents")
        .clone()
}

const BULK_WRITER: &str = r#"
import json, sys
from bson import ObjectId
from passlib.context import CryptContext
from pymongo import MongoClient

uri, database, collection, count = sys.argv[1:5]
spec = json.load(sys.stdin)
users = MongoClient(uri)[database][collection]
# One argon2 hash for all: hashing thousands at passlib's settings would take
# minutes, and every document is still exactly what the service stored.
password = CryptContext(schemes=["argon2", "bcrypt"], default="argon2").hash(spec["password"])
documents = [
    {"_id": str(ObjectId()), "name": f"User {i}", "email": f"user{i}@example.com",
     "password": password}
    for i in range(int(count))
]
users.insert_many(documents)
print(json.dumps(len(documents)))
"#;

/// Writes `count` Flask-era users (`user{i}@example.com`) sharing one
/// passlib argon2 hash of `password`.
pub fn write_many(uri: &str, database: &str, collection: &str, count: usize, password: &str) {
    run_python(
        BULK_WRITER,
        &[uri, database, collection, &count.to_string()],
        &json!({ "password": password }),
    );
}

const RAW_WRITER: &str = r#"
import json, sys
from bson import json_util
from pymongo import MongoClient

uri, database, collection = sys.argv[1:4]
documents = json_util.loads(sys.stdin.read())
MongoClient(uri)[database][collection].insert_many(documents)
print(json.dumps(len(documents)))
"#;

/// Inserts documents given in MongoDB Extended JSON, as someone editing the
/// database by hand might have left them.
pub fn write_raw(uri: &str, database: &str, collection: &str, documents: Value) {
    run_python(RAW_WRITER, &[uri, database, collection], &documents);
}

const DUMPER: &str = r#"
import json, sys
from bson import json_util
from pymongo import MongoClient

uri, database, collection = sys.argv[1:4]
documents = list(MongoClient(uri)[database][collection].find().sort("_id", 1))
print(json_util.dumps(documents, json_options=json_util.CANONICAL_JSON_OPTIONS))
"#;

/// Every document of a collection, in `_id` order, as canonical Extended
/// JSON: to compare collections exactly.
pub fn dump(uri: &str, database: &str, collection: &str) -> Value {
    run_python(DUMPER, &[uri, database, collection], &Value::Null)
}
