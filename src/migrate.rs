//! `user-api migrate`: adopts the users the Flask service wrote.
//!
//! Each document becomes a user of this service: the string `_id` becomes an
//! ObjectId with the same hex (so every id clients stored still works), the
//! times come from the id, the version is 1, the email is normalized and the
//! password hash is kept as it is, to be upgraded at the user's next login.
//! Nothing is guessed: emails that collide once normalized, and documents
//! that cannot be read, are listed instead of migrated; names that break
//! today's rules are migrated unchanged and listed as warnings. The source
//! always survives: when it is the service's own collection, it is first
//! renamed aside. A marker in the target database makes a migration
//! interrupted at any point resume where it was; re-running a finished one
//! changes nothing.

use std::{
    collections::HashMap,
    io::IsTerminal,
    path::PathBuf,
    sync::Arc,
    time::{Duration, Instant},
};

use chrono::Utc;
use futures::TryStreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

use crate::{
    config::Config,
    domain::{EmailAddress, Metadata, StoredHash, User, UserId, UserName},
    metrics::Metrics,
    startup::{self, StartupError},
    store::{
        BatchOutcome, Markers, Source, SourceDocument, SourceId, SourceLocation, StoreError,
        TextField, UserStore, USERS_COLLECTION,
    },
    telemetry::ErrorChain,
};

/// `user-api migrate` options.
#[derive(Debug, Clone, clap::Args)]
pub struct MigrateArgs {
    /// MongoDB URI of the Flask service's database; its path names the
    /// database, such as mongodb://localhost:27017/users.
    #[arg(long)]
    pub from: String,

    /// The collection the Flask service kept its users in.
    #[arg(long, default_value = "users")]
    pub collection: String,

    /// Read everything and print the same report, but write nothing.
    #[arg(long)]
    pub dry_run: bool,

    /// Also write every listed document, and every warning, to this file as
    /// JSON.
    #[arg(long, value_name = "FILE.json")]
    pub report: Option<PathBuf>,

    /// Of a group of documents whose emails collide once normalized, migrate
    /// the oldest (by id) and list the rest, instead of listing them all.
    #[arg(long)]
    pub keep_oldest: bool,
}

/// Exit codes.
pub const EXIT_LISTED: u8 = 3;

#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Startup(#[from] StartupError),
    #[error("the database failed")]
    Store(#[from] StoreError),
    #[error("cannot write the report to {path}")]
    Report {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Why a document was not migrated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// Its email collides, once normalized, with other documents' emails.
    EmailCollision,
    /// It cannot be read as a user.
    Unreadable,
    /// A user of the service (another id) already has its email.
    EmailTaken,
    /// A user of the service with its id has another email.
    IdTaken,
}

#[derive(Debug, Clone, Serialize)]
pub struct Listed {
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    pub reason: Reason,
    pub detail: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Warning {
    pub id: String,
    pub detail: String,
}

#[derive(Debug, Default, Serialize)]
pub struct Report {
    pub source: String,
    /// Where the documents were moved aside to, when they were in the
    /// service's own collection.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub moved_to: Option<String>,
    pub dry_run: bool,
    pub migrated: u64,
    pub already_there: u64,
    pub listed: Vec<Listed>,
    pub warnings: Vec<Warning>,
}

impl Report {
    /// 0 when every document is in the service now, 3 when some are listed.
    pub fn exit_code(&self) -> u8 {
        if self.listed.is_empty() {
            0
        } else {
            EXIT_LISTED
        }
    }

    pub fn summary(&self) -> String {
        let mut by_reason: Vec<(Reason, usize)> = Vec::new();
        for listed in &self.listed {
            match by_reason
                .iter_mut()
                .find(|(reason, _)| *reason == listed.reason)
            {
                Some((_, count)) => *count += 1,
                None => by_reason.push((listed.reason, 1)),
            }
        }
        by_reason.sort();
        let not_migrated = if by_reason.is_empty() {
            "0".to_owned()
        } else {
            by_reason
                .iter()
                .map(|(reason, count)| {
                    let reason = serde_json::to_value(reason).unwrap_or_default();
                    format!("{count} {}", reason.as_str().unwrap_or_default())
                })
                .collect::<Vec<_>>()
                .join(", ")
        };
        format!(
            "{}from {}{}: migrated {}, already there {}, not migrated: {not_migrated}; {} \
             warning(s)",
            if self.dry_run {
                "DRY RUN (nothing written) "
            } else {
                ""
            },
            self.source,
            self.moved_to
                .as_ref()
                .map(|to| format!(" (moved aside to {to})"))
                .unwrap_or_default(),
            self.migrated,
            self.already_there,
            self.warnings.len()
        )
    }
}

/// Users written per round trip.
const BATCH: usize = 1000;

/// Runs the migration the arguments describe into the database of
/// `config`'s `MONGO_URI`, and returns what it did.
pub async fn run(config: &Config, args: &MigrateArgs) -> Result<Report, MigrateError> {
    let report = migrate(config, args).await?;
    if let Some(path) = &args.report {
        let json = serde_json::to_vec_pretty(&report).unwrap_or_default();
        std::fs::write(path, json).map_err(|source| MigrateError::Report {
            path: path.clone(),
            source,
        })?;
    }
    Ok(report)
}

async fn migrate(config: &Config, args: &MigrateArgs) -> Result<Report, MigrateError> {
    let (target_database, target_hosts) = startup::connect(config).await?;
    let target = UserStore::new(&target_database, Arc::new(Metrics::default()));
    let markers = Markers::new(&target_database);
    let (named_source, location) = Source::connect(&args.from, &args.collection)
        .await
        .map_err(MigrateError::Usage)?;
    let own = SourceLocation {
        hosts: target_hosts,
        database: target_database.name().to_owned(),
        collection: USERS_COLLECTION.to_owned(),
    };
    let mut report = Report {
        source: format!("{}.{}", location.database, location.collection),
        dry_run: args.dry_run,
        ..Report::default()
    };
    // The service's own collection, named the same way or another
    // (`localhost` for `127.0.0.1`): adopted in place either way, never
    // copied into itself.
    let in_place = location == own
        || named_source
            .is_seen_as(&target_database, USERS_COLLECTION)
            .await?;
    let source = if in_place {
        // Moved aside and read through the service's own connection: only
        // the service's database is ever changed.
        let own = Source::in_database(&target_database, USERS_COLLECTION);
        match move_aside(&own, &markers, args.dry_run).await? {
            Some(source) => source,
            None => return Ok(report),
        }
    } else {
        named_source
    };
    if source.name() != location.collection {
        report.moved_to = Some(source.name());
    }
    if !args.dry_run {
        target.ensure_indexes().await?;
    }
    let collisions = find_collisions(&source, args.keep_oldest).await?;
    copy(&source, &target, &collisions, args.dry_run, &mut report).await?;
    if in_place && !args.dry_run {
        markers.finish(USERS_COLLECTION).await?;
    }
    Ok(report)
}

/// The documents to migrate when they sit in the service's own collection:
/// moved aside first (recorded in a marker before they move), or, after an
/// interruption, wherever the marker says they went. `None` when there is
/// nothing to migrate.
async fn move_aside(
    own: &Source,
    markers: &Markers,
    dry_run: bool,
) -> Result<Option<Source>, MigrateError> {
    let marker = markers.find(USERS_COLLECTION).await?;
    let foreign_here = own.has_foreign().await?;
    let moved_to = match marker {
        // A finished migration, nothing new since: re-run it (it changes
        // nothing) so the report says where everything is.
        Some(marker) if marker.done && !foreign_here => {
            return Ok(Some(own.sibling(&marker.moved_to)))
        }
        // Interrupted, before or after the rename.
        Some(marker) if !marker.done => marker.moved_to,
        _ if !foreign_here => {
            tracing::info!("the users collection holds no foreign documents");
            return Ok(None);
        }
        _ => format!("users_legacy_{}", Utc::now().format("%Y%m%dT%H%M%SZ")),
    };
    let aside = own.sibling(&moved_to);
    if dry_run {
        let moved = aside.exists().await?;
        return Ok(Some(if moved {
            aside
        } else {
            own.sibling(USERS_COLLECTION)
        }));
    }
    markers.begin(USERS_COLLECTION, &moved_to).await?;
    if foreign_here && !aside.exists().await? {
        own.rename_to(&moved_to).await?;
        tracing::info!(to = %moved_to, "moved the foreign documents aside");
    }
    Ok(Some(aside))
}

/// Who is left out because of colliding emails, by source id: the
/// message says with which ids.
type Collisions = HashMap<String, String>;

/// The first pass: which documents' emails collide once normalized.
async fn find_collisions(source: &Source, keep_oldest: bool) -> Result<Collisions, StoreError> {
    let mut groups: HashMap<String, Vec<SourceId>> = HashMap::new();
    let mut emails = Box::pin(source.emails().await?);
    while let Some((id, email)) = emails.try_next().await? {
        if let TextField::Text(email) = email {
            if let Ok(email) = EmailAddress::normalize(&email) {
                groups
                    .entry(email.as_str().to_owned())
                    .or_default()
                    .push(id);
            }
        }
    }
    let mut collisions = Collisions::new();
    for (email, mut ids) in groups.into_iter().filter(|(_, ids)| ids.len() > 1) {
        ids.sort_by_key(|id| (created_second(id), id.to_string()));
        let all = ids.iter().map(ToString::to_string).collect::<Vec<_>>();
        let kept = keep_oldest.then(|| all[0].clone());
        for id in &all {
            if Some(id) == kept.as_ref() {
                continue;
            }
            let detail = match &kept {
                Some(kept) => format!(
                    "{email} is shared by ids {}; the oldest, {kept}, was migrated",
                    all.join(", ")
                ),
                None => format!("{email} is shared by ids {}", all.join(", ")),
            };
            collisions.insert(id.clone(), detail);
        }
    }
    Ok(collisions)
}

/// The second of an id's creation, for "oldest"; ids that are not
/// ObjectIds come last.
fn created_second(id: &SourceId) -> i64 {
    let parsed = match id {
        SourceId::ObjectId(id) => Some(*id),
        SourceId::Text(text) => UserId::parse(text).ok(),
        SourceId::Other(_) => None,
    };
    parsed.map_or(i64::MAX, |id| id.created_at().timestamp())
}

/// A source document as a user of this service, with the warnings it
/// earns; or why it cannot be one.
fn adopt(document: SourceDocument) -> Result<(User, StoredHash, Vec<String>), String> {
    if let Some((user, hash)) = document.current {
        let hash = StoredHash::parse(&hash).map_err(|reason| format!("password_hash {reason}"))?;
        return Ok((user, hash, Vec::new()));
    }
    let text = |field: TextField, name: &str| match field {
        TextField::Text(text) => Ok(text),
        TextField::Missing => Err(format!("{name} is missing")),
        TextField::NotText(kind) => Err(format!("{name} is a {kind}, not a string")),
    };
    let id = match &document.id {
        SourceId::ObjectId(id) => *id,
        SourceId::Text(text) => UserId::parse(text).map_err(|_| {
            format!("_id `{text}` is neither an ObjectId nor 24 hexadecimal digits")
        })?,
        SourceId::Other(other) => {
            return Err(format!(
                "_id {other} is neither an ObjectId nor 24 hexadecimal digits"
            ))
        }
    };
    let name = text(document.name, "name")?;
    let raw_email = text(document.email, "email")?;
    let email = EmailAddress::normalize(&raw_email).map_err(|reason| format!("email {reason}"))?;
    let hash = StoredHash::parse(&text(document.password, "password")?)
        .map_err(|reason| format!("password {reason}"))?;
    let mut warnings = Vec::new();
    match UserName::parse(&name) {
        Ok(parsed) if parsed.as_str() == name => {}
        Ok(_) => warnings.push("name has surrounding whitespace; migrated unchanged".to_owned()),
        Err(reason) => warnings.push(format!("name {reason}; migrated unchanged")),
    }
    if let Err(reason) = EmailAddress::parse(&raw_email) {
        warnings.push(format!(
            "email {reason} by today's rules; migrated as {}",
            email.as_str()
        ));
    }
    if !document.other_fields.is_empty() {
        warnings.push(format!(
            "fields not carried over (they stay in the source): {}",
            document.other_fields.join(", ")
        ));
    }
    let created = id.created_at();
    let user = User {
        id,
        name,
        email: email.as_str().to_owned(),
        created_at: created,
        updated_at: created,
        version: 1,
        disabled: false,
        last_verified_at: None,
        metadata: Metadata::default(),
        external_id: None,
    };
    Ok((user, hash, warnings))
}

/// Shows how far the copy is: a bar on a terminal, a line every few seconds
/// otherwise.
struct Progress {
    bar: Option<ProgressBar>,
    total: u64,
    last_line: Instant,
}

impl Progress {
    fn new(total: u64) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new(total);
            if let Ok(style) = ProgressStyle::with_template(
                "{bar:40} {pos}/{len} documents, {per_sec}, {eta} left {msg}",
            ) {
                bar.set_style(style);
            }
            bar
        });
        Self {
            bar,
            total,
            last_line: Instant::now(),
        }
    }

    fn update(&mut self, report: &Report, seen: u64) {
        let message = format!(
            "(migrated {}, already there {}, listed {})",
            report.migrated,
            report.already_there,
            report.listed.len()
        );
        match &self.bar {
            Some(bar) => {
                bar.set_position(seen);
                bar.set_message(message);
            }
            None if self.last_line.elapsed() >= Duration::from_secs(2) => {
                eprintln!("migrate: {seen}/{} documents {message}", self.total);
                self.last_line = Instant::now();
            }
            None => {}
        }
    }

    fn finish(self) {
        if let Some(bar) = self.bar {
            bar.finish_and_clear();
        }
    }
}

/// The second pass: every document, adopted and written in batches.
async fn copy(
    source: &Source,
    target: &UserStore,
    collisions: &Collisions,
    dry_run: bool,
    report: &mut Report,
) -> Result<(), StoreError> {
    let mut progress = Progress::new(source.count().await?);
    let mut documents = Box::pin(source.documents().await?);
    let mut batch: Vec<(User, StoredHash)> = Vec::with_capacity(BATCH);
    let mut seen = 0;
    while let Some(document) = documents.try_next().await? {
        seen += 1;
        let id = document.id.to_string();
        let email = match &document.email {
            TextField::Text(email) => Some(email.clone()),
            _ => None,
        };
        if let Some(detail) = collisions.get(&id) {
            report.listed.push(Listed {
                id,
                email,
                reason: Reason::EmailCollision,
                detail: detail.clone(),
            });
            continue;
        }
        match adopt(document) {
            Ok((user, hash, warnings)) => {
                report
                    .warnings
                    .extend(warnings.into_iter().map(|detail| Warning {
                        id: id.clone(),
                        detail,
                    }));
                batch.push((user, hash));
            }
            Err(detail) => report.listed.push(Listed {
                id,
                email,
                reason: Reason::Unreadable,
                detail,
            }),
        }
        if batch.len() == BATCH {
            write(target, &mut batch, dry_run, report).await?;
            progress.update(report, seen);
        }
    }
    write(target, &mut batch, dry_run, report).await?;
    progress.update(report, seen);
    progress.finish();
    Ok(())
}

async fn write(
    target: &UserStore,
    batch: &mut Vec<(User, StoredHash)>,
    dry_run: bool,
    report: &mut Report,
) -> Result<(), StoreError> {
    let outcomes = if dry_run {
        let users: Vec<&User> = batch.iter().map(|(user, _)| user).collect();
        target
            .classify(&users)
            .await?
            .into_iter()
            .map(|found| found.unwrap_or(BatchOutcome::Created))
            .collect()
    } else {
        target.insert_batch(batch).await?
    };
    for ((user, _), outcome) in batch.drain(..).zip(outcomes) {
        let listed = |reason, detail: &str| Listed {
            id: user.id.to_string(),
            email: Some(user.email.clone()),
            reason,
            detail: detail.to_owned(),
        };
        match outcome {
            BatchOutcome::Created => report.migrated += 1,
            BatchOutcome::AlreadyThere => report.already_there += 1,
            BatchOutcome::EmailTaken => report.listed.push(listed(
                Reason::EmailTaken,
                "a user of the service with another id has this email",
            )),
            BatchOutcome::IdTaken => report.listed.push(listed(
                Reason::IdTaken,
                "a user of the service with this id has another email",
            )),
            // Flask documents carry no external id.
            BatchOutcome::ExternalIdTaken => report.listed.push(listed(
                Reason::EmailTaken,
                "a user of the service has this external id",
            )),
        }
    }
    Ok(())
}

/// Prints the outcome of [`run`] and turns it into an exit code.
pub fn finish(outcome: Result<Report, MigrateError>) -> u8 {
    match outcome {
        Ok(report) => {
            for listed in &report.listed {
                eprintln!(
                    "not migrated: {} ({:?}): {}",
                    listed.id, listed.reason, listed.detail
                );
            }
            for warning in &report.warnings {
                eprintln!("warning: {}: {}", warning.id, warning.detail);
            }
            println!("{}", report.summary());
            report.exit_code()
        }
        Err(error) => {
            eprintln!("user-api migrate: {}", ErrorChain(&error));
            1
        }
    }
}
