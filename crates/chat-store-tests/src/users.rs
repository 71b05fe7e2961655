//! [`UserRepository`](chat_domain::user::UserRepository): accounts and unique e-mails.

use chat_domain::ids::UserId;
use chat_domain::user::{CreateUserError, Email};
use futures_util::future::join_all;

use crate::Stores;
use crate::fixtures::new_user;

/// An account is found by id and by its (normalised) e-mail, with its password hash.
pub async fn a_created_user_is_found_by_id_and_by_email(stores: Stores) {
    let new = new_user("ada");
    let created = stores.users.create_user(&new).await.expect("create");
    assert_eq!(created.id, new.id);
    assert_eq!(created.email, new.email);
    assert_eq!(created.display_name, new.display_name);
    assert_eq!(created.avatar_url, None);
    assert_eq!(created.created_at, new.created_at);

    let by_id = stores.users.find_user(new.id).await.expect("find by id");
    assert_eq!(by_id.as_ref(), Some(&created));
    let (by_email, hash) = stores.users.find_user_by_email(&new.email).await.expect("find by e-mail").expect("found");
    assert_eq!(by_email, created);
    assert_eq!(hash, new.password_hash);

    assert_eq!(stores.users.find_user(UserId::generate()).await.expect("find unknown"), None);
    let nobody = Email::parse("nobody@example.com").expect("e-mail");
    assert_eq!(stores.users.find_user_by_email(&nobody).await.expect("find unknown e-mail"), None);
}

/// A second account with a taken e-mail is refused as `DuplicateEmail`, and nothing of it is
/// stored.
pub async fn a_second_account_with_the_same_email_is_refused(stores: Stores) {
    let first = new_user("ada");
    stores.users.create_user(&first).await.expect("create");
    let second = new_user("ada");
    assert_ne!(first.id, second.id);
    let refused = stores.users.create_user(&second).await;
    assert!(matches!(refused, Err(CreateUserError::DuplicateEmail)), "got {refused:?}");
    assert_eq!(stores.users.find_user(second.id).await.expect("find"), None);
    let (owner, _) = stores.users.find_user_by_email(&first.email).await.expect("find").expect("found");
    assert_eq!(owner.id, first.id);
}

/// Of ten concurrent registrations of one e-mail exactly one succeeds.
pub async fn concurrent_registrations_of_one_email_create_one_account(stores: Stores) {
    let attempts = (0..10).map(|_| {
        let users = stores.users.clone();
        tokio::spawn(async move { users.create_user(&new_user("ada")).await })
    });
    let results: Vec<_> = join_all(attempts).await.into_iter().map(|r| r.expect("task")).collect();
    let created = results.iter().filter(|r| r.is_ok()).count();
    let duplicates = results.iter().filter(|r| matches!(r, Err(CreateUserError::DuplicateEmail))).count();
    assert_eq!((created, duplicates), (1, 9), "got {results:?}");
}
