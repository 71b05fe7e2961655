//! [`KeyDirectory`]: the E2E public key directory (device keys and one-time prekeys).

use std::collections::HashMap;

use async_trait::async_trait;
use chat_domain::error::RepoError;
use chat_domain::ids::UserId;
use chat_domain::keys::{
    ClaimedKeys, DeviceId, DeviceKeys, DeviceKeysUpload, Ed25519Key, KeyDirectory, OneTimePrekey, PublishOutcome,
    Signature, SignedPrekey, X25519Key,
};
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::result::Error as DieselError;
use diesel::sql_types::{BigInt, Bytea, Text};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use crate::schema::{device_keys, one_time_prekeys};
use crate::{PgStore, corrupt, repo};

#[derive(Queryable, Selectable)]
#[diesel(table_name = device_keys, check_for_backend(diesel::pg::Pg))]
struct DeviceRow {
    device_id: String,
    user_id: Uuid,
    identity_key: Vec<u8>,
    signing_key: Vec<u8>,
    signed_prekey_id: i64,
    signed_prekey: Vec<u8>,
    signed_prekey_signature: Vec<u8>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

/// The public parts every answer shares.
struct Public {
    user_id: UserId,
    device_id: DeviceId,
    identity_key: X25519Key,
    signing_key: Ed25519Key,
    signed_prekey: SignedPrekey,
}

fn array<const N: usize>(bytes: &[u8]) -> Result<[u8; N], RepoError> {
    bytes.try_into().map_err(|_| corrupt("a stored key has the wrong length"))
}

fn key_id(id: i64) -> Result<u32, RepoError> {
    u32::try_from(id).map_err(|_| corrupt("a stored prekey id is out of range"))
}

impl DeviceRow {
    fn public(&self) -> Result<Public, RepoError> {
        Ok(Public {
            user_id: UserId::from_uuid(self.user_id),
            device_id: DeviceId::from_stored(self.device_id.clone()),
            identity_key: X25519Key::from_stored(array(&self.identity_key)?),
            signing_key: Ed25519Key::from_stored(array(&self.signing_key)?),
            signed_prekey: SignedPrekey {
                id: key_id(self.signed_prekey_id)?,
                key: X25519Key::from_stored(array(&self.signed_prekey)?),
                signature: Signature::from_stored(array(&self.signed_prekey_signature)?),
            },
        })
    }

    fn into_device(self, left: i64) -> Result<DeviceKeys, RepoError> {
        let p = self.public()?;
        Ok(DeviceKeys {
            user_id: p.user_id,
            device_id: p.device_id,
            identity_key: p.identity_key,
            signing_key: p.signing_key,
            signed_prekey: p.signed_prekey,
            one_time_prekeys_left: u64::try_from(left).unwrap_or(0),
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

#[derive(QueryableByName)]
struct ClaimedRow {
    #[diesel(sql_type = BigInt)]
    prekey_id: i64,
    #[diesel(sql_type = Bytea)]
    public_key: Vec<u8>,
}

/// Takes the device's lowest unclaimed one-time prekey. `SKIP LOCKED` makes a concurrent
/// claimer move on to the next key instead of waiting for this one and then finding it gone,
/// so N concurrent claims of a device with K keys hand out min(N, K) distinct keys.
const CLAIM_ONE: &str = "DELETE FROM one_time_prekeys WHERE (device_id, prekey_id) IN ( \
       SELECT device_id, prekey_id FROM one_time_prekeys WHERE device_id = $1 \
       ORDER BY prekey_id LIMIT 1 FOR UPDATE SKIP LOCKED) \
     RETURNING prekey_id, public_key";

/// What the publish transaction ended with.
enum Published {
    Row(DeviceRow, i64),
    OwnedByAnother,
}

async fn publish_tx(
    conn: &mut AsyncPgConnection,
    user: Uuid,
    upload: &DeviceKeysUpload,
    at: DateTime<Utc>,
) -> Result<Published, DieselError> {
    let id = upload.device_id.as_str();
    let spk = &upload.signed_prekey;
    // Two rounds at most: a concurrent first publisher of the same id makes our insert a
    // no-op, and the second round then sees (and locks) their row.
    for _ in 0..2 {
        let existing: Option<(Uuid, Vec<u8>)> = device_keys::table
            .find(id)
            .select((device_keys::user_id, device_keys::identity_key))
            .for_update()
            .first(conn)
            .await
            .optional()?;
        match existing {
            Some((owner, _)) if owner != user => return Ok(Published::OwnedByAnother),
            Some((_, old_identity)) => {
                diesel::update(device_keys::table.find(id))
                    .set((
                        device_keys::identity_key.eq(upload.identity_key.as_bytes().as_slice()),
                        device_keys::signing_key.eq(upload.signing_key.as_bytes().as_slice()),
                        device_keys::signed_prekey_id.eq(i64::from(spk.id)),
                        device_keys::signed_prekey.eq(spk.key.as_bytes().as_slice()),
                        device_keys::signed_prekey_signature.eq(spk.signature.as_bytes().as_slice()),
                        device_keys::updated_at.eq(at),
                    ))
                    .execute(conn)
                    .await?;
                if old_identity.as_slice() != upload.identity_key.as_bytes() {
                    // The old identity's one-time prekeys cannot be used with the new one.
                    diesel::delete(one_time_prekeys::table.filter(one_time_prekeys::device_id.eq(id)))
                        .execute(conn)
                        .await?;
                }
            }
            None => {
                let inserted = diesel::insert_into(device_keys::table)
                    .values((
                        device_keys::device_id.eq(id),
                        device_keys::user_id.eq(user),
                        device_keys::identity_key.eq(upload.identity_key.as_bytes().as_slice()),
                        device_keys::signing_key.eq(upload.signing_key.as_bytes().as_slice()),
                        device_keys::signed_prekey_id.eq(i64::from(spk.id)),
                        device_keys::signed_prekey.eq(spk.key.as_bytes().as_slice()),
                        device_keys::signed_prekey_signature.eq(spk.signature.as_bytes().as_slice()),
                        device_keys::created_at.eq(at),
                        device_keys::updated_at.eq(at),
                    ))
                    .on_conflict_do_nothing()
                    .execute(conn)
                    .await?;
                if inserted == 0 {
                    continue;
                }
            }
        }
        if !upload.one_time_prekeys.is_empty() {
            let rows: Vec<_> = upload
                .one_time_prekeys
                .iter()
                .map(|k| {
                    (
                        one_time_prekeys::device_id.eq(id),
                        one_time_prekeys::prekey_id.eq(i64::from(k.id)),
                        one_time_prekeys::public_key.eq(k.key.as_bytes().as_slice()),
                        one_time_prekeys::created_at.eq(at),
                    )
                })
                .collect();
            diesel::insert_into(one_time_prekeys::table).values(rows).on_conflict_do_nothing().execute(conn).await?;
        }
        let row = device_keys::table.find(id).select(DeviceRow::as_select()).first(conn).await?;
        let left: i64 =
            one_time_prekeys::table.filter(one_time_prekeys::device_id.eq(id)).count().get_result(conn).await?;
        return Ok(Published::Row(row, left));
    }
    Err(DieselError::NotFound)
}

#[async_trait]
impl KeyDirectory for PgStore {
    #[tracing::instrument(skip_all, fields(user = %user, device = %upload.device_id))]
    async fn publish_device(
        &self,
        user: UserId,
        upload: &DeviceKeysUpload,
        at: DateTime<Utc>,
    ) -> Result<PublishOutcome, RepoError> {
        let mut conn = self.conn().await?;
        let user = user.as_uuid();
        let outcome = (*conn)
            .transaction::<_, DieselError, _>(async |conn: &mut AsyncPgConnection| {
                publish_tx(conn, user, upload, at).await
            })
            .await
            .map_err(repo("publishing device keys"))?;
        match outcome {
            Published::Row(row, left) => Ok(PublishOutcome::Published(Box::new(row.into_device(left)?))),
            Published::OwnedByAnother => Ok(PublishOutcome::OwnedByAnother),
        }
    }

    #[tracing::instrument(skip_all, fields(user = %user))]
    async fn list_devices(&self, user: UserId) -> Result<Vec<DeviceKeys>, RepoError> {
        let mut conn = self.conn().await?;
        let rows: Vec<DeviceRow> = device_keys::table
            .filter(device_keys::user_id.eq(user.as_uuid()))
            .order((device_keys::created_at.asc(), device_keys::device_id.asc()))
            .select(DeviceRow::as_select())
            .load(&mut conn)
            .await
            .map_err(repo("listing devices"))?;
        let ids: Vec<&str> = rows.iter().map(|r| r.device_id.as_str()).collect();
        let counts: HashMap<String, i64> = one_time_prekeys::table
            .filter(one_time_prekeys::device_id.eq_any(&ids))
            .group_by(one_time_prekeys::device_id)
            .select((one_time_prekeys::device_id, diesel::dsl::count_star()))
            .load::<(String, i64)>(&mut conn)
            .await
            .map_err(repo("counting one-time prekeys"))?
            .into_iter()
            .collect();
        rows.into_iter()
            .map(|row| {
                let left = counts.get(&row.device_id).copied().unwrap_or(0);
                row.into_device(left)
            })
            .collect()
    }

    #[tracing::instrument(skip_all, fields(user = %user))]
    async fn claim_prekeys(&self, user: UserId) -> Result<Vec<ClaimedKeys>, RepoError> {
        let mut conn = self.conn().await?;
        let rows: Vec<DeviceRow> = device_keys::table
            .filter(device_keys::user_id.eq(user.as_uuid()))
            .order((device_keys::created_at.asc(), device_keys::device_id.asc()))
            .select(DeviceRow::as_select())
            .load(&mut conn)
            .await
            .map_err(repo("listing devices to claim"))?;
        let mut claimed = Vec::with_capacity(rows.len());
        for row in rows {
            // Each claim of one key is its own statement (and commit): a key is gone for
            // everyone the moment it is handed out.
            let taken: Option<ClaimedRow> = diesel::sql_query(CLAIM_ONE)
                .bind::<Text, _>(&row.device_id)
                .get_result(&mut conn)
                .await
                .optional()
                .map_err(repo("claiming a one-time prekey"))?;
            let one_time_prekey = taken
                .map(|t| {
                    Ok::<_, RepoError>(OneTimePrekey {
                        id: key_id(t.prekey_id)?,
                        key: X25519Key::from_stored(array(&t.public_key)?),
                    })
                })
                .transpose()?;
            let p = row.public()?;
            claimed.push(ClaimedKeys {
                user_id: p.user_id,
                device_id: p.device_id,
                identity_key: p.identity_key,
                signing_key: p.signing_key,
                signed_prekey: p.signed_prekey,
                one_time_prekey,
            });
        }
        Ok(claimed)
    }
}
