-- A database made by the FastAPI full-stack template (alembic) already has
-- "user" and item tables. Move them aside, with their indexes, so the next
-- migration can create Gatehouse's tables; a later migration
-- (..._import_template_data) copies their rows over and drops them.
--
-- On any other database (a new one, or one Gatehouse made) this does
-- nothing. Its version sorts first so that it runs before the tables are
-- created on a template database.
DO $$
DECLARE
    index_name name;
BEGIN
    IF to_regclass('public.alembic_version') IS NULL OR to_regclass('public."user"') IS NULL THEN
        RETURN;
    END IF;
    FOR index_name IN
        SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
        WHERE i.indrelid IN (SELECT oid FROM pg_class WHERE relname IN ('user', 'item') AND relnamespace = 'public'::regnamespace)
    LOOP
        EXECUTE format('ALTER INDEX public.%I RENAME TO %I', index_name, 'template_' || index_name);
    END LOOP;
    IF to_regclass('public.item') IS NOT NULL THEN
        ALTER TABLE public.item RENAME TO template_item;
    END IF;
    ALTER TABLE public."user" RENAME TO template_user;
END $$;
