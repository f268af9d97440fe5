//! A guest for the host's own tests: each route does one thing a real
//! service should not (trap, spin, exhaust memory) or exercises one corner
//! of the database and variables interfaces, and reports what it saw.

use serde_json::{Value, json};
use spin_sdk::http::{Request, Response};
use spin_sdk::http_component;
use spin_sdk::pg4::{Connection, DbValue, ParameterValue, PgError, QueryError};

#[http_component]
fn handle(req: Request) -> Response {
    // The path under the component's route, as Spin gives it.
    let path = req.header("spin-path-info").and_then(|v| v.as_str()).unwrap_or(req.path()).to_owned();
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    match segments.as_slice() {
        ["trap"] => panic!("this guest traps on purpose"),
        ["loop"] => match announce_spinning() {
            Ok(()) => spin_forever(),
            Err(e) => reply(500, Err(e)),
        },
        ["oom"] => exhaust_memory(),
        ["recurse", depth] => reply(200, Ok(json!(recurse(depth.parse().unwrap_or(u64::MAX), &mut [0; 256])))),
        ["huge", bytes] => huge(bytes.parse().unwrap_or(0), false),
        ["huge-declared", bytes] => huge(bytes.parse().unwrap_or(0), true),
        ["echo"] => echo(&req),
        ["variable", name] => variable(name),
        // Answers after `ms` milliseconds with the `greeting` variable as
        // its instance saw it: a request in flight across a reload.
        ["sleep", ms] => {
            std::thread::sleep(std::time::Duration::from_millis(ms.parse().unwrap_or(0)));
            variable("greeting")
        }
        ["env", name] => reply(200, Ok(json!(std::env::var(name).ok()))),
        ["outbound"] => outbound(&req),
        ["kv", "set", key, value] => reply(200, kv(|s| s.set(key, value.as_bytes()).map(|()| json!("set")))),
        ["kv", "get", key] => {
            reply(200, kv(|s| s.get(key).map(|v| json!(v.map(|b| String::from_utf8_lossy(&b).into_owned())))))
        }
        ["kv", "delete", key] => reply(200, kv(|s| s.delete(key).map(|()| json!("deleted")))),
        ["kv", "keys"] => reply(
            200,
            kv(|s| {
                s.get_keys().map(|mut keys| {
                    keys.sort();
                    json!(keys)
                })
            }),
        ),
        ["kv", "open", name] => {
            reply(200, spin_sdk::key_value::Store::open(name).map(|_| json!("opened")).map_err(|e| format!("{e:?}")))
        }
        ["db", "open", address] => reply(200, open(address).map(|_| json!("opened"))),
        ["db", "open-many", count] => reply(200, open_many(count.parse().unwrap_or(0))),
        ["db", "roundtrip"] => reply(200, roundtrip()),
        ["db", "select", count] => reply(200, select_one(count.parse().unwrap_or(0))),
        ["bcrypt-verify"] => bcrypt_verify(req.body()),
        ["db", "transaction"] => reply(200, transaction()),
        ["db", "v3"] => reply(200, older_postgres_3()),
        ["db", "v2"] => reply(200, older_postgres_2()),
        ["db", "bad-sql"] => reply(200, bad_sql()),
        ["db", "leave-transaction-open"] => reply(200, leave_transaction_open()),
        ["db", "sleep"] => reply(200, sleep_past_the_budget()),
        ["db", "count-marker"] => reply(200, count_marker()),
        ["db", "flood"] => reply(200, flood()),
        ["db", "tls"] => reply(200, tls()),
        ["db", "set-application-name"] => reply(200, set_application_name()),
        ["db", "application-name"] => reply(200, application_name()),
        _ => reply(404, Ok(json!("no such route"))),
    }
}

fn reply(status: u16, result: Result<Value, String>) -> Response {
    let body = match result {
        Ok(value) => json!({ "ok": value }),
        Err(error) => json!({ "error": error }),
    };
    Response::builder().status(status).header("content-type", "application/json").body(body.to_string()).build()
}

/// Leaves a row behind so a test can tell the guest is about to spin.
fn announce_spinning() -> Result<(), String> {
    let conn = db()?;
    conn.execute("CREATE TABLE IF NOT EXISTS guest_spinning (at timestamptz)", &[]).map_err(|e| format!("{e:?}"))?;
    conn.execute("INSERT INTO guest_spinning VALUES (now())", &[]).map_err(|e| format!("{e:?}"))?;
    Ok(())
}

fn spin_forever() -> ! {
    let mut counter: u64 = 0;
    loop {
        counter = std::hint::black_box(counter.wrapping_add(1));
    }
}

fn exhaust_memory() -> Response {
    let mut hoard: Vec<Vec<u8>> = Vec::new();
    loop {
        hoard.push(vec![1u8; 1 << 20]);
        std::hint::black_box(&hoard);
    }
}

/// Recurses `depth` times with a frame too big to be optimised away, so a
/// large depth runs out of stack.
#[inline(never)]
fn recurse(depth: u64, frame: &mut [u8; 256]) -> u64 {
    if depth == 0 {
        return u64::from(frame[0]);
    }
    let mut next = [depth as u8; 256];
    std::hint::black_box(&mut next);
    recurse(depth - 1, &mut next) + u64::from(next[1]) + u64::from(frame[2])
}

/// A body of `bytes` bytes, with its length declared in the head or not.
fn huge(bytes: usize, declared: bool) -> Response {
    let mut builder = Response::builder();
    builder.status(200).header("content-type", "application/octet-stream");
    if declared {
        builder.header("content-length", bytes.to_string());
    }
    builder.body(vec![b'x'; bytes]).build()
}

fn echo(req: &Request) -> Response {
    let header = |name: &str| req.header(name).and_then(|v| v.as_str()).map(str::to_owned);
    reply(
        200,
        Ok(json!({
            "path": req.path(),
            "query": req.query(),
            "spin_path_info": header("spin-path-info"),
            "spin": req
                .headers()
                .filter(|(name, _)| name.starts_with("spin-"))
                .map(|(name, value)| (name.to_owned(), json!(value.as_str())))
                .collect::<serde_json::Map<_, _>>(),
            "user_id": header("x-gatehouse-user-id"),
            "request_id": header("x-request-id"),
            "body_len": req.body().len(),
        })),
    )
}

/// Runs `f` on the store `default` (`fermyon:spin/key-value@2.0.0`).
fn kv(
    f: impl FnOnce(&spin_sdk::key_value::Store) -> Result<Value, spin_sdk::key_value::Error>,
) -> Result<Value, String> {
    let store = spin_sdk::key_value::Store::open_default().map_err(|e| format!("{e:?}"))?;
    f(&store).map_err(|e| format!("{e:?}"))
}

/// Sends `GET` to the URL in the query (`?http://...`) and reports the
/// status, or the error the host gave.
fn outbound(req: &Request) -> Response {
    let url = req.query().to_owned();
    let request = Request::get(url).build();
    let result: Result<Response, _> = spin_sdk::http::run(spin_sdk::http::send(request));
    match result {
        Ok(response) => reply(200, Ok(json!({ "status": response.status() }))),
        Err(e) => reply(200, Err(format!("{e}"))),
    }
}

fn variable(name: &str) -> Response {
    match spin_sdk::variables::get(name) {
        Ok(value) => reply(200, Ok(json!(value))),
        Err(e) => reply(404, Err(format!("{e:?}"))),
    }
}

fn open(address: &str) -> Result<Connection, String> {
    Connection::open(address).map_err(|e| format!("{e:?}"))
}

/// Holds `count` connections at once; reports how many it got.
fn open_many(count: usize) -> Result<Value, String> {
    let mut held = Vec::new();
    for i in 0..count {
        held.push(db().map_err(|e| format!("connection {}: {e}", i + 1))?);
    }
    Ok(json!(held.len()))
}

fn db() -> Result<Connection, String> {
    let address = spin_sdk::variables::get("database").map_err(|e| format!("{e:?}"))?;
    open(&address)
}

/// Opens the database and runs `SELECT 1` `count` times on that one
/// connection: what one host database call costs, for the benchmarks.
fn select_one(count: u32) -> Result<Value, String> {
    let conn = db()?;
    for _ in 0..count {
        conn.query("SELECT 1", &[]).map_err(|e| format!("{e:?}"))?;
    }
    Ok(json!(count))
}

/// Checks a password (the body's first line) against a bcrypt hash (its
/// second) inside the component, as the auth service does at login.
fn bcrypt_verify(body: &[u8]) -> Response {
    let text = String::from_utf8_lossy(body);
    match text.split_once('\n') {
        Some((password, hash)) => {
            reply(200, bcrypt::verify(password, hash.trim()).map(|ok| json!(ok)).map_err(|e| e.to_string()))
        }
        None => reply(400, Err("the body is a password and a hash, one a line".into())),
    }
}

/// The same database through `spin:postgres@3.0.0` (spin-sdk 5's `pg3`):
/// values, types, and a syntax error, as debug text.
fn older_postgres_3() -> Result<Value, String> {
    use spin_sdk::pg3::{Connection, ParameterValue};
    let address = spin_sdk::variables::get("database").map_err(|e| format!("{e:?}"))?;
    let conn = Connection::open(&address).map_err(|e| format!("{e:?}"))?;
    let params = [ParameterValue::Int32(42), ParameterValue::Str("héllo".into()), ParameterValue::Date((2024, 2, 29))];
    let rows = conn
        .query("SELECT $1::int4 AS i, $2::text AS t, $3::date AS d, gen_random_uuid() AS u", &params)
        .map_err(|e| format!("{e:?}"))?;
    Ok(json!({
        "types": rows.columns.iter().map(|c| format!("{:?}", c.data_type)).collect::<Vec<_>>(),
        "row": rows.rows[0].iter().map(|v| format!("{v:?}")).collect::<Vec<_>>(),
        "bad_sql": format!("{:?}", conn.query("SELEC 1", &[]).map(|_| ())),
    }))
}

/// The same through `fermyon:spin/postgres@2.0.0` (spin-sdk 5's `pg`).
fn older_postgres_2() -> Result<Value, String> {
    use spin_sdk::pg::{Connection, ParameterValue};
    let address = spin_sdk::variables::get("database").map_err(|e| format!("{e:?}"))?;
    let conn = Connection::open(&address).map_err(|e| format!("{e:?}"))?;
    let params = [ParameterValue::Uint32(4_000_000_000), ParameterValue::Str("héllo".into())];
    let rows = conn
        .query("SELECT $1::int8 AS big, $2::text AS t, DATE '2024-02-29' AS d", &params)
        .map_err(|e| format!("{e:?}"))?;
    Ok(json!({
        "types": rows.columns.iter().map(|c| format!("{:?}", c.data_type)).collect::<Vec<_>>(),
        "row": rows.rows[0].iter().map(|v| format!("{v:?}")).collect::<Vec<_>>(),
        "too_big": format!("{:?}", conn.query("SELECT $1::int8", &[ParameterValue::Uint64(u64::MAX)]).map(|_| ())),
    }))
}

/// Sends one parameter of each type and reads it back, with the column
/// types the host reports: the same statement as the WASIp3 fixture's.
fn roundtrip() -> Result<Value, String> {
    use spin_sdk::pg4::{Interval, RangeBoundKind};
    let conn = db()?;
    let params = [
        ParameterValue::Int32(42),
        ParameterValue::Str("héllo".into()),
        ParameterValue::Uuid("0b6f1d8e-4c39-4f8a-9a55-3f2b1c7d9e10".into()),
        ParameterValue::Datetime((2024, 12, 1, 13, 14, 15, 0)),
        ParameterValue::Jsonb(br#"{"a":[1,2]}"#.to_vec()),
        ParameterValue::Boolean(true),
        ParameterValue::Floating64(1.5),
        ParameterValue::Decimal("12.340".into()),
        ParameterValue::Date((2024, 2, 29)),
        ParameterValue::Int64(-7),
        ParameterValue::DbNull,
        ParameterValue::ArrayStr(vec![Some("x".into()), None]),
        ParameterValue::Datetime((2024, 12, 1, 13, 14, 15, 0)),
        ParameterValue::Interval(Interval { micros: 2 * 3_600 * 1_000_000, days: 1, months: 0 }),
        ParameterValue::RangeInt32((Some((1, RangeBoundKind::Inclusive)), Some((10, RangeBoundKind::Exclusive)))),
        ParameterValue::Time((13, 14, 15, 500_000_000)),
        ParameterValue::Binary(vec![0, 1, 255]),
        ParameterValue::RangeInt64((Some((-5, RangeBoundKind::Inclusive)), None)),
        ParameterValue::RangeDecimal((
            Some(("1.5".into(), RangeBoundKind::Exclusive)),
            Some(("2.5".into(), RangeBoundKind::Inclusive)),
        )),
        ParameterValue::ArrayInt32(vec![Some(1), None, Some(3)]),
        ParameterValue::ArrayInt64(vec![Some(-1), None]),
        ParameterValue::ArrayDecimal(vec![Some("1.10".into()), None]),
        ParameterValue::Floating32(0.25),
        ParameterValue::Int16(-3),
    ];
    let rows = conn
        .query(
            "SELECT $1::int4 AS i, $2::text AS t, $3::uuid AS u, $4::timestamp AS ts, $5::jsonb AS j, \
             $6::bool AS b, $7::float8 AS f, $8::numeric AS n, $9::date AS d, $10::int8 AS l, \
             $11::uuid AS nothing, $12::text[] AS a, $13::timestamptz AS tz, $14::interval AS iv, \
             $15::int4range AS r, $16::time AS tm, $17::bytea AS by, $18::int8range AS r8, $19::numrange AS rn, \
             $20::int4[] AS ai, $21::int8[] AS al, $22::numeric[] AS an, $23::float4 AS f4, $24::int2 AS i2",
            &params,
        )
        .map_err(|e| format!("{e:?}"))?;
    let columns: Vec<Value> = rows.columns.iter().map(|c| json!([c.name, format!("{:?}", c.data_type)])).collect();
    let row: Vec<Value> = rows.rows[0].iter().map(describe).collect();
    Ok(json!({ "columns": columns, "row": row }))
}

/// A rolled-back insert leaves nothing, a committed one stays.
fn transaction() -> Result<Value, String> {
    let conn = db()?;
    let run = |sql: &str| conn.execute(sql, &[]).map_err(|e| format!("{e:?}"));
    run("CREATE TEMP TABLE tx(x int)")?;
    let mut counts = Vec::new();
    for end in ["ROLLBACK", "COMMIT"] {
        run("BEGIN")?;
        run("INSERT INTO tx VALUES (1)")?;
        run(end)?;
        let rows = conn.query("SELECT count(*) FROM tx", &[]).map_err(|e| format!("{e:?}"))?;
        counts.push(describe(&rows.rows[0][0]));
    }
    Ok(json!(counts))
}

fn describe(value: &DbValue) -> Value {
    json!(format!("{value:?}"))
}

fn bad_sql() -> Result<Value, String> {
    let conn = db()?;
    match conn.query("SELEC 1", &[]) {
        Ok(_) => Ok(json!("the server accepted bad SQL")),
        Err(PgError::QueryFailed(QueryError::DbError(e))) => Ok(json!({ "code": e.code, "message": e.message })),
        Err(other) => Err(format!("unexpected error kind: {other:?}")),
    }
}

/// Starts a transaction, writes a marker row and returns without
/// committing: the host must not hand this session to the next request.
fn leave_transaction_open() -> Result<Value, String> {
    let conn = db()?;
    conn.execute("CREATE TABLE IF NOT EXISTS guest_marker (id int)", &[]).map_err(|e| format!("{e:?}"))?;
    // A comment first: nothing may depend on reading the statement.
    conn.execute("-- a guest's note\nBEGIN", &[]).map_err(|e| format!("{e:?}"))?;
    conn.execute("INSERT INTO guest_marker VALUES (1)", &[]).map_err(|e| format!("{e:?}"))?;
    Ok(json!("left open"))
}

/// Lifts the statement timeout and sleeps for a minute: only the end of
/// the request's time budget stops it.
/// Asks for millions of rows at once: the host refuses to read more than
/// the guest could hold, and says so.
fn flood() -> Result<Value, String> {
    let conn = db()?;
    match conn.query("SELECT g, repeat('x', 100) AS pad FROM generate_series(1, 5000000) g", &[]) {
        Ok(rows) => Ok(json!({ "rows": rows.rows.len() })),
        Err(e) => Err(format!("{e:?}")),
    }
}

/// Whether the guest's session reached PostgreSQL over TLS.
fn tls() -> Result<Value, String> {
    let conn = db()?;
    let rows =
        conn.query("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()", &[]).map_err(|e| format!("{e:?}"))?;
    match rows.rows.first().and_then(|r| r.first()) {
        Some(DbValue::Boolean(ssl)) => Ok(json!(ssl)),
        other => Err(format!("unexpected: {other:?}")),
    }
}

fn sleep_past_the_budget() -> Result<Value, String> {
    let conn = db()?;
    conn.execute("SET statement_timeout = 0", &[]).map_err(|e| format!("{e:?}"))?;
    conn.query("SELECT pg_sleep(60)", &[]).map_err(|e| format!("{e:?}"))?;
    Ok(json!("slept"))
}

/// Changes a session setting and leaves it changed.
fn set_application_name() -> Result<Value, String> {
    let conn = db()?;
    conn.execute("SET application_name = 'changed by a guest'", &[]).map_err(|e| format!("{e:?}"))?;
    Ok(json!("set"))
}

/// The session's `application_name`, as the next request finds it.
fn application_name() -> Result<Value, String> {
    let conn = db()?;
    let rows = conn.query("SELECT current_setting('application_name')", &[]).map_err(|e| format!("{e:?}"))?;
    Ok(describe(&rows.rows[0][0]))
}

fn count_marker() -> Result<Value, String> {
    let conn = db()?;
    let rows = conn.query("SELECT count(*) FROM guest_marker", &[]).map_err(|e| format!("{e:?}"))?;
    // SAVEPOINT fails with 25P01 outside a transaction block.
    let outside_transaction = match conn.execute("SAVEPOINT probe", &[]) {
        Err(PgError::QueryFailed(QueryError::DbError(e))) => e.code == "25P01",
        _ => false,
    };
    Ok(json!({ "count": describe(&rows.rows[0][0]), "outside_transaction": outside_transaction }))
}
