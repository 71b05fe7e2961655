//! The E2E public key directory (SPEC.md §2 `/keys/...`, `docs/api.md` "Keys"). Key bytes
//! travel as base64url without padding; the domain validates lengths, refuses small-order
//! X25519 points and verifies the signed prekey's signature.

use actix_web::{HttpResponse, get, post, put, web};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chat_domain::error::DomainError;
use chat_domain::ids::UserId;
use chat_domain::keys::{
    ClaimedKeys, DeviceId, DeviceKeys, DeviceKeysUpload, Ed25519Key, OneTimePrekey, Signature, SignedPrekey, X25519Key,
};
use chat_protocol::{
    ClaimedDeviceKeys, DeviceKeysBody, OneTimePrekeyBody, Page, PublishDeviceKeysRequest, SignedPrekeyBody,
};
use uuid::Uuid;

use super::ok;
use crate::AppState;
use crate::auth::Caller;
use crate::error::ApiResult;

fn bytes(field: &'static str, raw: &str) -> Result<Vec<u8>, DomainError> {
    URL_SAFE_NO_PAD.decode(raw).map_err(|_| DomainError::invalid(field, "must be base64url without padding"))
}

fn encode(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn upload(device_id: &str, body: PublishDeviceKeysRequest) -> Result<DeviceKeysUpload, DomainError> {
    let device_id = DeviceId::parse(device_id)?;
    if body.one_time_prekeys.len() > DeviceKeysUpload::MAX_ONE_TIME_PREKEYS {
        // Refused before decoding a hundred keys for nothing.
        return Err(DomainError::invalid("oneTimePrekeys", "at most 100 per upload"));
    }
    let one_time_prekeys = body
        .one_time_prekeys
        .iter()
        .map(|k| {
            Ok(OneTimePrekey {
                id: k.key_id,
                key: X25519Key::parse("oneTimePrekeys.publicKey", &bytes("oneTimePrekeys.publicKey", &k.public_key)?)?,
            })
        })
        .collect::<Result<Vec<_>, DomainError>>()?;
    let spk = &body.signed_prekey;
    Ok(DeviceKeysUpload {
        device_id,
        identity_key: X25519Key::parse("identityKey", &bytes("identityKey", &body.identity_key)?)?,
        signing_key: Ed25519Key::parse("signingKey", &bytes("signingKey", &body.signing_key)?)?,
        signed_prekey: SignedPrekey {
            id: spk.key_id,
            key: X25519Key::parse("signedPrekey.publicKey", &bytes("signedPrekey.publicKey", &spk.public_key)?)?,
            signature: Signature::parse("signedPrekey.signature", &bytes("signedPrekey.signature", &spk.signature)?)?,
        },
        one_time_prekeys,
    })
}

fn signed_prekey(spk: &SignedPrekey) -> SignedPrekeyBody {
    SignedPrekeyBody {
        key_id: spk.id,
        public_key: encode(spk.key.as_bytes()),
        signature: encode(spk.signature.as_bytes()),
    }
}

fn device(d: &DeviceKeys) -> DeviceKeysBody {
    DeviceKeysBody {
        user_id: d.user_id.as_uuid(),
        device_id: d.device_id.as_str().to_owned(),
        identity_key: encode(d.identity_key.as_bytes()),
        signing_key: encode(d.signing_key.as_bytes()),
        signed_prekey: signed_prekey(&d.signed_prekey),
        one_time_prekey_count: d.one_time_prekeys_left,
        created_at: d.created_at,
        updated_at: d.updated_at,
    }
}

fn claimed(c: &ClaimedKeys) -> ClaimedDeviceKeys {
    ClaimedDeviceKeys {
        user_id: c.user_id.as_uuid(),
        device_id: c.device_id.as_str().to_owned(),
        identity_key: encode(c.identity_key.as_bytes()),
        signing_key: encode(c.signing_key.as_bytes()),
        signed_prekey: signed_prekey(&c.signed_prekey),
        one_time_prekey: c
            .one_time_prekey
            .map(|k| OneTimePrekeyBody { key_id: k.id, public_key: encode(k.key.as_bytes()) }),
    }
}

/// Publish one of your devices: create it, or replace its identity key, signing key and signed
/// prekey; one-time prekeys are appended. A device id belongs to the first user who published
/// it (409 for anyone else).
#[utoipa::path(tag = "keys", request_body = PublishDeviceKeysRequest,
    responses((status = 200, body = DeviceKeysBody), (status = 400), (status = 409), (status = 422)),
    security(("bearer" = [])))]
#[put("/keys/devices/{device_id}")]
pub(crate) async fn publish(
    state: web::Data<AppState>,
    caller: Caller,
    device_id: web::Path<String>,
    body: web::Json<PublishDeviceKeysRequest>,
) -> ApiResult<HttpResponse> {
    let upload = upload(&device_id, body.into_inner())?;
    let published = state.chat.keys.publish(caller.0, upload).await?;
    Ok(ok(&device(&published)))
}

/// The public keys of every device of a user you share a workspace with (404 otherwise); no
/// one-time prekeys, only how many are left.
#[utoipa::path(tag = "keys", responses((status = 200, body = Page<DeviceKeysBody>), (status = 404)),
    security(("bearer" = [])))]
#[get("/keys/users/{user_id}")]
pub(crate) async fn list(
    state: web::Data<AppState>,
    caller: Caller,
    user_id: web::Path<Uuid>,
) -> ApiResult<HttpResponse> {
    let devices = state.chat.keys.list(caller.0, UserId::from_uuid(*user_id)).await?;
    Ok(ok(&Page { items: devices.iter().map(device).collect(), next_cursor: None }))
}

/// Claim one one-time prekey of each of a user's devices (each is handed out once), with
/// their signed prekeys. Rate limited per caller (`RATE_LIMIT_KEY_CLAIMS_PER_MINUTE`).
#[utoipa::path(tag = "keys", responses((status = 200, body = Page<ClaimedDeviceKeys>), (status = 404), (status = 429)),
    security(("bearer" = [])))]
#[post("/keys/users/{user_id}/claim")]
pub(crate) async fn claim(
    state: web::Data<AppState>,
    caller: Caller,
    user_id: web::Path<Uuid>,
) -> ApiResult<HttpResponse> {
    let result = state.chat.keys.claim(caller.0, UserId::from_uuid(*user_id)).await;
    if matches!(result, Err(DomainError::RateLimited { .. })) {
        state.metrics.rate_limited(chat_domain::realtime::RateKind::KeyClaims);
    }
    let claims = result?;
    Ok(ok(&Page { items: claims.iter().map(claimed).collect(), next_cursor: None }))
}
