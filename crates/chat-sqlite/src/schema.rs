//! Diesel's view of `migrations/sqlite`, kept in sync by hand (it matches what
//! `diesel print-schema` prints for that schema). Ids are 16-byte BLOBs, instants BIGINT
//! microseconds since the Unix epoch.

diesel::table! {
    users (id) {
        id -> Binary,
        email -> Text,
        display_name -> Text,
        avatar_url -> Nullable<Text>,
        password_hash -> Text,
        created_at -> BigInt,
    }
}

diesel::table! {
    refresh_tokens (digest) {
        digest -> Binary,
        family_id -> Binary,
        user_id -> Binary,
        issued_at -> BigInt,
        expires_at -> BigInt,
        used_at -> Nullable<BigInt>,
        revoked_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    workspaces (id) {
        id -> Binary,
        name -> Text,
        slug -> Text,
        created_by -> Binary,
        created_at -> BigInt,
    }
}

diesel::table! {
    workspace_members (workspace_id, user_id) {
        workspace_id -> Binary,
        user_id -> Binary,
        role -> Text,
        joined_at -> BigInt,
    }
}

diesel::table! {
    workspace_keys (workspace_id, version) {
        workspace_id -> Binary,
        version -> Integer,
        wrapped -> Binary,
        created_at -> BigInt,
    }
}

diesel::table! {
    conversations (id) {
        id -> Binary,
        workspace_id -> Binary,
        kind -> Text,
        name -> Nullable<Text>,
        description -> Nullable<Text>,
        icon -> Nullable<Text>,
        document_id -> Nullable<Text>,
        unique_key -> Nullable<Text>,
        is_encrypted -> Bool,
        max_participants -> BigInt,
        created_by -> Binary,
        last_seq -> BigInt,
        created_at -> BigInt,
        updated_at -> BigInt,
        archived_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    conversation_members (conversation_id, user_id) {
        conversation_id -> Binary,
        user_id -> Binary,
        role -> Text,
        joined_at -> BigInt,
        last_read_seq -> BigInt,
        last_read_at -> Nullable<BigInt>,
        is_muted -> Bool,
    }
}

diesel::table! {
    messages (id) {
        id -> Binary,
        conversation_id -> Binary,
        seq -> BigInt,
        sender_id -> Binary,
        client_msg_id -> Nullable<Text>,
        kind -> Text,
        content -> Nullable<Binary>,
        key_version -> Nullable<Integer>,
        reply_to_id -> Nullable<Binary>,
        reply_count -> BigInt,
        edited_at -> Nullable<BigInt>,
        deleted_at -> Nullable<BigInt>,
        created_at -> BigInt,
    }
}

diesel::table! {
    message_reactions (message_id, user_id, emoji) {
        message_id -> Binary,
        user_id -> Binary,
        emoji -> Text,
        created_at -> BigInt,
    }
}

// `doc` is the rowid (64-bit) and the FTS5 index's document id; it is never read here, only
// joined on in SQL, so its declared INTEGER maps as diesel's `Integer`.
diesel::table! {
    message_search_docs (doc) {
        doc -> Integer,
        message_id -> Binary,
        workspace_id -> Binary,
        conversation_id -> Binary,
        created_at -> BigInt,
        tags -> Text,
        tag_count -> Integer,
    }
}

diesel::table! {
    presence (user_id, workspace_id) {
        user_id -> Binary,
        workspace_id -> Binary,
        status -> Text,
        last_seen -> BigInt,
    }
}

diesel::table! {
    device_keys (device_id) {
        device_id -> Text,
        user_id -> Binary,
        identity_key -> Binary,
        signing_key -> Binary,
        signed_prekey_id -> BigInt,
        signed_prekey -> Binary,
        signed_prekey_signature -> Binary,
        created_at -> BigInt,
        updated_at -> BigInt,
    }
}

diesel::table! {
    one_time_prekeys (device_id, prekey_id) {
        device_id -> Text,
        prekey_id -> BigInt,
        public_key -> Binary,
        created_at -> BigInt,
    }
}

diesel::joinable!(conversation_members -> conversations (conversation_id));
diesel::joinable!(conversation_members -> users (user_id));
diesel::joinable!(conversations -> users (created_by));
diesel::joinable!(conversations -> workspaces (workspace_id));
diesel::joinable!(message_reactions -> messages (message_id));
diesel::joinable!(message_reactions -> users (user_id));
diesel::joinable!(messages -> conversations (conversation_id));
diesel::joinable!(messages -> users (sender_id));
diesel::joinable!(presence -> users (user_id));
diesel::joinable!(presence -> workspaces (workspace_id));
diesel::joinable!(refresh_tokens -> users (user_id));
diesel::joinable!(workspace_keys -> workspaces (workspace_id));
diesel::joinable!(workspace_members -> users (user_id));
diesel::joinable!(workspace_members -> workspaces (workspace_id));
diesel::joinable!(workspaces -> users (created_by));

diesel::table! {
    audit_log (id) {
        id -> Binary,
        workspace_id -> Nullable<Binary>,
        actor_id -> Nullable<Binary>,
        action -> Text,
        target -> Nullable<Text>,
        ip -> Nullable<Text>,
        at -> BigInt,
    }
}

diesel::table! {
    files (id) {
        id -> Binary,
        workspace_id -> Binary,
        conversation_id -> Binary,
        uploader_id -> Binary,
        name -> Binary,
        name_key_version -> Integer,
        content_type -> Text,
        size -> BigInt,
        storage_key -> Text,
        wrapped_file_key -> Binary,
        key_version -> Integer,
        created_at -> BigInt,
    }
}

diesel::table! {
    message_attachments (message_id, position) {
        message_id -> Binary,
        file_id -> Binary,
        position -> Integer,
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

#[cfg(test)]
mod tests {
    use diesel::prelude::*;
    use diesel::sql_types::{Integer, Text};
    use diesel_migrations::MigrationHarness;

    #[derive(QueryableByName)]
    struct Table {
        #[diesel(sql_type = Text)]
        name: String,
    }

    #[derive(QueryableByName)]
    struct Column {
        #[diesel(sql_type = Text)]
        name: String,
        #[diesel(sql_type = Text)]
        declared: String,
        #[diesel(sql_type = Integer)]
        not_null: i32,
        #[diesel(sql_type = Integer)]
        pk: i32,
    }

    /// The `table!` block `diesel print-schema` would print for `table`, without whitespace.
    fn printed(c: &mut SqliteConnection, table: &str) -> String {
        let columns = diesel::sql_query(
            "SELECT name, type AS declared, \"notnull\" AS not_null, pk FROM pragma_table_info(?) ORDER BY cid",
        )
        .bind::<Text, _>(table)
        .load::<Column>(c)
        .unwrap();
        let mut keys: Vec<&Column> = columns.iter().filter(|col| col.pk > 0).collect();
        keys.sort_by_key(|col| col.pk);
        let keys: Vec<&str> = keys.iter().map(|col| col.name.as_str()).collect();
        let mut out = format!("diesel::table!{{{table}({}){{", keys.join(","));
        for col in &columns {
            let ty = match col.declared.as_str() {
                "BLOB" => "Binary",
                "BIGINT" => "BigInt",
                "INTEGER" => "Integer",
                "TEXT" => "Text",
                "BOOLEAN" => "Bool",
                other => panic!("{table}.{}: no mapping for {other}", col.name),
            };
            let ty = if col.not_null == 0 { format!("Nullable<{ty}>") } else { ty.to_owned() };
            out.push_str(&format!("{}->{ty},", col.name));
        }
        out.push_str("}}");
        out
    }

    #[test]
    fn schema_rs_matches_the_migrations() {
        let mut c = SqliteConnection::establish(":memory:").unwrap();
        c.run_pending_migrations(crate::store::MIGRATIONS).unwrap();
        let tables = diesel::sql_query(
            // Ordinary tables only: not the FTS5 index (`virtual`) nor the tables it keeps
            // (`shadow`), which diesel never names.
            "SELECT name FROM pragma_table_list WHERE schema = 'main' AND type = 'table' \
             AND name NOT LIKE 'sqlite_%' AND name <> '__diesel_schema_migrations' ORDER BY name",
        )
        .load::<Table>(&mut c)
        .unwrap();
        let source = include_str!("schema.rs");
        let source = source.split("#[cfg(test)]").next().unwrap_or(source);
        let source: String = source.chars().filter(|ch| !ch.is_whitespace()).collect();
        let declared = source.matches("diesel::table!{").count();
        assert_eq!(
            declared,
            tables.len(),
            "schema.rs declares {declared} tables, the migrations make {}",
            tables.len()
        );
        for table in tables {
            let expected = printed(&mut c, &table.name);
            assert!(source.contains(&expected), "schema.rs is out of date for {}: expected {expected}", table.name);
        }
    }
}
