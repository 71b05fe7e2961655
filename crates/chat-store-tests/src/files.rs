//! [`FileRepository`](chat_domain::file::FileRepository): file rows round-trip byte for byte,
//! ids are unique, and unknown ids are absent.

use chat_domain::file::StoredFile;
use chat_domain::ids::FileId;

use crate::Stores;
use crate::fixtures::{at, group, sealed, user, workspace};

/// Every field survives storage, including sealed bytes that are not UTF-8; a second row with
/// the same id or storage key is refused; an unknown id finds nothing.
pub async fn file_rows_round_trip_and_ids_and_storage_keys_are_unique(stores: Stores) {
    let alice = user(&stores, "alice").await;
    let ws = workspace(&stores, &alice, "acme", &[]).await;
    let conversation = group(&stores, &ws, &alice, &[]).await;
    let file = StoredFile {
        id: FileId::generate(),
        workspace_id: ws.id,
        conversation_id: conversation.id,
        uploader: alice.id,
        name: sealed("report.pdf"),
        content_type: "application/pdf".to_owned(),
        size: 25 * 1024 * 1024,
        storage_key: "0123456789abcdef0123456789abcdef".to_owned(),
        wrapped_file_key: vec![0xff, 0x00, 0x80, 0x7f, 0x01],
        key_version: 3,
        created_at: at(42),
    };
    stores.files.insert_file(&file).await.expect("insert");
    assert_eq!(stores.files.find_file(file.id).await.expect("find"), Some(file.clone()));

    let empty = StoredFile {
        id: FileId::generate(),
        size: 0,
        storage_key: "fedcba9876543210fedcba9876543210".to_owned(),
        ..file.clone()
    };
    stores.files.insert_file(&empty).await.expect("insert an empty file");
    assert_eq!(stores.files.find_file(empty.id).await.expect("find").map(|f| f.size), Some(0));

    let same_id = StoredFile { storage_key: "00000000000000000000000000000000".to_owned(), ..file.clone() };
    assert!(stores.files.insert_file(&same_id).await.is_err(), "a duplicate id is refused");
    let same_key = StoredFile { id: FileId::generate(), ..file.clone() };
    assert!(stores.files.insert_file(&same_key).await.is_err(), "a duplicate storage key is refused");
    assert_eq!(stores.files.find_file(same_key.id).await.expect("find"), None);
    assert_eq!(stores.files.find_file(FileId::generate()).await.expect("find"), None);
}
