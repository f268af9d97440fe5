-- What the users service, password recovery and mail delivery need.
--
-- Times become `timestamptz` (the template's `DateTime(timezone=True)`);
-- the old columns held UTC without a zone, so they are read as UTC.
ALTER TABLE "user"
    ALTER COLUMN created_at TYPE TIMESTAMPTZ USING created_at AT TIME ZONE 'UTC',
    ALTER COLUMN created_at SET DEFAULT now(),
    ALTER COLUMN updated_at TYPE TIMESTAMPTZ USING updated_at AT TIME ZONE 'UTC',
    ALTER COLUMN updated_at SET DEFAULT now();
ALTER TABLE item
    ALTER COLUMN created_at TYPE TIMESTAMPTZ USING created_at AT TIME ZONE 'UTC',
    ALTER COLUMN created_at SET DEFAULT now(),
    ALTER COLUMN updated_at TYPE TIMESTAMPTZ USING updated_at AT TIME ZONE 'UTC',
    ALTER COLUMN updated_at SET DEFAULT now();

-- Emails are matched without regard to case; the services store them in
-- lower case. Existing rows are folded here, and two accounts differing
-- only in case make this migration fail rather than merge silently.
UPDATE "user" SET email = lower(email) WHERE email <> lower(email);
CREATE UNIQUE INDEX user_email_lower_key ON "user" (lower(email));

-- Lists are newest first, paged with OFFSET/LIMIT.
CREATE INDEX user_created_at_idx ON "user" (created_at DESC, id DESC);
DROP INDEX item_owner_id_idx;
CREATE INDEX item_owner_created_at_idx ON item (owner_id, created_at DESC, id DESC);
CREATE INDEX item_created_at_idx ON item (created_at DESC, id DESC);

-- Password reset tokens: only a SHA-256 digest is kept, so a leaked table
-- cannot reset anyone's password. Each token works once, until it expires.
CREATE TABLE password_reset_token (
    token_hash BYTEA PRIMARY KEY,
    user_id UUID NOT NULL REFERENCES "user"(id) ON DELETE CASCADE,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at TIMESTAMPTZ NOT NULL,
    used_at TIMESTAMPTZ
);
CREATE INDEX password_reset_token_user_idx ON password_reset_token (user_id);

-- Mail waiting to be sent. A service writes a row in the same statement or
-- transaction as the change it reports; the mailer delivers it outside the
-- request and retries with backoff until `max_attempts`.
CREATE TABLE email_outbox (
    id BIGSERIAL PRIMARY KEY,
    recipient VARCHAR(255) NOT NULL,
    subject TEXT NOT NULL,
    html_body TEXT NOT NULL,
    text_body TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    sent_at TIMESTAMPTZ,
    failed_at TIMESTAMPTZ,
    last_error TEXT
);
CREATE INDEX email_outbox_pending_idx ON email_outbox (next_attempt_at)
    WHERE sent_at IS NULL AND failed_at IS NULL;
