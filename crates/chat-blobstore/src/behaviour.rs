//! The behaviours every blob store adapter shares, written once and run against each (local
//! directory, in-memory object store, S3-compatible server).

#![allow(clippy::unwrap_used)]

use chat_domain::file::BlobStore;
use futures_util::StreamExt;

/// Well-formed keys.
pub(crate) const KEY: &str = "0123456789abcdef0123456789abcdef";
pub(crate) const LARGE: &str = "fedcba9876543210fedcba9876543210";
const EMPTY: &str = "00000000000000000000000000000000";

/// Malformed keys: traversal, absolute paths, empty, upper case, too long or short, separators.
pub(crate) const BAD_KEYS: [&str; 9] = [
    "../escape",
    "/etc/passwd",
    "",
    "0123456789ABCDEF0123456789ABCDEF",
    "0123456789abcdef0123456789abcdef0",
    "0123456789abcdef0123456789abcde",
    "..",
    "a/b",
    "0123456789abcdef/123456789abcdef",
];

/// The pieces of the object under `key` (panics when it is missing or a piece fails).
pub(crate) async fn pieces(store: &dyn BlobStore, key: &str) -> Vec<Vec<u8>> {
    let mut stream = store.read(key).await.unwrap().expect("the object exists");
    let mut out = Vec::new();
    while let Some(piece) = stream.next().await {
        out.push(piece.unwrap());
    }
    out
}

/// The object under `key`, whole; `None` when there is none.
pub(crate) async fn read_all(store: &dyn BlobStore, key: &str) -> Option<Vec<u8>> {
    match store.read(key).await.unwrap() {
        None => None,
        Some(_) => Some(pieces(store, key).await.concat()),
    }
}

/// Missing objects read as `None`; written objects (small, large, empty, any bytes) stream
/// back byte for byte, in pieces, even after a reader gave up half-way; deleting removes one
/// object only and is idempotent. Leaves the store empty.
pub(crate) async fn blobs_are_written_streamed_back_and_deleted_under_their_keys(store: &dyn BlobStore) {
    assert!(store.read(KEY).await.unwrap().is_none(), "nothing there yet");
    store.put(KEY, b"sealed".to_vec()).await.unwrap();
    assert_eq!(read_all(store, KEY).await.as_deref(), Some(&b"sealed"[..]));

    // 300 KiB of every byte value (how it is cut into pieces is the adapter's own test).
    let large: Vec<u8> = (0..300 * 1024).map(|i: u32| (i % 256) as u8).collect();
    store.put(LARGE, large.clone()).await.unwrap();
    let received = pieces(store, LARGE).await;
    assert!(received.iter().all(|p| !p.is_empty()), "no empty pieces");
    assert_eq!(received.concat(), large);
    // A reader that stops after the first piece leaves the object intact.
    let mut partial = store.read(LARGE).await.unwrap().expect("exists");
    assert!(partial.next().await.is_some());
    drop(partial);
    assert_eq!(read_all(store, LARGE).await, Some(large));

    store.put(EMPTY, Vec::new()).await.unwrap();
    assert_eq!(read_all(store, EMPTY).await, Some(Vec::new()));

    store.delete(KEY).await.unwrap();
    assert!(store.read(KEY).await.unwrap().is_none());
    store.delete(KEY).await.unwrap();
    assert!(store.read(LARGE).await.unwrap().is_some(), "only the named object goes");
    store.delete(LARGE).await.unwrap();
    store.delete(EMPTY).await.unwrap();
    assert!(store.read(LARGE).await.unwrap().is_none());
}

/// Every operation refuses a key that is not 32 lowercase hex characters, before the store
/// is touched.
pub(crate) async fn a_key_that_is_not_32_lowercase_hex_characters_is_refused(store: &dyn BlobStore) {
    for key in BAD_KEYS {
        assert!(store.put(key, b"x".to_vec()).await.is_err(), "put {key:?}");
        assert!(store.read(key).await.is_err(), "read {key:?}");
        assert!(store.delete(key).await.is_err(), "delete {key:?}");
    }
}
