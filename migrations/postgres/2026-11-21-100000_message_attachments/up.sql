-- Files attached to messages, in the order the sender listed them (docs/api.md, "Messages").
-- Ids only: the file's name stays sealed in its `files` row, its type and size are there too.
-- Written in the transaction that inserts the message; a message's rows go when it is deleted
-- (soft delete), and so do those of a deleted file.
CREATE TABLE message_attachments (
    message_id uuid    NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    file_id    uuid    NOT NULL REFERENCES files (id) ON DELETE CASCADE,
    position   integer NOT NULL CHECK (position >= 0),
    PRIMARY KEY (message_id, position),
    UNIQUE (message_id, file_id)
);
CREATE INDEX message_attachments_file_idx ON message_attachments (file_id);
