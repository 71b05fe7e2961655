//! [`KeyDirectory`]: the E2E public key directory (device keys and one-time prekeys). Every
//! write, and every claim, is one `BEGIN IMMEDIATE` transaction: writers queue on SQLite's
//! write lock, so two claims can never read the same "lowest unclaimed" prekey.

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

use crate::rows::{instant, key, micros, uuid};
use crate::schema::{device_keys, one_time_prekeys};
use crate::store::{SqliteStore, Tx, settle};

#[derive(Queryable, Selectable)]
#[diesel(table_name = device_keys, check_for_backend(diesel::sqlite::Sqlite))]
struct DeviceRow {
    device_id: String,
    user_id: Vec<u8>,
    identity_key: Vec<u8>,
    signing_key: Vec<u8>,
    signed_prekey_id: i64,
    signed_prekey: Vec<u8>,
    signed_prekey_signature: Vec<u8>,
    created_at: i64,
    updated_at: i64,
}

fn corrupt(what: &'static str) -> DieselError {
    DieselError::DeserializationError(what.into())
}

fn array<const N: usize>(bytes: &[u8]) -> QueryResult<[u8; N]> {
    bytes.try_into().map_err(|_| corrupt("a stored key has the wrong length"))
}

fn key_id(id: i64) -> QueryResult<u32> {
    u32::try_from(id).map_err(|_| corrupt("a stored prekey id is out of range"))
}

impl DeviceRow {
    fn signed_prekey(&self) -> QueryResult<SignedPrekey> {
        Ok(SignedPrekey {
            id: key_id(self.signed_prekey_id)?,
            key: X25519Key::from_stored(array(&self.signed_prekey)?),
            signature: Signature::from_stored(array(&self.signed_prekey_signature)?),
        })
    }

    fn into_device(self, left: i64) -> QueryResult<DeviceKeys> {
        Ok(DeviceKeys {
            user_id: UserId::from_uuid(uuid(&self.user_id)?),
            identity_key: X25519Key::from_stored(array(&self.identity_key)?),
            signing_key: Ed25519Key::from_stored(array(&self.signing_key)?),
            signed_prekey: self.signed_prekey()?,
            one_time_prekeys_left: u64::try_from(left).unwrap_or(0),
            created_at: instant(self.created_at)?,
            updated_at: instant(self.updated_at)?,
            device_id: DeviceId::from_stored(self.device_id),
        })
    }

    fn into_claimed(self, one_time_prekey: Option<OneTimePrekey>) -> QueryResult<ClaimedKeys> {
        Ok(ClaimedKeys {
            user_id: UserId::from_uuid(uuid(&self.user_id)?),
            identity_key: X25519Key::from_stored(array(&self.identity_key)?),
            signing_key: Ed25519Key::from_stored(array(&self.signing_key)?),
            signed_prekey: self.signed_prekey()?,
            device_id: DeviceId::from_stored(self.device_id),
            one_time_prekey,
        })
    }
}

/// The expected outcome that rolls a publish back.
struct OwnedByAnother;

fn devices_of(c: &mut SqliteConnection, user: &[u8]) -> QueryResult<Vec<DeviceRow>> {
    device_keys::table
        .filter(device_keys::user_id.eq(user))
        .order((device_keys::created_at.asc(), device_keys::device_id.asc()))
        .select(DeviceRow::as_select())
        .load(c)
}

#[async_trait]
impl KeyDirectory for SqliteStore {
    #[tracing::instrument(skip_all, fields(user = %user, device = %upload.device_id))]
    async fn publish_device(
        &self,
        user: UserId,
        upload: &DeviceKeysUpload,
        at: DateTime<Utc>,
    ) -> Result<PublishOutcome, RepoError> {
        let user = key(user.as_uuid());
        let upload = upload.clone();
        let at = micros(at);
        let result = self
            .run("publishing device keys", move |c| {
                settle(c.immediate_transaction(|c| {
                    let id = upload.device_id.as_str();
                    let spk = &upload.signed_prekey;
                    let existing: Option<(Vec<u8>, Vec<u8>)> = device_keys::table
                        .find(id)
                        .select((device_keys::user_id, device_keys::identity_key))
                        .get_result(c)
                        .optional()?;
                    match existing {
                        Some((owner, _)) if owner != user => return Err(Tx::Outcome(OwnedByAnother)),
                        Some((_, old_identity)) => {
                            diesel::update(device_keys::table.find(id))
                                .set((
                                    device_keys::identity_key.eq(upload.identity_key.as_bytes().to_vec()),
                                    device_keys::signing_key.eq(upload.signing_key.as_bytes().to_vec()),
                                    device_keys::signed_prekey_id.eq(i64::from(spk.id)),
                                    device_keys::signed_prekey.eq(spk.key.as_bytes().to_vec()),
                                    device_keys::signed_prekey_signature.eq(spk.signature.as_bytes().to_vec()),
                                    device_keys::updated_at.eq(at),
                                ))
                                .execute(c)?;
                            if old_identity.as_slice() != upload.identity_key.as_bytes() {
                                // The old identity's one-time prekeys cannot be used with the new one.
                                diesel::delete(one_time_prekeys::table.filter(one_time_prekeys::device_id.eq(id)))
                                    .execute(c)?;
                            }
                        }
                        None => {
                            diesel::insert_into(device_keys::table)
                                .values((
                                    device_keys::device_id.eq(id),
                                    device_keys::user_id.eq(&user),
                                    device_keys::identity_key.eq(upload.identity_key.as_bytes().to_vec()),
                                    device_keys::signing_key.eq(upload.signing_key.as_bytes().to_vec()),
                                    device_keys::signed_prekey_id.eq(i64::from(spk.id)),
                                    device_keys::signed_prekey.eq(spk.key.as_bytes().to_vec()),
                                    device_keys::signed_prekey_signature.eq(spk.signature.as_bytes().to_vec()),
                                    device_keys::created_at.eq(at),
                                    device_keys::updated_at.eq(at),
                                ))
                                .execute(c)?;
                        }
                    }
                    for k in &upload.one_time_prekeys {
                        diesel::insert_into(one_time_prekeys::table)
                            .values((
                                one_time_prekeys::device_id.eq(id),
                                one_time_prekeys::prekey_id.eq(i64::from(k.id)),
                                one_time_prekeys::public_key.eq(k.key.as_bytes().to_vec()),
                                one_time_prekeys::created_at.eq(at),
                            ))
                            .on_conflict_do_nothing()
                            .execute(c)?;
                    }
                    let row = device_keys::table.find(id).select(DeviceRow::as_select()).get_result(c)?;
                    let left: i64 =
                        one_time_prekeys::table.filter(one_time_prekeys::device_id.eq(id)).count().get_result(c)?;
                    Ok(row.into_device(left)?)
                }))
            })
            .await?;
        Ok(match result {
            Ok(device) => PublishOutcome::Published(Box::new(device)),
            Err(OwnedByAnother) => PublishOutcome::OwnedByAnother,
        })
    }

    #[tracing::instrument(skip_all, fields(user = %user))]
    async fn list_devices(&self, user: UserId) -> Result<Vec<DeviceKeys>, RepoError> {
        let user = key(user.as_uuid());
        self.run("listing devices", move |c| {
            c.transaction(|c| {
                let rows = devices_of(c, &user)?;
                let ids: Vec<&str> = rows.iter().map(|r| r.device_id.as_str()).collect();
                let counts: HashMap<String, i64> = one_time_prekeys::table
                    .filter(one_time_prekeys::device_id.eq_any(&ids))
                    .group_by(one_time_prekeys::device_id)
                    .select((one_time_prekeys::device_id, diesel::dsl::count_star()))
                    .load::<(String, i64)>(c)?
                    .into_iter()
                    .collect();
                rows.into_iter()
                    .map(|row| {
                        let left = counts.get(&row.device_id).copied().unwrap_or(0);
                        row.into_device(left)
                    })
                    .collect()
            })
        })
        .await
    }

    #[tracing::instrument(skip_all, fields(user = %user))]
    async fn claim_prekeys(&self, user: UserId) -> Result<Vec<ClaimedKeys>, RepoError> {
        let user = key(user.as_uuid());
        self.run("claiming one-time prekeys", move |c| {
            // Immediate: the write lock is held from the first read, so no other claim can pick
            // the same lowest prekey before this one deletes it.
            c.immediate_transaction(|c| {
                let rows = devices_of(c, &user)?;
                let mut claimed = Vec::with_capacity(rows.len());
                for row in rows {
                    let next: Option<(i64, Vec<u8>)> = one_time_prekeys::table
                        .filter(one_time_prekeys::device_id.eq(&row.device_id))
                        .order(one_time_prekeys::prekey_id.asc())
                        .select((one_time_prekeys::prekey_id, one_time_prekeys::public_key))
                        .get_result(c)
                        .optional()?;
                    let one_time_prekey = match next {
                        Some((id, public_key)) => {
                            diesel::delete(one_time_prekeys::table.find((&row.device_id, id))).execute(c)?;
                            Some(OneTimePrekey { id: key_id(id)?, key: X25519Key::from_stored(array(&public_key)?) })
                        }
                        None => None,
                    };
                    claimed.push(row.into_claimed(one_time_prekey)?);
                }
                Ok(claimed)
            })
        })
        .await
    }
}
