//! The schema's migrations on databases that already hold data: one made by
//! an earlier Gatehouse, and one made by the FastAPI template the original
//! platform came from. (Every other test starts from an empty database.)

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde_json::Value;
use sqlx::Executor;
use sqlx::migrate::Migrator;
use testkit::{ApiClient, RunningHost, TestDatabase, migrations_dir, services_manifest};

/// The first migration only: the schema the spine shipped.
const SPINE_MIGRATION: i64 = 20241201000000;

async fn start(db: &TestDatabase) -> RunningHost {
    RunningHost::start_services(db, &services_manifest("", 4)).await
}

async fn login(host: &RunningHost, email: &str, password: &str) -> (u16, Value) {
    ApiClient::new(format!("http://{}", host.addr)).login_at("/auth/api/v1/login/access-token", email, password).await
}

async fn stored_hash(db: &TestDatabase, email: &str) -> String {
    sqlx::query_scalar(r#"SELECT hashed_password FROM "user" WHERE email = $1"#)
        .bind(email)
        .fetch_one(&mut db.connect().await)
        .await
        .unwrap()
}

#[tokio::test]
async fn the_spine_schema_with_data_migrates_forward() {
    let db = TestDatabase::create().await;
    let mut spine = Migrator::new(migrations_dir()).await.unwrap();
    spine.migrations = Cow::Owned(spine.iter().filter(|m| m.version == SPINE_MIGRATION).cloned().collect());
    spine.run(&mut db.connect().await).await.unwrap();
    let hash = bcrypt::hash("spine-password", 4).unwrap();
    let mut conn = db.connect().await;
    sqlx::query(
        r#"INSERT INTO "user" (id, email, hashed_password, full_name, created_at)
           VALUES ('11111111-1111-4111-8111-111111111111', 'Mixed.Case@Example.com', $1, 'Spine User',
                   '2024-12-02 10:00:00')"#,
    )
    .bind(&hash)
    .execute(&mut conn)
    .await
    .unwrap();
    conn.execute(
        r#"INSERT INTO item (id, title, description, owner_id, created_at)
           VALUES ('22222222-2222-4222-8222-222222222222', 'kept', 'from the spine',
                   '11111111-1111-4111-8111-111111111111', '2024-12-02 11:30:00')"#,
    )
    .await
    .unwrap();

    let host = start(&db).await;
    let (email, created): (String, String) = sqlx::query_as(
        r#"SELECT email, to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') FROM "user"
           WHERE id = '11111111-1111-4111-8111-111111111111'"#,
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!((email.as_str(), created.as_str()), ("mixed.case@example.com", "2024-12-02 10:00:00"));
    let item: (String, String) = sqlx::query_as(
        "SELECT title, to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') FROM item WHERE owner_id = \
         '11111111-1111-4111-8111-111111111111'",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(item, ("kept".to_owned(), "2024-12-02 11:30:00".to_owned()), "times were UTC and stay so");

    // The old cost-4 hash logs in, in any case, and is replaced at cost 12.
    let (status, body) = login(&host, "MIXED.case@example.com", "spine-password").await;
    assert_eq!(status, 200, "{body}");
    assert!(stored_hash(&db, "mixed.case@example.com").await.starts_with("$2b$12$"));
    host.shutdown().await;

    // The migration sqlx's runner applied was adopted, not run again;
    // starting again applies nothing twice.
    let adopted: Vec<i64> = sqlx::query_scalar(
        "SELECT m.version FROM gatehouse_migrations m JOIN _sqlx_migrations s USING (version) \
         WHERE m.component = 'users' ORDER BY 1",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    assert_eq!(adopted, [SPINE_MIGRATION]);
    let host = start(&db).await;
    let applied: i64 = sqlx::query_scalar("SELECT count(*) FROM gatehouse_migrations WHERE component = 'users'")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(applied as usize, Migrator::new(migrations_dir()).await.unwrap().iter().count());
    host.shutdown().await;
}

/// What `gatehouse_migrations` holds, as (component, version).
async fn recorded(db: &TestDatabase) -> Vec<(String, i64)> {
    sqlx::query_as("SELECT component, version FROM gatehouse_migrations ORDER BY version, component")
        .fetch_all(&mut db.connect().await)
        .await
        .unwrap()
}

fn urls(db: &TestDatabase) -> BTreeMap<String, String> {
    BTreeMap::from([("app".to_owned(), db.url.clone())])
}

#[tokio::test]
async fn components_migrate_one_database_each_with_its_own_numbering_and_runs_do_not_collide() {
    let db = TestDatabase::create().await;
    let manifest = services_manifest("", 4);
    // Two setup jobs at once (two Helm releases, or a retried Job): each
    // migration runs once, whoever gets there first.
    let urls = urls(&db);
    let (a, b) = tokio::join!(host::migrations::apply(&manifest, &urls), host::migrations::apply(&manifest, &urls));
    let (a, b) = (a.unwrap(), b.unwrap());
    let services = Migrator::new(migrations_dir()).await.unwrap().iter().count();
    assert_eq!(a.len() + b.len(), services + 1, "{a:?} {b:?}");
    assert!(a.is_empty() || b.is_empty(), "one run did everything, the other nothing: {a:?} {b:?}");

    // The guest's first migration has the same version as one of the
    // users service's: both are there, and so is the guest's table.
    let recorded = recorded(&db).await;
    assert!(recorded.contains(&("users".to_owned(), SPINE_MIGRATION)), "{recorded:?}");
    assert!(recorded.contains(&("guest".to_owned(), SPINE_MIGRATION)), "{recorded:?}");
    let notes: i64 =
        sqlx::query_scalar("SELECT count(*) FROM guest_note").fetch_one(&mut db.connect().await).await.unwrap();
    assert_eq!(notes, 0);
    assert!(host::migrations::apply(&manifest, &urls).await.unwrap().is_empty(), "nothing twice");
}

#[tokio::test]
async fn a_migration_changed_after_it_ran_stops_the_run_and_a_failing_one_leaves_nothing_half_done() {
    let db = TestDatabase::create().await;
    let dir = std::env::temp_dir().join(format!("gatehouse-migrations-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let first = dir.join("1_first.sql");
    std::fs::write(&first, "CREATE TABLE first_table (id INT);").unwrap();
    let text = format!(
        "[database.app]\nurl_env = \"X\"\n[component.one]\nroute = \"/one/...\"\nfile = \"one.wasm\"\n\
         databases = [\"app\"]\n[component.one.migrations]\napp = {:?}\n",
        dir.display().to_string()
    );
    let manifest = host::Manifest::parse(&text, &dir).unwrap();
    assert_eq!(host::migrations::apply(&manifest, &urls(&db)).await.unwrap().len(), 1);

    std::fs::write(&first, "CREATE TABLE first_table (id BIGINT);").unwrap();
    let err = format!("{:#}", host::migrations::apply(&manifest, &urls(&db)).await.unwrap_err());
    assert!(err.contains("component `one`: migration 1 (first) was changed after it was applied"), "{err}");

    // A migration failing half-way is rolled back whole and not recorded.
    std::fs::write(&first, "CREATE TABLE first_table (id INT);").unwrap();
    std::fs::write(dir.join("2_second.sql"), "CREATE TABLE second_table (id INT);\nSELECT no_such_function();")
        .unwrap();
    let err = format!("{:#}", host::migrations::apply(&manifest, &urls(&db)).await.unwrap_err());
    assert!(err.contains("migration 2 (second)"), "{err}");
    let second: Option<String> = sqlx::query_scalar("SELECT to_regclass('second_table')::text")
        .fetch_one(&mut db.connect().await)
        .await
        .unwrap();
    assert_eq!(second, None, "the failed migration's table is gone with it");
    assert_eq!(recorded(&db).await, [("one".to_owned(), 1)]);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The template's tables as its alembic migrations leave them.
const TEMPLATE_SCHEMA: &str = r#"
    CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL, CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num));
    INSERT INTO alembic_version VALUES ('fe56fa70289e');
    CREATE TABLE "user" (
        email VARCHAR(255) NOT NULL,
        is_active BOOLEAN NOT NULL,
        is_superuser BOOLEAN NOT NULL,
        full_name VARCHAR(255),
        hashed_password VARCHAR NOT NULL,
        id UUID NOT NULL,
        created_at TIMESTAMP WITH TIME ZONE,
        CONSTRAINT user_pkey PRIMARY KEY (id)
    );
    CREATE UNIQUE INDEX ix_user_email ON "user" (email);
    CREATE TABLE item (
        description VARCHAR(255),
        title VARCHAR(255) NOT NULL,
        id UUID NOT NULL,
        owner_id UUID NOT NULL,
        created_at TIMESTAMP WITH TIME ZONE,
        CONSTRAINT item_pkey PRIMARY KEY (id),
        CONSTRAINT item_owner_id_fkey FOREIGN KEY (owner_id) REFERENCES "user" (id) ON DELETE CASCADE
    );
"#;

/// An argon2id hash as the template writes it (pwdlib's defaults:
/// m=65536 KiB, t=3, p=4).
fn template_hash(password: &str) -> String {
    use argon2::password_hash::{PasswordHasher, SaltString};
    let salt = SaltString::encode_b64(uuid::Uuid::new_v4().as_bytes()).unwrap();
    let params = argon2::Params::new(65536, 3, 4, None).unwrap();
    let argon = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    argon.hash_password(password.as_bytes(), &salt).unwrap().to_string()
}

#[tokio::test]
async fn a_template_database_is_adopted_and_its_argon2_users_log_in() {
    let db = TestDatabase::create().await;
    let mut conn = db.connect().await;
    conn.execute(TEMPLATE_SCHEMA).await.unwrap();
    let hash = template_hash("template-password");
    assert!(hash.starts_with("$argon2id$v=19$m=65536,t=3,p=4$"), "{hash}");
    sqlx::query(
        r#"INSERT INTO "user" (email, is_active, is_superuser, full_name, hashed_password, id, created_at)
           VALUES ('Template.User@example.com', true, false, 'From The Template', $1,
                   '33333333-3333-4333-8333-333333333333', '2025-06-01 08:00:00+00')"#,
    )
    .bind(&hash)
    .execute(&mut conn)
    .await
    .unwrap();
    conn.execute(
        r#"INSERT INTO item (description, title, id, owner_id, created_at)
           VALUES ('made by FastAPI', 'template item', '44444444-4444-4444-8444-444444444444',
                   '33333333-3333-4333-8333-333333333333', NULL)"#,
    )
    .await
    .unwrap();

    let host = start(&db).await;
    let leftovers: Vec<String> = sqlx::query_scalar(
        "SELECT tablename::text FROM pg_tables WHERE schemaname = 'public' AND \
         (tablename LIKE 'template_%' OR tablename = 'alembic_version')",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    let item: (String, String) =
        sqlx::query_as("SELECT title, owner_id::text FROM item WHERE id = '44444444-4444-4444-8444-444444444444'")
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert_eq!(item, ("template item".to_owned(), "33333333-3333-4333-8333-333333333333".to_owned()));

    let email = "template.user@example.com";
    let (status, _) = login(&host, email, "wrong-password").await;
    assert_eq!(status, 400);
    assert_eq!(stored_hash(&db, email).await, hash, "a failed login changes nothing");
    let (status, body) = login(&host, "Template.User@example.com", "template-password").await;
    assert_eq!(status, 200, "{body}");
    let rehashed = stored_hash(&db, email).await;
    assert!(rehashed.starts_with("$2b$12$"), "rehashed to bcrypt: {rehashed}");
    let (status, _) = login(&host, email, "template-password").await;
    assert_eq!(status, 200, "the bcrypt hash works too");
    host.shutdown().await;
}
