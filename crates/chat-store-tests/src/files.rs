//! [`FileRepository`](chat_domain::file::FileRepository): file rows round-trip byte for byte,
//! ids are unique, and unknown ids are absent; re-encryption reads a workspace's old sealed
//! names and wrapped keys and replaces them only while unchanged.

use chat_domain::cipher::Sealed;
use chat_domain::file::{FileSeals, SealedFileRow, StoredFile};
use chat_domain::ids::{FileId, WorkspaceId};

use crate::Stores;
use crate::fixtures::{all_pages, at, group, sealed, user, workspace};

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

fn sealed_as(version: i32, fill: u8) -> Sealed {
    Sealed { key_version: version, bytes: vec![fill, 0x00, 0xff, fill] }
}

async fn all_below(stores: &Stores, workspace: WorkspaceId, below: i32, limit: u32) -> Vec<SealedFileRow> {
    all_pages(limit, |row: &SealedFileRow| row.id, |after| async move {
        stores.files.sealed_files_in_workspace(workspace, below, after, limit).await.expect("list")
    })
    .await
}

/// Re-encryption of files, store side: the workspace's files whose wrapped key *or* sealed
/// name is below a version are listed by id, in pages without gaps or repeats, and no other
/// workspace's; a replacement of both lands only while both are exactly what was read, keeps
/// the rest of the row, and takes the file out of the listing.
pub async fn file_keys_and_names_are_read_for_reencryption_and_replaced_only_while_unchanged(stores: Stores) {
    let ada = user(&stores, "ada").await;
    let here = workspace(&stores, &ada, "here", &[]).await;
    let there = workspace(&stores, &ada, "there", &[]).await;
    let team = group(&stores, &here, &ada, &[]).await;
    let side = group(&stores, &here, &ada, &[]).await;
    let away = group(&stores, &there, &ada, &[]).await;
    let file = |conversation: &chat_domain::conversation::Conversation, i: u8, key: i32, name: i32| StoredFile {
        id: FileId::generate(),
        workspace_id: conversation.workspace_id,
        conversation_id: conversation.id,
        uploader: ada.id,
        name: sealed_as(name, 100 + i),
        content_type: "text/plain".to_owned(),
        size: u64::from(i),
        storage_key: format!("{:032x}", u128::from(i) + 1),
        wrapped_file_key: sealed_as(key, i).bytes,
        key_version: key,
        created_at: at(i64::from(i)),
    };
    // (key version, name version): old key, old name, both old, both current.
    let rows = [
        file(&team, 0, 1, 3),
        file(&side, 1, 3, 1),
        file(&team, 2, 2, 2),
        file(&side, 3, 1, 1),
        file(&team, 4, 3, 3),
        file(&away, 5, 1, 1),
    ];
    for row in &rows {
        stores.files.insert_file(row).await.expect("insert");
    }
    let mut expected: Vec<SealedFileRow> = rows[..4]
        .iter()
        .map(|f| SealedFileRow { id: f.id, conversation_id: f.conversation_id, seals: f.seals() })
        .collect();
    expected.sort_by_key(|r| r.id.as_uuid());
    for limit in [1, 3, 100] {
        assert_eq!(all_below(&stores, here.id, 3, limit).await, expected, "pages of {limit}");
    }
    let below_two: Vec<_> =
        expected.iter().filter(|r| r.seals.name.key_version < 2 || r.seals.file_key.key_version < 2).cloned().collect();
    assert_eq!(below_two.len(), 3);
    assert_eq!(all_below(&stores, here.id, 2, 2).await, below_two);
    assert_eq!(all_below(&stores, here.id, 1, 10).await, []);
    assert_eq!(all_below(&stores, WorkspaceId::generate(), 3, 10).await, []);
    assert_eq!(all_below(&stores, there.id, 3, 10).await.len(), 1);

    // Replaced while unchanged: both values change, the rest of the row stays.
    let target = &rows[3];
    let new = FileSeals { name: sealed_as(3, 200), file_key: sealed_as(3, 201) };
    assert!(stores.files.replace_file_seals(target.id, &target.seals(), &new).await.expect("replace"));
    let after = stores.files.find_file(target.id).await.expect("find").expect("kept");
    assert_eq!(after.seals(), new);
    assert_eq!(
        StoredFile {
            name: target.name.clone(),
            wrapped_file_key: target.wrapped_file_key.clone(),
            key_version: 1,
            ..after
        },
        *target
    );
    assert!(!all_below(&stores, here.id, 3, 100).await.iter().any(|r| r.id == target.id));

    // From a stale read (another run got there first) nothing is replaced.
    let stale = FileSeals { name: sealed_as(3, 210), file_key: sealed_as(3, 211) };
    assert!(!stores.files.replace_file_seals(target.id, &target.seals(), &stale).await.expect("replace"));
    assert_eq!(stores.files.find_file(target.id).await.expect("find").expect("kept").seals(), new);
    // Both values must match: the right key with another name is stale too.
    let half = FileSeals { name: sealed_as(1, 99), ..rows[0].seals() };
    assert!(!stores.files.replace_file_seals(rows[0].id, &half, &stale).await.expect("replace"));
    assert_eq!(stores.files.find_file(rows[0].id).await.expect("find").expect("kept"), rows[0]);
    // An unknown file is not replaced.
    assert!(!stores.files.replace_file_seals(FileId::generate(), &rows[0].seals(), &stale).await.expect("replace"));
}
