//! `user-api migrate`, run as a user would (the binary), against databases
//! the Flask service wrote.

use std::{
    process::{Output, Stdio},
    time::{Duration, Instant},
};

use mongodb::bson::{doc, Document};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::{
    flask::{self, FlaskUser, Secret},
    helpers::{fresh_database, mongo_uri, TestApp},
    process::user_api,
};

fn uri(database: &str) -> String {
    format!("{}/{database}", mongo_uri())
}

/// `user-api migrate ARGS` into `target`, to completion.
fn migrate(target: &str, args: &[&str]) -> Output {
    let output = user_api()
        .arg("migrate")
        .args(args)
        .env("MONGO_URI", uri(target))
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .output()
        .expect("the binary runs");
    assert!(
        output.status.code().is_some(),
        "migrate was killed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// `migrate --from` the target's own database, with `--report`: the
/// outcome and the report it wrote.
fn migrate_in_place_with_report(database: &str) -> (Output, Value) {
    let path = std::env::temp_dir().join(format!("migrate-{database}.json"));
    let output = migrate(
        database,
        &["--from", &uri(database), "--report", path.to_str().unwrap()],
    );
    let report = std::fs::read(&path).expect("the report was written");
    (output, serde_json::from_slice(&report).unwrap())
}

fn summary(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

async fn collection_names(app: &TestApp) -> Vec<String> {
    app.db.list_collection_names().await.unwrap()
}

/// The Flask service's users, with every case the migration must handle.
fn flask_era() -> Vec<FlaskUser> {
    vec![
        FlaskUser::new("John Doe", "John.Doe@Example.COM", "Password@123"),
        // Differs from John's only in case: the two collide.
        FlaskUser::new("Johnny", "john.doe@example.com", "Password@234"),
        FlaskUser {
            password: Secret::ClientSentBcryptOf("Password@345".into()),
            ..FlaskUser::new("Bea Crypt", "bea@example.com", "")
        },
        FlaskUser {
            object_id: true,
            ..FlaskUser::new("Ann Lee", "ann@example.com", "Password@456")
        },
        FlaskUser::new("Uwe Bücher", "User@XN--BCHER-KVA.DE", "Password@567"),
        FlaskUser::new("José", "josé@correo.es", "Password@678"),
        // The Flask service took any string as a name.
        FlaskUser::new("", "nameless@example.com", "Password@789"),
    ]
}

/// A document someone edited by hand: no password hash.
fn unreadable() -> Value {
    json!([{ "_id": "6b0a2981e83f4cfa13537ef9", "name": "Hand Made", "email": "hand@example.com",
             "password": 12345 }])
}

#[tokio::test]
async fn migrate_adopts_the_flask_database_in_place_and_a_rerun_changes_nothing() {
    let database = fresh_database();
    let written = flask::write(&uri(&database), &database, "users", &flask_era());
    flask::write_raw(&uri(&database), &database, "users", unreadable());
    let original = flask::dump(&uri(&database), &database, "users");

    let (first, report) = migrate_in_place_with_report(&database);
    assert_eq!(first.status.code(), Some(3), "{}", summary(&first));
    assert!(
        summary(&first).contains("migrated 5, already there 0, not migrated: 2 email_collision, 1 unreadable; 1 warning(s)"),
        "{}",
        summary(&first)
    );
    let listed = report["listed"].as_array().unwrap();
    let john = written[0]["_id"].as_str().unwrap();
    let johnny = written[1]["_id"].as_str().unwrap();
    for (id, reason) in [
        (john, "email_collision"),
        (johnny, "email_collision"),
        ("6b0a2981e83f4cfa13537ef9", "unreadable"),
    ] {
        let entry = listed.iter().find(|entry| entry["id"] == id).unwrap();
        assert_eq!(entry["reason"], reason, "{entry}");
    }
    let collision = listed.iter().find(|entry| entry["id"] == john).unwrap();
    assert!(
        collision["detail"].as_str().unwrap().contains(johnny),
        "the group names every id: {collision}"
    );
    assert!(report["warnings"][0]["detail"]
        .as_str()
        .unwrap()
        .starts_with("name must not be empty"));

    // The source is intact, moved aside.
    let moved_to = report["moved_to"].as_str().unwrap().to_owned();
    assert!(moved_to.starts_with("users_legacy_"), "{moved_to}");
    assert_eq!(flask::dump(&uri(&database), &database, &moved_to), original);

    // The service serves the adopted users under their old ids.
    let app = TestApp::spawn_on(&database, |_| {}).await;
    let health = app.send(app.anonymous(Method::GET, "/health")).await;
    assert_eq!(health.status, StatusCode::OK, "{}", health.text);
    for (i, password) in [
        (2, "Password@345"),
        (3, "Password@456"),
        (4, "Password@567"),
        (5, "Password@678"),
        (6, "Password@789"),
    ] {
        let id = written[i]["_id"].as_str().unwrap();
        let user = app.get(&format!("/user/{id}")).await;
        assert_eq!(user.status, StatusCode::OK, "{id}: {}", user.text);
        assert_eq!(user.data()["version"], 1);
        let email = user.data()["email"].as_str().unwrap().to_owned();
        let before = app.stored_hash(id).await;
        assert_eq!(
            before,
            written[i]["password"].as_str().unwrap(),
            "hashes are kept as they were"
        );
        assert_eq!(
            app.verify(&email, password).await.status,
            StatusCode::OK,
            "{email}"
        );
        let after = app.stored_hash(id).await;
        assert!(
            after.starts_with("$2b$04$"),
            "{email}: upgraded to bcrypt, got {after}"
        );
    }
    let bucher = app
        .get(&format!("/user/{}", written[4]["_id"].as_str().unwrap()))
        .await;
    assert_eq!(bucher.data()["email"], "user@bücher.de");
    assert_eq!(
        bucher.data()["created_at"].as_str().unwrap()[..19],
        crate::reference::object_id_time(written[4]["_id"].as_str().unwrap())
    );

    // A re-run finds everything already there and writes nothing.
    let users_before = flask::dump(&uri(&database), &database, "users");
    let names_before = collection_names(&app).await;
    let again = migrate(&database, &["--from", &uri(&database)]);
    assert_eq!(again.status.code(), Some(3), "{}", summary(&again));
    assert!(
        summary(&again)
            .contains("migrated 0, already there 5, not migrated: 2 email_collision, 1 unreadable"),
        "{}",
        summary(&again)
    );
    assert_eq!(
        flask::dump(&uri(&database), &database, "users"),
        users_before
    );
    assert_eq!(collection_names(&app).await.len(), names_before.len());
}

/// Nothing foreign to adopt: exit 0, and the report is still written.
/// A source the command cannot use: exit 1, with the reason.
#[tokio::test]
async fn nothing_to_migrate_exits_0_with_a_report_and_a_bad_source_exits_1() {
    let database = fresh_database();
    let app = TestApp::spawn_on(&database, |_| {}).await;
    app.create_user("Ada", "ada@example.com").await;
    let (output, report) = migrate_in_place_with_report(&database);
    assert_eq!(output.status.code(), Some(0), "{}", summary(&output));
    assert_eq!(report["migrated"], 0, "{report}");
    assert_eq!(report["listed"], json!([]), "{report}");
    assert_eq!(app.stored_count().await, 1);

    // The source URI names no database.
    let output = migrate(&database, &["--from", &mongo_uri()]);
    assert_eq!(output.status.code(), Some(1), "{}", summary(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("--from must name the source database"),
        "{stderr}"
    );
}

/// The service's own database named another way (`localhost` where the
/// service says `127.0.0.1`) is still adopted in place: moved aside and
/// converted, not copied into itself beside the old documents.
#[tokio::test]
async fn the_own_database_under_another_host_name_is_adopted_in_place() {
    let database = fresh_database();
    flask::write_many(&uri(&database), &database, "users", 5, "Password@123");
    let Some(other_name) = uri(&database)
        .contains("127.0.0.1")
        .then(|| uri(&database).replacen("127.0.0.1", "localhost", 1))
    else {
        panic!("TEST_MONGO_URI must name 127.0.0.1 for this test");
    };
    let output = migrate(&database, &["--from", &other_name]);
    assert_eq!(output.status.code(), Some(0), "{}", summary(&output));
    assert!(
        summary(&output).contains("migrated 5, already there 0"),
        "{}",
        summary(&output)
    );
    let app = TestApp::spawn_on(&database, |_| {}).await;
    let names = collection_names(&app).await;
    assert!(
        names.iter().any(|name| name.starts_with("users_legacy_")),
        "{names:?}"
    );
    assert_eq!(app.stored_count().await, 5);
    let health = app.send(app.anonymous(Method::GET, "/health")).await;
    assert_eq!(health.status, StatusCode::OK, "{}", health.text);
}

#[tokio::test]
async fn keep_oldest_migrates_the_first_of_a_collision_group() {
    let database = fresh_database();
    let written = flask::write(&uri(&database), &database, "users", &flask_era()[..2]);
    let output = migrate(&database, &["--from", &uri(&database), "--keep-oldest"]);
    assert_eq!(output.status.code(), Some(3), "{}", summary(&output));
    assert!(
        summary(&output).contains("migrated 1, already there 0, not migrated: 1 email_collision")
    );
    let app = TestApp::spawn_on(&database, |_| {}).await;
    let oldest = written[0]["_id"].as_str().unwrap();
    assert_eq!(
        app.get(&format!("/user/{oldest}")).await.status,
        StatusCode::OK
    );
    app.get(&format!("/user/{}", written[1]["_id"].as_str().unwrap()))
        .await
        .assert_error(404, "not_found");
    assert_eq!(
        app.verify("john.doe@example.com", "Password@123")
            .await
            .status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_dry_run_reports_the_same_and_writes_nothing() {
    let database = fresh_database();
    flask::write(&uri(&database), &database, "users", &flask_era());
    flask::write_raw(&uri(&database), &database, "users", unreadable());
    let before = flask::dump(&uri(&database), &database, "users");
    let dry = migrate(&database, &["--from", &uri(&database), "--dry-run"]);
    assert_eq!(dry.status.code(), Some(3));
    assert!(summary(&dry).starts_with("DRY RUN"), "{}", summary(&dry));
    assert_eq!(flask::dump(&uri(&database), &database, "users"), before);
    let names = mongodb::Client::with_uri_str(mongo_uri())
        .await
        .unwrap()
        .database(&database)
        .list_collection_names()
        .await
        .unwrap();
    assert_eq!(names, vec!["users".to_owned()], "a dry run wrote something");

    let real = migrate(&database, &["--from", &uri(&database)]);
    let counts = |output: &Output| {
        summary(output)
            .split(": ")
            .skip(1)
            .collect::<Vec<_>>()
            .join(": ")
    };
    assert_eq!(counts(&dry), counts(&real));
}

/// Another database as the source: it is read, never written.
#[tokio::test]
async fn a_source_in_another_database_is_left_as_it_is() {
    let source = fresh_database();
    let target = fresh_database();
    flask::write(&uri(&source), &source, "people", &flask_era()[2..]);
    let before = flask::dump(&uri(&source), &source, "people");
    let output = migrate(
        &target,
        &["--from", &uri(&source), "--collection", "people"],
    );
    assert_eq!(output.status.code(), Some(0), "{}", summary(&output));
    assert!(summary(&output).contains("migrated 5, already there 0, not migrated: 0"));
    assert_eq!(flask::dump(&uri(&source), &source, "people"), before);
    let app = TestApp::spawn_on(&target, |_| {}).await;
    assert_eq!(app.stored_count().await, 5);
}

/// Killed at any point and run again, a migration ends where an
/// uninterrupted one does.
#[tokio::test]
async fn a_migration_killed_midway_converges_when_run_again() {
    const USERS: usize = 8000;
    let whole = fresh_database();
    let killed = fresh_database();
    flask::write_many(&uri(&whole), &whole, "users", USERS, "Password@123");
    let source = flask::dump(&uri(&whole), &whole, "users");
    flask::write_raw(&uri(&killed), &killed, "users", source);
    let done = migrate(&whole, &["--from", &uri(&whole)]);
    assert_eq!(done.status.code(), Some(0), "{}", summary(&done));

    // The watcher is up before the migration starts, so the kill lands
    // soon after the first users are written, however busy the machine.
    let app = TestApp::spawn_on(&killed, |_| {}).await;
    let mut child = user_api()
        .arg("migrate")
        .args(["--from", &uri(&killed)])
        .env("MONGO_URI", uri(&killed))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let names = collection_names(&app).await;
        let moved = names.iter().any(|name| name.starts_with("users_legacy_"));
        if moved && app.stored_count().await >= 1 {
            break;
        }
        assert!(Instant::now() < deadline, "the migration made no progress");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let partial = app.stored_count().await;
    assert!(
        partial < USERS as u64,
        "killed too late to prove anything ({partial})"
    );

    let resumed = migrate(&killed, &["--from", &uri(&killed)]);
    assert_eq!(resumed.status.code(), Some(0), "{}", summary(&resumed));
    assert!(
        flask::dump(&uri(&killed), &killed, "users") == flask::dump(&uri(&whole), &whole, "users"),
        "the resumed migration does not end where the whole one did"
    );
}

/// Interrupted between recording where the documents go and moving them:
/// the next run moves them and carries on.
#[tokio::test]
async fn an_interruption_before_the_move_resumes_with_the_move() {
    let database = fresh_database();
    flask::write(&uri(&database), &database, "users", &flask_era()[2..]);
    let before = flask::dump(&uri(&database), &database, "users");
    let app = TestApp::spawn_on(&database, |_| {}).await;
    // The state the migration leaves after writing its marker, before the
    // rename: the marker is the migration's own bookkeeping.
    app.db
        .collection::<Document>("migrations")
        .insert_one(doc! {
            "_id": "users", "moved_to": "users_legacy_20260101T000000Z", "done": false,
            "started_at": mongodb::bson::DateTime::now(),
        })
        .await
        .unwrap();
    let output = migrate(&database, &["--from", &uri(&database)]);
    assert_eq!(output.status.code(), Some(0), "{}", summary(&output));
    assert_eq!(
        flask::dump(&uri(&database), &database, "users_legacy_20260101T000000Z"),
        before
    );
    assert_eq!(app.stored_count().await, 5);
}
