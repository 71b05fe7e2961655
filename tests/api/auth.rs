use chat_protocol::{AuthResponse, User};
use reqwest::Method;
use serde_json::json;

use crate::helpers::TestApp;
use crate::on_both_stores;

on_both_stores!(
    registering_signs_in_and_me_returns_the_user,
    an_email_registers_once_whatever_its_case,
    login_checks_the_password,
    refresh_tokens_rotate_and_reuse_revokes_the_session,
    requests_without_a_valid_token_are_401,
    bad_registrations_are_422,
);

async fn registering_signs_in_and_me_returns_the_user(app: TestApp) {
    let alice = app.register("alice").await;
    let me = app.get("/auth/me", &alice).await;
    me.assert_status(200);
    let user: User = me.json();
    assert_eq!(user.id, alice.id);
    assert_eq!(user.email, "alice@example.test");
    assert_eq!(user.display_name, "alice");
}

async fn an_email_registers_once_whatever_its_case(app: TestApp) {
    app.register("carol").await;
    let again = app
        .call(
            Method::POST,
            "/auth/register",
            None,
            Some(json!({"email": "CAROL@Example.Test", "password": "another password", "displayName": "C"})),
        )
        .await;
    again.assert_error(409, "conflict");
}

async fn login_checks_the_password(app: TestApp) {
    app.register("dave").await;
    let ok = app
        .call(
            Method::POST,
            "/auth/login",
            None,
            Some(json!({"email": "Dave@example.test", "password": "correct horse battery"})),
        )
        .await;
    ok.assert_status(200);
    let auth: AuthResponse = ok.json();
    assert_eq!(auth.user.email, "dave@example.test");
    assert!(auth.access_token_expires_at <= chrono::Utc::now() + chrono::Duration::minutes(15));
    let wrong = app
        .call(
            Method::POST,
            "/auth/login",
            None,
            Some(json!({"email": "dave@example.test", "password": "wrong password"})),
        )
        .await;
    wrong.assert_error(401, "unauthorized");
    let unknown = app
        .call(Method::POST, "/auth/login", None, Some(json!({"email": "nobody@example.test", "password": "whatever1"})))
        .await;
    unknown.assert_error(401, "unauthorized");
}

async fn refresh_tokens_rotate_and_reuse_revokes_the_session(app: TestApp) {
    let erin = app.register("erin").await;
    let first = app.call(Method::POST, "/auth/refresh", None, Some(json!({"refreshToken": erin.refresh}))).await;
    first.assert_status(200);
    let rotated: AuthResponse = first.json();
    assert_ne!(rotated.refresh_token, erin.refresh);
    // The new access token works.
    let me = app.call(Method::GET, "/auth/me", Some(&rotated.access_token), None).await;
    me.assert_status(200);
    // Presenting the spent token again is a reuse: refused, and the whole family is revoked.
    let reuse = app.call(Method::POST, "/auth/refresh", None, Some(json!({"refreshToken": erin.refresh}))).await;
    reuse.assert_error(401, "unauthorized");
    let after =
        app.call(Method::POST, "/auth/refresh", None, Some(json!({"refreshToken": rotated.refresh_token}))).await;
    after.assert_error(401, "unauthorized");
    let garbage = app.call(Method::POST, "/auth/refresh", None, Some(json!({"refreshToken": "nope"}))).await;
    garbage.assert_error(401, "unauthorized");
}

async fn requests_without_a_valid_token_are_401(app: TestApp) {
    app.call(Method::GET, "/auth/me", None, None).await.assert_error(401, "unauthorized");
    app.call(Method::GET, "/auth/me", Some("not-a-jwt"), None).await.assert_error(401, "unauthorized");
    app.call(Method::GET, "/workspaces", Some("eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0."), None)
        .await
        .assert_error(401, "unauthorized");
}

async fn bad_registrations_are_422(app: TestApp) {
    for body in [
        json!({"email": "not-an-email", "password": "long enough", "displayName": "x"}),
        json!({"email": "a@b.test", "password": "short", "displayName": "x"}),
        json!({"email": "a@b.test", "password": "long enough", "displayName": "   "}),
        json!({"email": "a@b.test", "password": "long enough", "displayName": "x".repeat(101)}),
    ] {
        app.call(Method::POST, "/auth/register", None, Some(body)).await.assert_error(422, "validation_failed");
    }
}
