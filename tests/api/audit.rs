//! `GET /workspaces/:id/audit`: security-relevant actions, newest first, for owners and
//! admins only.

use serde_json::{Value, json};

use crate::helpers::{TestApp, TestUser};
use crate::on_both_stores;
use reqwest::Method;

on_both_stores!(
    the_audit_log_shows_membership_and_role_changes_newest_first,
    only_owners_and_admins_read_the_audit_log,
    the_audit_log_pages_by_cursor,
    a_moderators_delete_over_the_socket_is_audited_with_the_sockets_ip,
    members_logins_and_failed_logins_appear_in_their_workspaces_log_only,
);

fn actions(page: &Value) -> Vec<String> {
    page["items"].as_array().expect("items").iter().map(|e| e["action"].as_str().expect("action").to_owned()).collect()
}

async fn the_audit_log_shows_membership_and_role_changes_newest_first(app: TestApp) {
    let cast = app.cast().await;
    let carol = app.register("carol").await;
    let path = format!("/workspaces/{}/audit", cast.workspace);
    app.add_to_workspace(&cast.alice, cast.workspace, &carol, "member").await;
    let group = app.group(&cast.alice, cast.workspace, "ops", &[]).await;
    let members = format!("/chat/conversations/{}/members", group.id);
    app.post(&members, &cast.alice, json!({"userId": carol.id})).await.assert_status(201);
    app.put(&format!("{members}/{}/role", carol.id), &cast.alice, json!({"role": "moderator"}))
        .await
        .assert_status(200);
    app.delete(&format!("{members}/{}", carol.id), &cast.alice).await.assert_status(204);
    app.delete(&format!("/workspaces/{}/members/{}", cast.workspace, carol.id), &cast.alice).await.assert_status(204);

    let reply = app.get(&path, &cast.alice).await;
    reply.assert_status(200);
    let page = reply.body;
    assert_eq!(
        actions(&page),
        [
            "workspace_member_removed",
            "conversation_member_removed",
            "conversation_role_changed",
            "conversation_member_added",
            "workspace_member_added",
            "workspace_member_added",
        ]
    );
    assert_eq!(page["nextCursor"], Value::Null);
    let items = page["items"].as_array().expect("items");
    for item in items {
        assert_eq!(item["workspaceId"], cast.workspace.to_string());
        assert_eq!(item["actorId"], cast.alice.id.to_string());
        // Recorded from the request's TCP peer: this test's client.
        assert_eq!(item["ip"], "127.0.0.1", "{item}");
    }
    let carol_user = format!("user:{}", carol.id);
    assert_eq!(items[0]["target"], carol_user.as_str());
    assert_eq!(items[2]["target"], format!("conversation:{} {carol_user} role:moderator", group.id));
    assert_eq!(items[4]["target"], format!("{carol_user} role:member"));
    assert_eq!(items[5]["target"], format!("user:{} role:member", cast.bob.id));
    // Nobody logged in (registration is not a login): no account-level entry.
    assert!(!actions(&page).iter().any(|a| a.starts_with("login")));
}

async fn only_owners_and_admins_read_the_audit_log(app: TestApp) {
    let cast = app.cast().await;
    let admin = app.register("admin").await;
    app.add_to_workspace(&cast.alice, cast.workspace, &admin, "admin").await;
    let path = format!("/workspaces/{}/audit", cast.workspace);

    app.get(&path, &admin).await.assert_status(200);
    app.get(&path, &cast.bob).await.assert_error(403, "forbidden");
    app.get(&path, &cast.mallory).await.assert_error(404, "not_found");
    app.get(&format!("/workspaces/{}/audit", uuid::Uuid::new_v4()), &cast.alice).await.assert_error(404, "not_found");
    app.get(&format!("{path}?before=nonsense"), &cast.alice).await.assert_error(422, "validation_failed");
    app.get(&format!("{path}?bogus=1"), &cast.alice).await.assert_status(422);
    let anonymous = app.call(reqwest::Method::GET, &path, None, None).await;
    anonymous.assert_error(401, "unauthorized");
}

async fn the_audit_log_pages_by_cursor(app: TestApp) {
    let cast = app.cast().await;
    let path = format!("/workspaces/{}/audit", cast.workspace);
    for name in ["u1", "u2", "u3", "u4"] {
        let user = app.register(name).await;
        app.add_to_workspace(&cast.alice, cast.workspace, &user, "guest").await;
    }
    let mut seen = Vec::new();
    let mut next = format!("{path}?limit=2");
    loop {
        let reply = app.get(&next, &cast.alice).await;
        reply.assert_status(200);
        let items = reply.body["items"].as_array().expect("items").clone();
        assert!(items.len() <= 2);
        seen.extend(items.iter().map(|i| i["id"].as_str().expect("id").to_owned()));
        match reply.body["nextCursor"].as_str() {
            Some(cursor) => next = format!("{path}?limit=2&before={cursor}"),
            None => break,
        }
    }
    // bob (by the cast) and four guests; newest first, none twice.
    assert_eq!(seen.len(), 5, "{seen:?}");
    let mut unique = seen.clone();
    unique.dedup();
    assert_eq!(unique, seen);
}

async fn a_moderators_delete_over_the_socket_is_audited_with_the_sockets_ip(app: TestApp) {
    let cast = app.cast().await;
    let group = app.group(&cast.alice, cast.workspace, "mods", &[&cast.bob]).await;
    let spam = app.send(&cast.bob, group.id, "spam").await;
    let own = app.send(&cast.alice, group.id, "mine").await;
    let mut socket = app.ws(&cast.alice).await;
    socket.ok("delete_message", json!({"messageId": spam.id, "conversationId": group.id})).await;
    socket.ok("delete_message", json!({"messageId": own.id, "conversationId": group.id})).await;

    let page = app.get(&format!("/workspaces/{}/audit", cast.workspace), &cast.alice).await.body;
    assert_eq!(
        actions(&page),
        ["message_deleted_by_moderator", "workspace_member_added"],
        "own deletes are not audited"
    );
    let entry = &page["items"][0];
    assert_eq!(entry["actorId"], cast.alice.id.to_string());
    assert_eq!(entry["target"], format!("conversation:{} message:{} user:{}", group.id, spam.id, cast.bob.id));
    // The socket's task carries its client IP, as a request does.
    assert_eq!(entry["ip"], "127.0.0.1");
}

async fn login(app: &TestApp, user: &TestUser, password: &str) -> u16 {
    let body = json!({"email": user.email, "password": password});
    app.call(Method::POST, "/auth/login", None, Some(body)).await.status.as_u16()
}

async fn members_logins_and_failed_logins_appear_in_their_workspaces_log_only(app: TestApp) {
    let cast = app.cast().await;
    assert_eq!(login(&app, &cast.bob, "correct horse battery").await, 200);
    assert_eq!(login(&app, &cast.bob, "wrong horse battery").await, 401);
    // mallory is in another workspace: her login is not alice's business.
    assert_eq!(login(&app, &cast.mallory, "correct horse battery").await, 200);

    let page = app.get(&format!("/workspaces/{}/audit", cast.workspace), &cast.alice).await.body;
    assert_eq!(actions(&page), ["login_failed", "login_succeeded", "workspace_member_added"]);
    for entry in &page["items"].as_array().expect("items")[..2] {
        assert_eq!(entry["actorId"], cast.bob.id.to_string());
        assert_eq!(entry["workspaceId"], Value::Null);
        assert_eq!(entry["ip"], "127.0.0.1");
        assert!(!entry.to_string().contains("horse"), "no password in the log: {entry}");
    }
}
