//! Operator commands of the `chat-server` binary, run in their own process against the store
//! the [`Settings`] name, without HTTP: key rotation, re-encryption and crypto-shredding
//! (`docs/security.md`, "Rotation, re-encryption and shredding").
//!
//! ```text
//! chat-server [serve]
//! chat-server rotate-keys (--workspace <uuid> | --all)
//! chat-server reencrypt --workspace <uuid>
//! chat-server shred-workspace --workspace <uuid> --yes
//! ```
//!
//! [`Command::parse`] reads the arguments; [`Admin`] does the work (tests call it directly);
//! [`run`] prints the outcome on stdout, one line per workspace.

use std::io::Write;
use std::sync::Arc;

use chat_crypto::{ChunkedFileCipher, EnvelopeCipher, MasterKey};
use chat_domain::audit::{AuditAction, AuditLog, Auditor};
use chat_domain::cipher::{ContentCipher, KeyRepository, SealContext};
use chat_domain::clock::SystemClock;
use chat_domain::error::RepoError;
use chat_domain::file::{FileContext, FileRepository, FileSeals, SealedFileRow};
use chat_domain::ids::WorkspaceId;
use chat_domain::message::MessageRepository;
use chat_domain::search::SearchIndex;
use chat_domain::workspace::WorkspaceRepository;
use secrecy::ExposeSecret;
use uuid::Uuid;

use crate::{Settings, StartError, Store};

/// How to use the binary.
pub const USAGE: &str = "usage: chat-server [serve]
       chat-server rotate-keys (--workspace <uuid> | --all)
       chat-server reencrypt --workspace <uuid>
       chat-server shred-workspace --workspace <uuid> --yes";

/// Messages (and files) re-sealed per batch by `reencrypt`.
pub const REENCRYPT_BATCH: u32 = 500;

/// The field name message content is sealed under (as `chat-domain`'s `MessageCodec` does).
const CONTENT_FIELD: &str = "content";

/// What the binary was asked to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command {
    /// Serve HTTP (the default).
    Serve,
    /// Print [`USAGE`].
    Help,
    /// Add a key version to one workspace, or to every workspace that has keys.
    RotateKeys(Target),
    /// Re-seal a workspace's content, file keys and file names still under an older key
    /// version.
    Reencrypt(WorkspaceId),
    /// Destroy a workspace's keys and search tags.
    ShredWorkspace(WorkspaceId),
}

/// Which workspaces `rotate-keys` rotates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// One workspace.
    Workspace(WorkspaceId),
    /// Every workspace holding at least one key version.
    All,
}

/// Arguments that do not form a command.
#[derive(Debug, thiserror::Error)]
#[error("{0}\n{USAGE}")]
pub struct UsageError(String);

impl Command {
    /// Parses the arguments after the program name.
    ///
    /// # Errors
    /// [`UsageError`] for an unknown command or option, a missing or repeated one, or an
    /// invalid UUID.
    pub fn parse<I: IntoIterator<Item = String>>(args: I) -> Result<Self, UsageError> {
        let mut args = args.into_iter();
        let Some(name) = args.next() else { return Ok(Self::Serve) };
        let mut workspace = None;
        let (mut all, mut yes) = (false, false);
        while let Some(arg) = args.next() {
            let (flag, inline) = match arg.split_once('=') {
                Some((flag, value)) => (flag.to_owned(), Some(value.to_owned())),
                None => (arg, None),
            };
            match flag.as_str() {
                "--workspace" => {
                    let value = inline
                        .or_else(|| args.next())
                        .ok_or_else(|| UsageError("--workspace needs a workspace id".into()))?;
                    let id = Uuid::parse_str(&value)
                        .map_err(|_| UsageError(format!("--workspace: `{value}` is not a UUID")))?;
                    if workspace.replace(WorkspaceId::from_uuid(id)).is_some() {
                        return Err(UsageError("--workspace is given twice".into()));
                    }
                }
                "--all" if inline.is_none() => all = true,
                "--yes" if inline.is_none() => yes = true,
                _ => return Err(UsageError(format!("unexpected argument `{flag}`"))),
            }
        }
        let only = |allowed_all: bool, allowed_yes: bool| {
            if all && !allowed_all {
                return Err(UsageError(format!("`{name}` takes no --all")));
            }
            if yes && !allowed_yes {
                return Err(UsageError(format!("`{name}` takes no --yes")));
            }
            Ok(())
        };
        let needs_workspace = || workspace.ok_or_else(|| UsageError(format!("`{name}` needs --workspace <uuid>")));
        match name.as_str() {
            "serve" if workspace.is_none() => only(false, false).map(|()| Self::Serve),
            "help" | "--help" | "-h" => Ok(Self::Help),
            "rotate-keys" => {
                only(true, false)?;
                match (workspace, all) {
                    (Some(id), false) => Ok(Self::RotateKeys(Target::Workspace(id))),
                    (None, true) => Ok(Self::RotateKeys(Target::All)),
                    _ => Err(UsageError("rotate-keys needs exactly one of --workspace <uuid> and --all".into())),
                }
            }
            "reencrypt" => {
                only(false, false)?;
                needs_workspace().map(Self::Reencrypt)
            }
            "shred-workspace" => {
                only(false, true)?;
                let id = needs_workspace()?;
                if !yes {
                    return Err(UsageError(
                        "shred-workspace makes the workspace's messages unreadable forever; confirm with --yes".into(),
                    ));
                }
                Ok(Self::ShredWorkspace(id))
            }
            _ => Err(UsageError(format!("unknown command `{name}`"))),
        }
    }
}

/// Why an admin operation failed.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// No workspace has this id.
    #[error("no workspace {0}")]
    UnknownWorkspace(WorkspaceId),
    /// The store or the keys failed.
    #[error("{0}")]
    Repo(#[from] RepoError),
    /// Some content could not be opened (its ids are in the log); the rest was re-sealed.
    #[error(
        "{unreadable} message(s) or file(s) of workspace {workspace} could not be opened and were left as they are"
    )]
    Unreadable {
        /// The workspace.
        workspace: WorkspaceId,
        /// How many.
        unreadable: u64,
        /// What was done anyway.
        report: Reencrypted,
    },
}

/// What `reencrypt` did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Reencrypted {
    /// The version everything was re-sealed under (0: the workspace has no key).
    pub version: i32,
    /// Messages re-sealed.
    pub resealed: u64,
    /// Messages edited or deleted while being re-sealed: left as the edit wrote them.
    pub changed: u64,
    /// Files whose wrapped key and sealed name were re-sealed (their bodies stay as they are).
    pub files_resealed: u64,
    /// Files re-sealed by someone else (another run) in between: left as they are.
    pub files_changed: u64,
}

/// What `shred-workspace` did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shredded {
    /// Key versions destroyed.
    pub versions: u64,
    /// Search tags dropped.
    pub tags: u64,
}

/// The stores and keys the commands need, opened from [`Settings`].
pub struct Admin {
    cipher: Arc<EnvelopeCipher>,
    /// Re-wraps file keys through `cipher`.
    file_keys: ChunkedFileCipher,
    messages: Arc<dyn MessageRepository>,
    files: Arc<dyn FileRepository>,
    workspaces: Arc<dyn WorkspaceRepository>,
    keys: Arc<dyn KeyRepository>,
    search: Arc<dyn SearchIndex>,
    auditor: Auditor,
}

impl std::fmt::Debug for Admin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Admin").field("cipher", &self.cipher).finish_non_exhaustive()
    }
}

impl Admin {
    /// Opens (and migrates) the store and loads the master key. Unlike the server, it never
    /// generates a master key: without `ENCRYPTION_KEY` the key file must exist, since keys
    /// wrapped under a new master key would be useless to the servers.
    ///
    /// # Errors
    /// [`StartError`] when the store or the master key cannot be opened.
    pub async fn open(settings: &Settings) -> Result<Self, StartError> {
        let master = match &settings.encryption_key {
            Some(hex) => MasterKey::from_hex(hex.expose_secret())
                .map_err(|e| StartError::Keys(format!("ENCRYPTION_KEY: {e}")))?,
            None => {
                let file = settings.data_dir.join("master.key");
                if !file.exists() {
                    return Err(StartError::Keys(format!(
                        "no ENCRYPTION_KEY and no {}: refusing to generate a new master key",
                        file.display()
                    )));
                }
                MasterKey::load_or_generate(&settings.data_dir).map_err(|e| StartError::Keys(e.to_string()))?
            }
        };
        Ok(match &settings.store {
            Store::Sqlite(url) => Self::with_store(
                Arc::new(
                    chat_sqlite::SqliteStore::open(url, settings.database_pool_size)
                        .await
                        .map_err(StartError::Store)?,
                ),
                master,
            ),
            Store::Postgres(url) => Self::with_store(
                Arc::new(
                    chat_postgres::PgStore::connect(url.expose_secret(), settings.database_pool_size)
                        .await
                        .map_err(StartError::Store)?,
                ),
                master,
            ),
        })
    }

    fn with_store<S>(store: Arc<S>, master: MasterKey) -> Self
    where
        S: MessageRepository + WorkspaceRepository + KeyRepository + SearchIndex + AuditLog + FileRepository + 'static,
    {
        let cipher = Arc::new(EnvelopeCipher::new(master, store.clone()));
        Self {
            file_keys: ChunkedFileCipher::new(cipher.clone()),
            cipher,
            messages: store.clone(),
            files: store.clone(),
            workspaces: store.clone(),
            keys: store.clone(),
            search: store.clone(),
            auditor: Auditor::new(store, Arc::new(SystemClock)),
        }
    }

    async fn existing(&self, workspace: WorkspaceId) -> Result<(), AdminError> {
        match self.workspaces.find_workspace(workspace).await? {
            Some(_) => Ok(()),
            None => Err(AdminError::UnknownWorkspace(workspace)),
        }
    }

    /// Adds the workspace's next key version and records `key_rotated` (`version:<n>`).
    /// Returns the new version.
    ///
    /// # Errors
    /// [`AdminError::UnknownWorkspace`], or [`AdminError::Repo`] when the store fails or the
    /// current key does not unwrap under this master key.
    #[tracing::instrument(skip_all, fields(workspace = %workspace))]
    pub async fn rotate(&self, workspace: WorkspaceId) -> Result<i32, AdminError> {
        self.existing(workspace).await?;
        let version = self.cipher.rotate(workspace).await?;
        self.auditor.record(Some(workspace), None, AuditAction::KeyRotated, Some(format!("version:{version}"))).await;
        Ok(version)
    }

    /// [`Self::rotate`] for every workspace holding keys, in id order.
    ///
    /// # Errors
    /// As [`Self::rotate`]; the workspaces before the failing one stay rotated.
    pub async fn rotate_all(&self) -> Result<Vec<(WorkspaceId, i32)>, AdminError> {
        let mut rotated = Vec::new();
        for workspace in self.keys.keyed_workspaces().await? {
            rotated.push((workspace, self.rotate(workspace).await?));
        }
        Ok(rotated)
    }

    /// Re-seals, in batches of `batch`, every message content of the workspace still sealed
    /// under a version older than the current one, then every file key and file name (the
    /// file bodies, sealed under their file keys, stay as they are). A message edited or
    /// deleted meanwhile keeps what the edit wrote. Idempotent and resumable: a second run
    /// finds nothing, and an interrupted run continues where the rows still are old.
    ///
    /// # Errors
    /// [`AdminError::UnknownWorkspace`], [`AdminError::Repo`] when the store or the keys fail,
    /// [`AdminError::Unreadable`] (after the whole pass) when some content did not open.
    #[tracing::instrument(skip_all, fields(workspace = %workspace))]
    pub async fn reencrypt(&self, workspace: WorkspaceId, batch: u32) -> Result<Reencrypted, AdminError> {
        self.existing(workspace).await?;
        let version = self.cipher.current_version(workspace).await?;
        let mut report = Reencrypted { version, ..Reencrypted::default() };
        let mut unreadable = 0;
        let mut after = None;
        loop {
            let rows = self.messages.sealed_in_workspace(workspace, version, after, batch.max(1)).await?;
            let Some(last) = rows.last() else { break };
            after = Some(last.id);
            for row in rows {
                let ctx =
                    SealContext { workspace, conversation: row.conversation_id, message: row.id, field: CONTENT_FIELD };
                let plaintext = match self.cipher.open(&ctx, &row.content).await {
                    Ok(plaintext) => plaintext,
                    Err(error) => {
                        tracing::error!(message = %row.id, version = row.content.key_version, %error, "cannot open; left as it is");
                        unreadable += 1;
                        continue;
                    }
                };
                let resealed = self.cipher.seal(&ctx, &plaintext).await?;
                if self.messages.replace_sealed(row.id, &row.content, &resealed).await? {
                    report.resealed += 1;
                } else {
                    report.changed += 1;
                }
            }
        }
        unreadable += self.reencrypt_files(workspace, version, batch, &mut report).await?;
        tracing::info!(
            version,
            resealed = report.resealed,
            changed = report.changed,
            files_resealed = report.files_resealed,
            files_changed = report.files_changed,
            unreadable,
            "re-encryption done"
        );
        if unreadable > 0 {
            return Err(AdminError::Unreadable { workspace, unreadable, report });
        }
        Ok(report)
    }

    /// Re-wraps the file keys and re-seals the file names of the workspace still under a
    /// version below `version`, by compare-and-swap on both. Returns how many files did not
    /// open (logged by id and left alone).
    async fn reencrypt_files(
        &self,
        workspace: WorkspaceId,
        version: i32,
        batch: u32,
        report: &mut Reencrypted,
    ) -> Result<u64, AdminError> {
        let mut unreadable = 0;
        let mut after = None;
        loop {
            let rows = self.files.sealed_files_in_workspace(workspace, version, after, batch.max(1)).await?;
            let Some(last) = rows.last() else { break };
            after = Some(last.id);
            for row in rows {
                let resealed = match self.reseal_file(workspace, version, &row).await {
                    Ok(resealed) => resealed,
                    Err(error) => {
                        tracing::error!(file = %row.id, key_version = row.seals.file_key.key_version, name_version = row.seals.name.key_version, %error, "cannot open; left as it is");
                        unreadable += 1;
                        continue;
                    }
                };
                if self.files.replace_file_seals(row.id, &row.seals, &resealed).await? {
                    report.files_resealed += 1;
                } else {
                    report.files_changed += 1;
                }
            }
        }
        Ok(unreadable)
    }

    /// A file's wrapped key and sealed name under the current version (each left as it is
    /// when already there).
    async fn reseal_file(
        &self,
        workspace: WorkspaceId,
        version: i32,
        row: &SealedFileRow,
    ) -> Result<FileSeals, RepoError> {
        let ctx = FileContext { workspace, conversation: row.conversation_id, file: row.id };
        let file_key = if row.seals.file_key.key_version < version {
            self.file_keys.rewrap(&ctx, &row.seals.file_key).await?
        } else {
            row.seals.file_key.clone()
        };
        let name = if row.seals.name.key_version < version {
            let name_ctx = ctx.name_seal_context();
            let plaintext = self.cipher.open(&name_ctx, &row.seals.name).await?;
            self.cipher.seal(&name_ctx, &plaintext).await?
        } else {
            row.seals.name.clone()
        };
        Ok(FileSeals { name, file_key })
    }

    /// Crypto-shredding: destroys every key version of the workspace and drops its search
    /// tags, then records `workspace_shredded` (`versions:<n>`). The message rows stay, as
    /// ciphertext nobody can open. Running servers stop opening them once their key cache
    /// re-checks the store (`DEFAULT_KEY_REFRESH`, 5 minutes) — restart them to be sure at once.
    ///
    /// # Errors
    /// [`AdminError::UnknownWorkspace`], [`AdminError::Repo`] when the store fails.
    #[tracing::instrument(skip_all, fields(workspace = %workspace))]
    pub async fn shred(&self, workspace: WorkspaceId) -> Result<Shredded, AdminError> {
        self.existing(workspace).await?;
        let versions = self.cipher.destroy_keys(workspace).await?;
        let tags = self.search.delete_workspace_tags(workspace).await?;
        self.auditor
            .record(Some(workspace), None, AuditAction::WorkspaceShredded, Some(format!("versions:{versions}")))
            .await;
        Ok(Shredded { versions, tags })
    }
}

/// Runs an admin command (not [`Command::Serve`]) and prints its outcome on stdout.
///
/// # Errors
/// When the store or keys cannot be opened, the operation fails, or stdout is closed.
pub async fn run(command: Command, settings: &Settings) -> Result<(), Box<dyn std::error::Error>> {
    let mut out = std::io::stdout().lock();
    if let Command::Help | Command::Serve = command {
        writeln!(out, "{USAGE}")?;
        return Ok(());
    }
    let admin = Admin::open(settings).await?;
    match command {
        Command::Serve | Command::Help => {}
        Command::RotateKeys(Target::Workspace(workspace)) => {
            let version = admin.rotate(workspace).await?;
            writeln!(out, "workspace {workspace}: key version {version}")?;
        }
        Command::RotateKeys(Target::All) => {
            for (workspace, version) in admin.rotate_all().await? {
                writeln!(out, "workspace {workspace}: key version {version}")?;
            }
        }
        Command::Reencrypt(workspace) => {
            let result = admin.reencrypt(workspace, REENCRYPT_BATCH).await;
            // Even a pass that met unreadable rows re-sealed the others: say so, then fail.
            let done = match &result {
                Ok(done) | Err(AdminError::Unreadable { report: done, .. }) => Some(*done),
                Err(_) => None,
            };
            if let Some(done) = done {
                writeln!(
                    out,
                    "workspace {workspace}: key version {}, {} re-sealed, {} changed meanwhile, {} file(s) re-sealed, \
                     {} file(s) changed meanwhile",
                    done.version, done.resealed, done.changed, done.files_resealed, done.files_changed
                )?;
            }
            result?;
        }
        Command::ShredWorkspace(workspace) => {
            let done = admin.shred(workspace).await?;
            writeln!(
                out,
                "workspace {workspace}: {} key version(s) destroyed, {} search tag(s) dropped",
                done.versions, done.tags
            )?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Command, UsageError> {
        Command::parse(args.iter().map(|s| (*s).to_owned()))
    }

    const ID: &str = "0190f0f0-f0f0-7000-8000-000000000001";

    #[test]
    fn commands_and_their_options_parse() {
        let id = WorkspaceId::from_uuid(Uuid::parse_str(ID).unwrap());
        assert_eq!(parse(&[]).unwrap(), Command::Serve);
        assert_eq!(parse(&["serve"]).unwrap(), Command::Serve);
        assert_eq!(parse(&["--help"]).unwrap(), Command::Help);
        assert_eq!(parse(&["rotate-keys", "--workspace", ID]).unwrap(), Command::RotateKeys(Target::Workspace(id)));
        assert_eq!(
            parse(&["rotate-keys", &format!("--workspace={ID}")]).unwrap(),
            Command::RotateKeys(Target::Workspace(id))
        );
        assert_eq!(parse(&["rotate-keys", "--all"]).unwrap(), Command::RotateKeys(Target::All));
        assert_eq!(parse(&["reencrypt", "--workspace", ID]).unwrap(), Command::Reencrypt(id));
        assert_eq!(parse(&["shred-workspace", "--yes", "--workspace", ID]).unwrap(), Command::ShredWorkspace(id));
    }

    #[test]
    fn incomplete_or_unknown_arguments_are_refused() {
        for args in [
            &["rotate"][..],
            &["rotate-keys"],
            &["rotate-keys", "--all", "--workspace", ID],
            &["rotate-keys", "--workspace"],
            &["rotate-keys", "--workspace", "not-a-uuid"],
            &["rotate-keys", "--workspace", ID, "--workspace", ID],
            &["rotate-keys", "--workspace", ID, "--yes"],
            &["reencrypt"],
            &["reencrypt", "--all"],
            &["reencrypt", "--workspace", ID, "extra"],
            &["shred-workspace", "--workspace", ID],
            &["shred-workspace", "--yes"],
            &["shred-workspace", "--all", "--yes"],
            &["shred-workspace", "--workspace", ID, "--yes=no"],
            &["serve", "--all"],
        ] {
            let err = parse(args).expect_err(&format!("{args:?}"));
            assert!(err.to_string().ends_with(USAGE), "{args:?}: {err}");
        }
    }
}
