//! File metadata and its validated parts.

use chrono::{DateTime, Utc};

use crate::cipher::{SealContext, Sealed};
use crate::file::FileContext;
use crate::ids::{ConversationId, FileId, MessageId, UserId, WorkspaceId};

/// Longest stored file name, in bytes (UTF-8).
pub const MAX_FILE_NAME_BYTES: usize = 255;

/// A file name safe to store and to echo in `Content-Disposition`: the last path component
/// of what the client sent, without control or bidi-override characters, trimmed, at most
/// [`MAX_FILE_NAME_BYTES`] bytes (cut on a character boundary); `"file"` when nothing is left.
/// It is never used as a path: blobs are stored under random keys.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileName(String);

impl FileName {
    /// Sanitises a client-supplied name. Never fails: an unusable name becomes `"file"`.
    #[must_use]
    pub fn sanitize(raw: &str) -> Self {
        let last = raw.rsplit(['/', '\\']).next().unwrap_or_default();
        let cleaned: String = last.chars().filter(|c| !c.is_control() && !is_bidi_control(*c)).collect();
        let trimmed = cleaned.trim().trim_matches('.');
        let mut name = String::with_capacity(trimmed.len().min(MAX_FILE_NAME_BYTES));
        for c in trimmed.chars() {
            if name.len() + c.len_utf8() > MAX_FILE_NAME_BYTES {
                break;
            }
            name.push(c);
        }
        if name.trim().is_empty() { Self("file".to_owned()) } else { Self(name) }
    }

    /// Wraps a name read back from storage (sanitised when it was stored).
    #[must_use]
    pub fn from_stored(name: String) -> Self {
        Self(name)
    }

    /// The name.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

const fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{200E}' | '\u{200F}' | '\u{061C}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// A stored file's metadata. The bytes live in the blob store, sealed; the name is stored in
/// the row as given here (sanitised).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileRecord {
    /// Its id (UUID v7).
    pub id: FileId,
    /// Its workspace (whose data key wraps the file key).
    pub workspace_id: WorkspaceId,
    /// The conversation it was shared in; only its members may download it.
    pub conversation_id: ConversationId,
    /// Who uploaded it.
    pub uploader: UserId,
    /// The sanitised name.
    pub name: FileName,
    /// The MIME type detected from the content's magic bytes (never the client's claim).
    pub content_type: String,
    /// Plaintext size in bytes.
    pub size: u64,
    /// Random key of the sealed object in the blob store (no client input in it).
    pub storage_key: String,
    /// The per-file key, wrapped by the workspace data key of `key_version`.
    pub wrapped_file_key: Vec<u8>,
    /// Version of the workspace data key that wraps `wrapped_file_key`.
    pub key_version: i32,
    /// When it was uploaded.
    pub created_at: DateTime<Utc>,
}

/// A file's row as stored: [`FileRecord`] with the name sealed under the workspace data key
/// (bound to the file id and field `"file-name"`), so no store holds a file name in clear.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredFile {
    /// Its id.
    pub id: FileId,
    /// Its workspace.
    pub workspace_id: WorkspaceId,
    /// Its conversation.
    pub conversation_id: ConversationId,
    /// Who uploaded it.
    pub uploader: UserId,
    /// The sanitised name, sealed.
    pub name: Sealed,
    /// The detected MIME type (stored in clear: a coarse category, like the size).
    pub content_type: String,
    /// Plaintext size in bytes.
    pub size: u64,
    /// Random key of the sealed object in the blob store.
    pub storage_key: String,
    /// The wrapped per-file key.
    pub wrapped_file_key: Vec<u8>,
    /// Version of the workspace data key wrapping the file key.
    pub key_version: i32,
    /// When it was uploaded.
    pub created_at: DateTime<Utc>,
}

/// What re-encryption rewrites in a file's row: the two values sealed under a workspace data
/// key (the body, sealed under the file key, stays as it is).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileSeals {
    /// The sanitised name, sealed (field `"file-name"`).
    pub name: Sealed,
    /// The per-file key, wrapped (field `"file-key"`); its version is the row's `key_version`.
    pub file_key: Sealed,
}

/// A file's sealed values with what they are bound to, as re-encryption reads them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SealedFileRow {
    /// The file.
    pub id: FileId,
    /// Its conversation (part of the seal context).
    pub conversation_id: ConversationId,
    /// Its sealed name and wrapped key.
    pub seals: FileSeals,
}

impl StoredFile {
    /// The row's sealed name and wrapped key.
    #[must_use]
    pub fn seals(&self) -> FileSeals {
        FileSeals {
            name: self.name.clone(),
            file_key: Sealed { key_version: self.key_version, bytes: self.wrapped_file_key.clone() },
        }
    }
}

impl FileContext {
    /// The seal context of the file's name under the workspace data key: bound to the
    /// workspace, the conversation and the file id, field `"file-name"`.
    #[must_use]
    pub const fn name_seal_context(&self) -> SealContext {
        SealContext {
            workspace: self.workspace,
            conversation: self.conversation,
            message: MessageId::from_uuid(self.file.as_uuid()),
            field: "file-name",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_name_loses_its_path_controls_and_bidi_overrides() {
        assert_eq!(FileName::sanitize("../../etc/passwd").as_str(), "passwd");
        assert_eq!(FileName::sanitize("C:\\Users\\x\\report.pdf").as_str(), "report.pdf");
        assert_eq!(FileName::sanitize("evil\u{202E}gpj.exe").as_str(), "evilgpj.exe");
        assert_eq!(FileName::sanitize("a\nb\0c.txt").as_str(), "abc.txt");
        assert_eq!(FileName::sanitize("..").as_str(), "file");
        assert_eq!(FileName::sanitize("dir/").as_str(), "file");
        assert_eq!(FileName::sanitize("  ").as_str(), "file");
    }

    #[test]
    fn a_file_name_is_cut_to_255_bytes_on_a_character_boundary() {
        let long = "é".repeat(200);
        let name = FileName::sanitize(&long);
        assert!(name.as_str().len() <= MAX_FILE_NAME_BYTES);
        assert_eq!(name.as_str().len(), 254);
        assert!(long.starts_with(name.as_str()));
    }
}
