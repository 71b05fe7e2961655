-- The E2E public key directory (docs/e2e.md): public keys only. A device id is global and
-- belongs to the first user who published it; one-time prekeys are deleted as they are claimed,
-- inside an immediate transaction, so each is handed out at most once.

CREATE TABLE device_keys (
    device_id               TEXT    NOT NULL PRIMARY KEY CHECK (length(device_id) BETWEEN 1 AND 128),
    user_id                 BLOB    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    identity_key            BLOB    NOT NULL CHECK (length(identity_key) = 32),
    signing_key             BLOB    NOT NULL CHECK (length(signing_key) = 32),
    signed_prekey_id        BIGINT  NOT NULL CHECK (signed_prekey_id BETWEEN 0 AND 4294967295),
    signed_prekey           BLOB    NOT NULL CHECK (length(signed_prekey) = 32),
    signed_prekey_signature BLOB    NOT NULL CHECK (length(signed_prekey_signature) = 64),
    created_at              BIGINT  NOT NULL,
    updated_at              BIGINT  NOT NULL
);
CREATE INDEX device_keys_user_id_idx ON device_keys (user_id);

CREATE TABLE one_time_prekeys (
    device_id  TEXT    NOT NULL REFERENCES device_keys (device_id) ON DELETE CASCADE,
    prekey_id  BIGINT  NOT NULL CHECK (prekey_id BETWEEN 0 AND 4294967295),
    public_key BLOB    NOT NULL CHECK (length(public_key) = 32),
    created_at BIGINT  NOT NULL,
    PRIMARY KEY (device_id, prekey_id)
);
