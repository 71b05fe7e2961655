//! The shared behaviour suite of `chat-store-tests`, run against the embedded store: every
//! test gets a fresh database file in its own temporary directory, kept alive (and removed)
//! with the store.

use std::sync::Arc;

use chat_sqlite::SqliteStore;
use chat_store_tests::Stores;

async fn make() -> Option<Stores> {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let url = format!("sqlite://{}", dir.path().join("chat.db").display());
    let store = SqliteStore::open(&url, 8).await.expect("open a fresh sqlite store");
    Some(Stores::from_store(Arc::new(store)).with_guard(dir))
}

chat_store_tests::behaviour_suite!(make);
