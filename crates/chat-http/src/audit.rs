//! Where an audited action came from: the client IP of the request or socket being served,
//! kept in a task-local, and [`ClientIpAudit`], the [`AuditLog`] decorator that stamps it on
//! every entry.
//!
//! **Why a task-local.** The domain's services do not know the client's address, and
//! threading it through every use case's signature would put a transport detail into the
//! domain. `request_id::middleware` runs each request inside [`scope`], and the WebSocket
//! gateway runs each socket's task inside it too; the services record audit entries inline
//! (never from a spawned task), so the decorator finds the address of the caller that caused
//! them. Outside such a scope (start-up, housekeeping) the IP stays empty.
//!
//! **Which address.** The TCP peer address. `X-Forwarded-For` is not trusted (anyone can send
//! it); behind a reverse proxy, every entry shows the proxy until a trusted-proxy setting
//! exists (docs/security.md).

use std::future::Future;
use std::sync::Arc;

use async_trait::async_trait;
use chat_domain::audit::{AuditCursor, AuditEntry, AuditLog};
use chat_domain::error::RepoError;
use chat_domain::ids::WorkspaceId;

tokio::task_local! {
    static CLIENT_IP: Option<String>;
}

/// Runs `fut` with `ip` as the client address seen by [`ClientIpAudit`].
pub async fn scope<F: Future>(ip: Option<String>, fut: F) -> F::Output {
    CLIENT_IP.scope(ip, fut).await
}

/// The client address of the request or socket being served, if any.
#[must_use]
pub fn client_ip() -> Option<String> {
    CLIENT_IP.try_with(Clone::clone).ok().flatten()
}

/// Stamps [`client_ip`] on each entry (unless it has one), then hands it to the store.
pub struct ClientIpAudit {
    inner: Arc<dyn AuditLog>,
}

impl std::fmt::Debug for ClientIpAudit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientIpAudit").finish_non_exhaustive()
    }
}

impl ClientIpAudit {
    /// Wraps the store's audit log.
    #[must_use]
    pub fn new(inner: Arc<dyn AuditLog>) -> Self {
        Self { inner }
    }
}

#[async_trait]
impl AuditLog for ClientIpAudit {
    async fn record(&self, mut entry: AuditEntry) -> Result<(), RepoError> {
        if entry.ip.is_none() {
            entry.ip = client_ip();
        }
        self.inner.record(entry).await
    }

    async fn list_audit(
        &self,
        workspace: WorkspaceId,
        before: Option<AuditCursor>,
        limit: u32,
    ) -> Result<Vec<AuditEntry>, RepoError> {
        self.inner.list_audit(workspace, before, limit).await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use chat_domain::audit::AuditAction;

    use super::*;

    #[derive(Default)]
    struct Kept(Mutex<Vec<AuditEntry>>);

    #[async_trait]
    impl AuditLog for Kept {
        async fn record(&self, entry: AuditEntry) -> Result<(), RepoError> {
            self.0.lock().expect("lock").push(entry);
            Ok(())
        }

        async fn list_audit(
            &self,
            _: WorkspaceId,
            _: Option<AuditCursor>,
            _: u32,
        ) -> Result<Vec<AuditEntry>, RepoError> {
            Ok(self.0.lock().expect("lock").clone())
        }
    }

    fn entry() -> AuditEntry {
        AuditEntry {
            id: uuid::Uuid::now_v7(),
            workspace_id: None,
            actor: None,
            action: AuditAction::LoginFailed,
            target: None,
            ip: None,
            at: chrono::Utc::now(),
        }
    }

    #[tokio::test]
    async fn the_scoped_client_ip_is_stamped_and_absent_outside_a_scope() {
        let kept = Arc::new(Kept::default());
        let audit = ClientIpAudit::new(kept.clone());
        scope(Some("198.51.100.4".to_owned()), audit.record(entry())).await.unwrap();
        audit.record(entry()).await.unwrap();
        let ips: Vec<_> = kept.0.lock().unwrap().iter().map(|e| e.ip.clone()).collect();
        assert_eq!(ips, [Some("198.51.100.4".to_owned()), None]);
    }
}
