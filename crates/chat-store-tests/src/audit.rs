//! [`AuditLog`](chat_domain::audit::AuditLog): entries are stored as given, listed per
//! workspace newest first, and paged by cursor.

use chat_domain::audit::{AuditAction, AuditCursor, AuditEntry};
use chat_domain::ids::{UserId, WorkspaceId};
use uuid::Uuid;

use crate::Stores;
use crate::fixtures::{at, user, workspace};

fn entry(workspace: Option<WorkspaceId>, action: AuditAction, secs: i64) -> AuditEntry {
    AuditEntry {
        id: Uuid::now_v7(),
        workspace_id: workspace,
        actor: Some(UserId::generate()),
        action,
        target: Some(format!("user:{}", UserId::generate())),
        ip: Some("2001:db8::7".to_owned()),
        at: at(secs),
    }
}

/// Every field survives storage (including absent ones); a workspace lists its own entries
/// only, newest first; entries without a workspace (logins) of someone in no workspace are
/// stored but listed nowhere.
pub async fn audit_entries_round_trip_and_list_newest_first_per_workspace(stores: Stores) {
    let (here, there) = (WorkspaceId::generate(), WorkspaceId::generate());
    let older = entry(Some(here), AuditAction::WorkspaceMemberAdded, 1);
    let bare =
        AuditEntry { actor: None, target: None, ip: None, ..entry(Some(here), AuditAction::ConversationArchived, 2) };
    let newer = entry(Some(here), AuditAction::ConversationRoleChanged, 3);
    let elsewhere = entry(Some(there), AuditAction::WorkspaceMemberRemoved, 4);
    let login = entry(None, AuditAction::LoginFailed, 5);
    for e in [&newer, &login, &older, &elsewhere, &bare] {
        stores.audit.record(e.clone()).await.expect("record");
    }

    let listed = stores.audit.list_audit(here, None, 10).await.expect("list");
    assert_eq!(listed, [newer, bare, older]);
    assert_eq!(stores.audit.list_audit(there, None, 10).await.expect("list"), [elsewhere]);
    assert_eq!(stores.audit.list_audit(WorkspaceId::generate(), None, 10).await.expect("list"), []);
}

/// Pages of `limit` entries follow `(at, id)` strictly: entries at the same instant are
/// ordered by id, none is skipped or repeated across pages.
pub async fn audit_pages_follow_the_cursor_without_gaps_or_repeats(stores: Stores) {
    let here = WorkspaceId::generate();
    // Seven entries, three of them at one instant.
    let mut all: Vec<AuditEntry> = [1, 2, 2, 2, 3, 4, 5]
        .into_iter()
        .map(|secs| entry(Some(here), AuditAction::ConversationMemberAdded, secs))
        .collect();
    for e in &all {
        stores.audit.record(e.clone()).await.expect("record");
    }
    all.sort_by_key(|e| std::cmp::Reverse((e.at, e.id)));

    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let page = stores.audit.list_audit(here, cursor, 2).await.expect("page");
        assert!(page.len() <= 2);
        let Some(last) = page.last() else { break };
        cursor = Some(AuditCursor::after(last));
        seen.extend(page);
    }
    assert_eq!(seen, all);
}

/// Account-level entries (no workspace: logins) are listed in the log of every workspace
/// their actor is a member of, merged in time order with its own entries, and in no other.
pub async fn account_entries_are_listed_in_their_actors_workspaces_only(stores: Stores) {
    let owner = user(&stores, "audit-owner").await;
    let member = user(&stores, "audit-member").await;
    let outsider = user(&stores, "audit-outsider").await;
    let here = workspace(&stores, &owner, "audit-here", &[&member]).await;
    let there = workspace(&stores, &outsider, "audit-there", &[]).await;
    let own = entry(Some(here.id), AuditAction::WorkspaceMemberAdded, 1);
    let member_login =
        AuditEntry { actor: Some(member.id), target: None, ..entry(None, AuditAction::LoginSucceeded, 2) };
    let owner_failure = AuditEntry { actor: Some(owner.id), target: None, ..entry(None, AuditAction::LoginFailed, 3) };
    let outsider_login =
        AuditEntry { actor: Some(outsider.id), target: None, ..entry(None, AuditAction::LoginSucceeded, 4) };
    let anonymous_failure = AuditEntry { actor: None, target: None, ..entry(None, AuditAction::LoginFailed, 5) };
    for e in [&own, &member_login, &owner_failure, &outsider_login, &anonymous_failure] {
        stores.audit.record(e.clone()).await.expect("record");
    }

    let listed = stores.audit.list_audit(here.id, None, 10).await.expect("list");
    assert_eq!(listed, [owner_failure.clone(), member_login.clone(), own]);
    assert_eq!(stores.audit.list_audit(there.id, None, 10).await.expect("list"), [outsider_login]);
    // Paging crosses both kinds of entries.
    let first = stores.audit.list_audit(here.id, None, 1).await.expect("page");
    assert_eq!(first, [owner_failure]);
    let next = stores.audit.list_audit(here.id, Some(AuditCursor::after(&first[0])), 1).await.expect("page");
    assert_eq!(next, [member_login]);
}
