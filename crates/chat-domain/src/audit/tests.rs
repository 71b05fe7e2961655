//! The audit log's read side: who may read it, order and paging; and the cursor format.

use super::*;
use crate::tests::{Scene, now};

fn entry(workspace: Option<WorkspaceId>, minutes_ago: i64) -> AuditEntry {
    AuditEntry {
        id: Uuid::now_v7(),
        workspace_id: workspace,
        actor: Some(UserId::generate()),
        action: AuditAction::WorkspaceMemberAdded,
        target: None,
        ip: Some("192.0.2.7".to_owned()),
        at: now() - chrono::Duration::minutes(minutes_ago),
    }
}

#[tokio::test]
async fn owners_and_admins_read_their_workspaces_log_newest_first_in_pages() {
    let scene = Scene::new();
    let (owner, admin, ws) = (scene.owner.id, scene.admin.id, scene.workspace.id);
    let h = scene.build();
    let entries: Vec<AuditEntry> = (0..5).map(|i| entry(Some(ws), i)).collect();
    for e in entries.iter().rev() {
        h.audit.record(e.clone()).await.unwrap();
    }
    h.audit.record(entry(Some(WorkspaceId::generate()), 0)).await.unwrap();
    h.audit.record(entry(None, 0)).await.unwrap();

    let first = h.chat.audit.list(owner, ws, None, Some(3)).await.unwrap();
    assert_eq!(first.items, entries[..3]);
    assert_eq!(first.next_cursor, Some(AuditCursor::after(&entries[2])));
    let second = h.chat.audit.list(admin, ws, first.next_cursor, Some(3)).await.unwrap();
    assert_eq!(second.items, entries[3..]);
    assert_eq!(second.next_cursor, None);
}

#[tokio::test]
async fn members_and_guests_are_refused_and_strangers_learn_nothing() {
    let scene = Scene::new();
    let (alice, guest, outsider, ws) = (scene.alice.id, scene.guest.id, scene.outsider.id, scene.workspace.id);
    let h = scene.build();
    for caller in [alice, guest] {
        let result = h.chat.audit.list(caller, ws, None, None).await;
        assert!(matches!(result, Err(DomainError::Forbidden(_))), "{result:?}");
    }
    let result = h.chat.audit.list(outsider, ws, None, None).await;
    assert!(matches!(result, Err(DomainError::NotFound)), "{result:?}");
}

#[tokio::test]
async fn the_page_size_defaults_to_50_and_is_capped_at_100() {
    let scene = Scene::new();
    let (owner, ws) = (scene.owner.id, scene.workspace.id);
    let h = scene.build();
    for i in 0..120 {
        h.audit.record(entry(Some(ws), i)).await.unwrap();
    }
    assert_eq!(h.chat.audit.list(owner, ws, None, None).await.unwrap().items.len(), 50);
    let capped = h.chat.audit.list(owner, ws, None, Some(1000)).await.unwrap();
    assert_eq!(capped.items.len(), 100);
    assert!(capped.next_cursor.is_some());
}

#[test]
fn a_cursor_round_trips_and_garbage_is_invalid() {
    let cursor = AuditCursor::after(&entry(None, 3));
    assert_eq!(AuditCursor::parse(&cursor.encode()).unwrap(), cursor);
    for bad in ["", "12", "abc_def", "1_not-a-uuid", "x_0190f0f0f0f07000800000000000000"] {
        assert!(matches!(AuditCursor::parse(bad), Err(DomainError::Validation { field: "before", .. })), "{bad}");
    }
}

#[test]
fn actions_round_trip_through_their_spelling() {
    for action in AuditAction::ALL {
        assert_eq!(AuditAction::parse(action.as_str()), Some(action));
    }
    assert_eq!(AuditAction::parse("nonsense"), None);
}
