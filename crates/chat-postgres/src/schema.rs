//! Diesel's view of the tables in `migrations/postgres`, kept in sync with the SQL by hand:
//! the same tables, columns, types and nullability that `diesel print-schema` prints for a
//! migrated database (in the SQL's order rather than alphabetical).

diesel::table! {
    users (id) {
        id -> Uuid,
        email -> Text,
        display_name -> Text,
        avatar_url -> Nullable<Text>,
        password_hash -> Text,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    refresh_tokens (digest) {
        digest -> Bytea,
        family_id -> Uuid,
        user_id -> Uuid,
        issued_at -> Timestamptz,
        expires_at -> Timestamptz,
        used_at -> Nullable<Timestamptz>,
        revoked_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    workspaces (id) {
        id -> Uuid,
        name -> Text,
        slug -> Text,
        created_by -> Uuid,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    workspace_members (workspace_id, user_id) {
        workspace_id -> Uuid,
        user_id -> Uuid,
        role -> Text,
        joined_at -> Timestamptz,
        ordinal -> Int8,
    }
}

diesel::table! {
    workspace_keys (workspace_id, version) {
        workspace_id -> Uuid,
        version -> Int4,
        wrapped -> Bytea,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    conversations (id) {
        id -> Uuid,
        workspace_id -> Uuid,
        kind -> Text,
        name -> Nullable<Text>,
        description -> Nullable<Text>,
        icon -> Nullable<Text>,
        document_id -> Nullable<Text>,
        unique_key -> Nullable<Text>,
        is_encrypted -> Bool,
        max_participants -> Int4,
        created_by -> Uuid,
        last_seq -> Int8,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        archived_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    conversation_members (conversation_id, user_id) {
        conversation_id -> Uuid,
        user_id -> Uuid,
        role -> Text,
        joined_at -> Timestamptz,
        last_read_seq -> Int8,
        last_read_at -> Nullable<Timestamptz>,
        is_muted -> Bool,
        ordinal -> Int8,
    }
}

diesel::table! {
    messages (id) {
        id -> Uuid,
        conversation_id -> Uuid,
        seq -> Int8,
        sender_id -> Uuid,
        client_msg_id -> Nullable<Text>,
        kind -> Text,
        content -> Nullable<Bytea>,
        key_version -> Nullable<Int4>,
        reply_to_id -> Nullable<Uuid>,
        reply_count -> Int8,
        edited_at -> Nullable<Timestamptz>,
        deleted_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    message_reactions (message_id, user_id, emoji) {
        message_id -> Uuid,
        user_id -> Uuid,
        emoji -> Text,
        created_at -> Timestamptz,
        ordinal -> Int8,
    }
}

diesel::table! {
    message_search (message_id) {
        message_id -> Uuid,
        workspace_id -> Uuid,
        conversation_id -> Uuid,
        created_at -> Timestamptz,
        tags -> Array<Bytea>,
    }
}

diesel::table! {
    presence (user_id, workspace_id) {
        user_id -> Uuid,
        workspace_id -> Uuid,
        status -> Text,
        last_seen -> Timestamptz,
    }
}

diesel::table! {
    device_keys (device_id) {
        device_id -> Text,
        user_id -> Uuid,
        identity_key -> Bytea,
        signing_key -> Bytea,
        signed_prekey_id -> Int8,
        signed_prekey -> Bytea,
        signed_prekey_signature -> Bytea,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    one_time_prekeys (device_id, prekey_id) {
        device_id -> Text,
        prekey_id -> Int8,
        public_key -> Bytea,
        created_at -> Timestamptz,
    }
}

diesel::joinable!(refresh_tokens -> users (user_id));
diesel::joinable!(workspaces -> users (created_by));
diesel::joinable!(workspace_members -> workspaces (workspace_id));
diesel::joinable!(workspace_members -> users (user_id));
diesel::joinable!(workspace_keys -> workspaces (workspace_id));
diesel::joinable!(conversations -> workspaces (workspace_id));
diesel::joinable!(conversations -> users (created_by));
diesel::joinable!(conversation_members -> conversations (conversation_id));
diesel::joinable!(conversation_members -> users (user_id));
diesel::joinable!(messages -> conversations (conversation_id));
diesel::joinable!(messages -> users (sender_id));
diesel::joinable!(message_reactions -> messages (message_id));
diesel::joinable!(message_reactions -> users (user_id));
diesel::joinable!(presence -> workspaces (workspace_id));
diesel::joinable!(presence -> users (user_id));

diesel::table! {
    audit_log (id) {
        id -> Uuid,
        workspace_id -> Nullable<Uuid>,
        actor_id -> Nullable<Uuid>,
        action -> Text,
        target -> Nullable<Text>,
        ip -> Nullable<Text>,
        at -> Timestamptz,
    }
}

diesel::table! {
    files (id) {
        id -> Uuid,
        workspace_id -> Uuid,
        conversation_id -> Uuid,
        uploader_id -> Uuid,
        name -> Bytea,
        name_key_version -> Int4,
        content_type -> Text,
        size -> Int8,
        storage_key -> Text,
        wrapped_file_key -> Bytea,
        key_version -> Int4,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    message_attachments (message_id, position) {
        message_id -> Uuid,
        file_id -> Uuid,
        position -> Int4,
    }
}

diesel::joinable!(message_attachments -> messages (message_id));
diesel::joinable!(message_attachments -> files (file_id));
// Attachments are loaded with their files' rows, and orphaned files are found through them.
diesel::allow_tables_to_appear_in_same_query!(message_attachments, files);

diesel::allow_tables_to_appear_in_same_query!(
    users,
    refresh_tokens,
    workspaces,
    workspace_members,
    workspace_keys,
    conversations,
    conversation_members,
    messages,
    message_reactions,
    presence,
);
