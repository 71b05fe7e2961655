//! The repository behaviour suite of `chat-store-tests`, run against Postgres: every test gets
//! a brand-new database, dropped when the test ends (or is skipped when Postgres is
//! unreachable, unless `CHAT_REQUIRE_SERVICES=1`).

use std::sync::Arc;

use chat_postgres::{PgStore, testing};
use chat_store_tests::Stores;

async fn make() -> Option<Stores> {
    let database = testing::fresh_database().await?;
    let store = PgStore::connect(database.url(), 8).await.expect("connecting to the test database");
    Some(Stores::from_store(Arc::new(store)).with_guard(database))
}

chat_store_tests::behaviour_suite!(make);
