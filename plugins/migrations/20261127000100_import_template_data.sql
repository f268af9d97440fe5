-- Copies the users and items of a FastAPI template database, moved aside by
-- ..._adopt_template_database, into Gatehouse's tables, then drops the
-- template's tables. Ids stay as they were; emails are folded to lower case
-- (two accounts differing only in case stop this migration); the template's
-- argon2id password hashes are kept and replaced by bcrypt at each user's
-- next login. Older template versions had no `created_at`: such rows get
-- the time of the import.
DO $$
DECLARE
    user_created text := 'now()';
    item_created text := 'now()';
BEGIN
    IF to_regclass('public.template_user') IS NULL THEN
        RETURN;
    END IF;
    IF EXISTS (SELECT 1 FROM information_schema.columns
               WHERE table_schema = 'public' AND table_name = 'template_user' AND column_name = 'created_at') THEN
        user_created := 'coalesce(created_at::timestamptz, now())';
    END IF;
    EXECUTE format(
        'INSERT INTO "user" (id, email, hashed_password, full_name, is_active, is_superuser, created_at)
         SELECT id, lower(email), hashed_password, full_name, is_active, is_superuser, %s FROM template_user',
        user_created);
    IF to_regclass('public.template_item') IS NOT NULL THEN
        IF EXISTS (SELECT 1 FROM information_schema.columns
                   WHERE table_schema = 'public' AND table_name = 'template_item' AND column_name = 'created_at') THEN
            item_created := 'coalesce(created_at::timestamptz, now())';
        END IF;
        EXECUTE format(
            'INSERT INTO item (id, title, description, owner_id, created_at)
             SELECT id, title, description, owner_id, %s FROM template_item',
            item_created);
        DROP TABLE template_item;
    END IF;
    DROP TABLE template_user;
    DROP TABLE IF EXISTS alembic_version;
END $$;
