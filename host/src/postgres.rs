//! `spin:postgres/postgres@4.2.0` (which serves 4.0.0 guests too) on a sqlx
//! pool the host owns.
//!
//! A guest opens a connection by the *name* of a database its manifest entry
//! grants ("app"); the URL and its credentials stay in the host. Each open
//! connection holds one pooled connection, so a guest's `BEGIN` ... `COMMIT`
//! run on the same session. Errors the guest caused (bad SQL, bad parameters,
//! an ungranted name) come back as WIT `error` values and never trap.

// Results carry the WIT `error` type, which goes back to the guest as it is;
// boxing it would only be undone at the boundary.
#![allow(clippy::result_large_err)]

use std::collections::BTreeMap;
use std::sync::Arc;

use sqlx::pool::PoolConnection;
use sqlx::postgres::types::{Oid, PgInterval, PgRange};
use sqlx::postgres::{PgArguments, PgRow, PgTypeInfo, PgValueRef};
use sqlx::{Arguments, Column, Executor, PgPool, Postgres, Row, TypeInfo, ValueRef};
use wasmtime::component::{Accessor, FutureReader, HasData, Resource, ResourceTable, StreamReader};

use crate::bindings::spin::postgres4_2_0::postgres::{
    self as wit, DbDataType, DbError, DbValue, Error, ParameterValue, QueryError, RangeBoundKind, RowSet,
};
use crate::host_call::traced;

/// The pools one component may use, by the names its manifest grants.
#[derive(Debug, Clone, Default)]
pub struct DatabaseGrants {
    pools: Arc<BTreeMap<String, PgPool>>,
}

impl DatabaseGrants {
    pub fn new(pools: BTreeMap<String, PgPool>) -> Self {
        Self { pools: Arc::new(pools) }
    }
}

/// A guest's open connection: one pooled session, lent for as long as the
/// guest holds the resource. Shared, so an async query can run while the
/// store goes on with the guest's other tasks.
pub struct GuestConnection {
    session: Arc<tokio::sync::Mutex<Session>>,
}

/// A pooled session, lent to a guest.
struct Session {
    /// Always there while the session lives; taken only when it ends.
    conn: Option<PoolConnection<Postgres>>,
    /// A statement was running when the session was last seen: its request
    /// ended mid-statement (the time budget ran out). Such a session is
    /// closed, so the server stops the statement, rather than drained and
    /// handed to the next request. Whatever else the guest left (an open
    /// transaction, settings) the pool undoes on release, without reading
    /// the guest's SQL to guess it.
    busy: bool,
    /// Largest result set (bytes as the server sends them) read for the
    /// guest: no more than it could hold.
    max_result_bytes: usize,
}

impl Session {
    fn conn(&mut self) -> &mut sqlx::PgConnection {
        self.conn.as_mut().expect("a live session has its connection")
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if self.busy
            && let Some(conn) = self.conn.take()
        {
            // Out of the pool at once, so its slot is free for the next
            // request, and dropped without a goodbye: a graceful close
            // would wait on a server still busy with the statement (over
            // TLS, for seconds). The server sees its client gone within a
            // second and stops the statement.
            drop(conn.detach());
        }
    }
}

/// `connection-builder` (4.1.0): an address to open, later. The address is
/// a granted name like `open`'s; a CA root is accepted and unused, as the
/// host's own pool decides how it connects.
pub struct GuestConnectionBuilder {
    address: String,
}

/// One request's use of the databases: what it may open, and how many
/// connections it holds, so one request cannot drain a pool.
pub struct RequestDatabases {
    grants: DatabaseGrants,
    open: u32,
    max_open: u32,
    max_result_bytes: usize,
}

impl RequestDatabases {
    pub fn new(grants: DatabaseGrants, max_open: u32, max_result_bytes: usize) -> Self {
        Self { grants, open: 0, max_open, max_result_bytes }
    }

    /// The pool for `address`, with one more connection counted against
    /// the request (given back by [`RequestDatabases::release`]), and the
    /// largest result its connections may read.
    fn reserve(&mut self, address: &str) -> Result<(PgPool, usize), Error> {
        let Some(pool) = self.grants.pools.get(address) else {
            return Err(Error::ConnectionFailed(format!("database `{address}` is not granted to this component")));
        };
        if self.open >= self.max_open {
            let max = self.max_open;
            return Err(Error::ConnectionFailed(format!("a request may hold at most {max} open connections")));
        }
        self.open += 1;
        Ok((pool.clone(), self.max_result_bytes))
    }

    fn release(&mut self) {
        self.open = self.open.saturating_sub(1);
    }

    /// Whether a connection is still open.
    pub fn holds_any(&self) -> bool {
        self.open > 0
    }
}

/// What the postgres interface needs from a request's store.
pub struct PostgresView<'a> {
    pub table: &'a mut ResourceTable,
    pub databases: &'a mut RequestDatabases,
}

/// Marks [`PostgresView`] as the data the generated `add_to_linker` hands
/// the implementation.
pub struct HasPostgres;

impl HasData for HasPostgres {
    type Data<'a> = PostgresView<'a>;
}

/// Links every version of the interface: 4.2.0 (serving 4.x), 3.0.0 and
/// `fermyon:spin/postgres@2.0.0`, all on the same connections.
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut wasmtime::component::Linker<T>,
    view: fn(&mut T) -> PostgresView<'_>,
) -> wasmtime::Result<()> {
    wit::add_to_linker::<T, HasPostgres>(linker, view)?;
    crate::postgres_v3::add_to_linker(linker, view)?;
    crate::postgres_v2::add_to_linker(linker, view)
}

/// Takes a pooled session for a reserved slot.
async fn acquire((pool, max_result_bytes): (PgPool, usize), address: &str) -> Result<GuestConnection, Error> {
    match pool.acquire().await {
        Ok(conn) => {
            let session = Session { conn: Some(conn), busy: false, max_result_bytes };
            Ok(GuestConnection { session: Arc::new(tokio::sync::Mutex::new(session)) })
        }
        Err(e) => {
            tracing::warn!(database = %address, error = %e, "no database connection for a guest");
            Err(Error::ConnectionFailed("database unavailable".into()))
        }
    }
}

/// The connection's operations in 4.x terms, shared by every version of
/// the interface (`postgres_v3.rs` and `postgres_v2.rs` convert to them).
impl PostgresView<'_> {
    pub(crate) async fn open(&mut self, address: &str) -> wasmtime::Result<Result<Resource<GuestConnection>, Error>> {
        let reserved = match self.databases.reserve(address) {
            Ok(reserved) => reserved,
            Err(e) => return Ok(Err(e)),
        };
        let conn = traced("postgres", "open", acquire(reserved, address)).await;
        self.admit(conn)
    }

    /// Hands a newly acquired connection to the guest, or gives back the
    /// slot [`RequestDatabases::reserve`] counted for it.
    fn admit(
        &mut self,
        conn: Result<GuestConnection, Error>,
    ) -> wasmtime::Result<Result<Resource<GuestConnection>, Error>> {
        match conn {
            Ok(conn) => Ok(Ok(self.table.push(conn)?)),
            Err(e) => {
                self.databases.release();
                Ok(Err(e))
            }
        }
    }

    fn session(&self, conn: &Resource<GuestConnection>) -> wasmtime::Result<Arc<tokio::sync::Mutex<Session>>> {
        Ok(self.table.get(conn)?.session.clone())
    }

    pub(crate) async fn query(
        &mut self,
        conn: &Resource<GuestConnection>,
        statement: &str,
        params: Vec<ParameterValue>,
    ) -> wasmtime::Result<Result<RowSet, Error>> {
        let session = self.session(conn)?;
        let mut session = session.lock().await;
        Ok(traced("postgres", "query", run_query(&mut session, statement, params)).await)
    }

    pub(crate) async fn execute(
        &mut self,
        conn: &Resource<GuestConnection>,
        statement: &str,
        params: Vec<ParameterValue>,
    ) -> wasmtime::Result<Result<u64, Error>> {
        let session = self.session(conn)?;
        let mut session = session.lock().await;
        Ok(traced("postgres", "execute", run_execute(&mut session, statement, params)).await)
    }

    pub(crate) fn close(&mut self, conn: Resource<GuestConnection>) -> wasmtime::Result<()> {
        self.table.delete(conn)?;
        self.databases.release();
        Ok(())
    }
}

impl wit::Host for PostgresView<'_> {}

impl wit::HostConnection for PostgresView<'_> {
    async fn open(&mut self, address: String) -> wasmtime::Result<Result<Resource<GuestConnection>, Error>> {
        PostgresView::open(self, &address).await
    }

    async fn query(
        &mut self,
        conn: Resource<GuestConnection>,
        statement: String,
        params: Vec<ParameterValue>,
    ) -> wasmtime::Result<Result<RowSet, Error>> {
        PostgresView::query(self, &conn, &statement, params).await
    }

    async fn execute(
        &mut self,
        conn: Resource<GuestConnection>,
        statement: String,
        params: Vec<ParameterValue>,
    ) -> wasmtime::Result<Result<u64, Error>> {
        PostgresView::execute(self, &conn, &statement, params).await
    }

    async fn drop(&mut self, conn: Resource<GuestConnection>) -> wasmtime::Result<()> {
        self.close(conn)
    }
}

impl wit::HostConnectionBuilder for PostgresView<'_> {
    async fn new(&mut self, address: String) -> wasmtime::Result<Resource<GuestConnectionBuilder>> {
        Ok(self.table.push(GuestConnectionBuilder { address })?)
    }

    async fn set_ca_root(
        &mut self,
        _builder: Resource<GuestConnectionBuilder>,
        _certificate: String,
    ) -> wasmtime::Result<Result<(), Error>> {
        Ok(Ok(()))
    }

    async fn build(
        &mut self,
        builder: Resource<GuestConnectionBuilder>,
    ) -> wasmtime::Result<Result<Resource<GuestConnection>, Error>> {
        let address = self.table.get(&builder)?.address.clone();
        PostgresView::open(self, &address).await
    }

    async fn drop(&mut self, builder: Resource<GuestConnectionBuilder>) -> wasmtime::Result<()> {
        self.table.delete(builder)?;
        Ok(())
    }
}

/// The async functions of 4.2.0 (spin-sdk 7): they run while the guest's
/// other tasks go on, so nothing of the store is held across an await.
impl<T: Send> wit::HostConnectionWithStore<T> for HasPostgres {
    async fn open_async(
        accessor: &Accessor<T, Self>,
        address: String,
    ) -> wasmtime::Result<Result<Resource<GuestConnection>, Error>> {
        open_async(accessor, address).await
    }

    async fn query_async(
        accessor: &Accessor<T, Self>,
        conn: Resource<GuestConnection>,
        statement: String,
        params: Vec<ParameterValue>,
    ) -> wasmtime::Result<Result<(Vec<wit::Column>, StreamReader<Vec<DbValue>>, FutureReader<Result<(), Error>>), Error>>
    {
        let session = accessor.with(|mut access| access.get().session(&conn))?;
        let result = run_query(&mut *session.lock().await, &statement, params).await;
        let RowSet { columns, rows } = match result {
            Ok(set) => set,
            Err(e) => return Ok(Err(e)),
        };
        // The rows are read whole before answering (as `query` does), then
        // handed over as a stream that ends cleanly.
        accessor.with(|mut access| {
            let rows = StreamReader::new(&mut access, rows)?;
            let done = FutureReader::new(&mut access, async { Ok::<_, wasmtime::Error>(Ok::<(), Error>(())) })?;
            Ok(Ok((columns, rows, done)))
        })
    }

    async fn execute_async(
        accessor: &Accessor<T, Self>,
        conn: Resource<GuestConnection>,
        statement: String,
        params: Vec<ParameterValue>,
    ) -> wasmtime::Result<Result<u64, Error>> {
        let session = accessor.with(|mut access| access.get().session(&conn))?;
        let mut session = session.lock().await;
        Ok(run_execute(&mut session, &statement, params).await)
    }
}

impl<T: Send> wit::HostConnectionBuilderWithStore<T> for HasPostgres {
    async fn build_async(
        accessor: &Accessor<T, Self>,
        builder: Resource<GuestConnectionBuilder>,
    ) -> wasmtime::Result<Result<Resource<GuestConnection>, Error>> {
        let address =
            accessor.with(|mut access| Ok::<_, wasmtime::Error>(access.get().table.get(&builder)?.address.clone()))?;
        open_async(accessor, address).await
    }
}

async fn open_async<T: Send>(
    accessor: &Accessor<T, HasPostgres>,
    address: String,
) -> wasmtime::Result<Result<Resource<GuestConnection>, Error>> {
    let reserved = match accessor.with(|mut access| access.get().databases.reserve(&address)) {
        Ok(reserved) => reserved,
        Err(e) => return Ok(Err(e)),
    };
    let conn = traced("postgres", "open", acquire(reserved, &address)).await;
    accessor.with(|mut access| access.get().admit(conn))
}

/// The answer to a statement on a session abandoned mid-result.
fn abandoned() -> Error {
    Error::ConnectionFailed("this connection was closed after a result too large to read; open another".into())
}

async fn run_query(guest: &mut Session, statement: &str, params: Vec<ParameterValue>) -> Result<RowSet, Error> {
    use futures_util::TryStreamExt as _;
    if guest.busy {
        return Err(abandoned());
    }
    let args = bind_parameters(params)?;
    guest.busy = true;
    let max = guest.max_result_bytes;
    let mut read = 0usize;
    let mut rows = Vec::new();
    let mut stream = sqlx::query_with(statement, args).fetch(guest.conn());
    let rows = loop {
        match stream.try_next().await {
            Ok(Some(row)) => {
                read += row_bytes(&row);
                if read > max {
                    // The rest is never read: `busy` stays set, so the
                    // session is closed (the server stops sending) rather
                    // than drained.
                    return Err(Error::QueryFailed(QueryError::Text(format!(
                        "the result is larger than this component may hold ({max} bytes): ask for fewer rows"
                    ))));
                }
                rows.push(row);
            }
            Ok(None) => break Ok(rows),
            Err(e) => break Err(query_error(e)),
        }
    };
    drop(stream);
    let columns = match &rows {
        Ok(rows) if !rows.is_empty() => rows[0].columns().iter().map(|c| column(c.name(), c.type_info())).collect(),
        // Without a row there are no column descriptions to read; ask for them.
        Ok(_) => match guest.conn().describe(statement).await.map_err(query_error) {
            Ok(described) => described.columns().iter().map(|c| column(c.name(), c.type_info())).collect(),
            Err(e) => {
                guest.busy = false;
                return Err(e);
            }
        },
        Err(_) => Vec::new(),
    };
    guest.busy = false;
    let rows = rows?.iter().map(decode_row).collect::<Result<_, _>>()?;
    Ok(RowSet { columns, rows })
}

/// What a row costs to hold, about: its values as sent, and a little for
/// each.
fn row_bytes(row: &PgRow) -> usize {
    (0..row.len())
        .map(|i| 16 + row.try_get_raw(i).ok().and_then(|v| v.as_bytes().ok().map(<[u8]>::len)).unwrap_or(0))
        .sum()
}

async fn run_execute(guest: &mut Session, statement: &str, params: Vec<ParameterValue>) -> Result<u64, Error> {
    if guest.busy {
        return Err(abandoned());
    }
    let args = bind_parameters(params)?;
    guest.busy = true;
    let done = sqlx::query_with(statement, args).execute(guest.conn()).await.map_err(query_error);
    guest.busy = false;
    Ok(done?.rows_affected())
}

fn query_error(e: sqlx::Error) -> Error {
    match e {
        sqlx::Error::Database(db) => {
            let pg = db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>();
            Error::QueryFailed(QueryError::DbError(DbError {
                as_text: db.to_string(),
                severity: pg.map(|p| format!("{:?}", p.severity()).to_uppercase()).unwrap_or_default(),
                code: db.code().map(|c| c.into_owned()).unwrap_or_default(),
                message: db.message().to_owned(),
                detail: pg.and_then(|p| p.detail().map(str::to_owned)),
                extras: Vec::new(),
            }))
        }
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
            tracing::warn!(error = %e, "database connection lost during a guest query");
            Error::ConnectionFailed("database unavailable".into())
        }
        sqlx::Error::ColumnDecode { .. } | sqlx::Error::Decode(_) => Error::ValueConversionFailed(e.to_string()),
        other => Error::QueryFailed(QueryError::Text(other.to_string())),
    }
}

/// A SQL NULL whose type the server infers from context (OID 0), so a null
/// fits a column of any type.
struct UntypedNull;

impl sqlx::Type<Postgres> for UntypedNull {
    fn type_info() -> PgTypeInfo {
        PgTypeInfo::with_oid(Oid(0))
    }
}

impl sqlx::Encode<'_, Postgres> for UntypedNull {
    fn encode_by_ref(
        &self,
        _: &mut sqlx::postgres::PgArgumentBuffer,
    ) -> Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
        Ok(sqlx::encode::IsNull::Yes)
    }
}

fn bad(index: usize, what: impl std::fmt::Display) -> Error {
    Error::BadParameter(format!("parameter ${}: {what}", index + 1))
}

fn bind_parameters(params: Vec<ParameterValue>) -> Result<PgArguments, Error> {
    let mut args = PgArguments::default();
    for (i, param) in params.into_iter().enumerate() {
        let added = match param {
            ParameterValue::Boolean(v) => args.add(v),
            ParameterValue::Int8(v) => args.add(v),
            ParameterValue::Int16(v) => args.add(v),
            ParameterValue::Int32(v) => args.add(v),
            ParameterValue::Int64(v) => args.add(v),
            ParameterValue::Floating32(v) => args.add(v),
            ParameterValue::Floating64(v) => args.add(v),
            ParameterValue::Str(v) => args.add(v),
            ParameterValue::Binary(v) => args.add(v),
            ParameterValue::Date((y, m, d)) => args.add(date(y, m, d).ok_or_else(|| bad(i, "invalid date"))?),
            ParameterValue::Time((h, m, s, ns)) => args.add(time(h, m, s, ns).ok_or_else(|| bad(i, "invalid time"))?),
            ParameterValue::Datetime((y, mo, d, h, mi, s, ns)) => {
                let dt = date(y, mo, d).zip(time(h, mi, s, ns)).ok_or_else(|| bad(i, "invalid datetime"))?;
                args.add(dt.0.and_time(dt.1))
            }
            ParameterValue::Timestamp(secs) => {
                args.add(chrono::DateTime::from_timestamp(secs, 0).ok_or_else(|| bad(i, "timestamp out of range"))?)
            }
            ParameterValue::Uuid(v) => args.add(uuid::Uuid::parse_str(&v).map_err(|e| bad(i, e))?),
            ParameterValue::Jsonb(bytes) => {
                let value: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| bad(i, e))?;
                args.add(sqlx::types::Json(value))
            }
            ParameterValue::Decimal(v) => args.add(parse_decimal(&v).map_err(|e| bad(i, e))?),
            ParameterValue::RangeInt32((lower, upper)) => args.add(range(lower, upper)),
            ParameterValue::RangeInt64((lower, upper)) => args.add(range(lower, upper)),
            ParameterValue::RangeDecimal((lower, upper)) => {
                let parse = |b: Option<(String, RangeBoundKind)>| {
                    b.map(|(v, k)| parse_decimal(&v).map(|d| (d, k))).transpose().map_err(|e| bad(i, e))
                };
                args.add(range(parse(lower)?, parse(upper)?))
            }
            ParameterValue::ArrayInt32(v) => args.add(v),
            ParameterValue::ArrayInt64(v) => args.add(v),
            ParameterValue::ArrayDecimal(v) => args.add(
                v.iter()
                    .map(|d| d.as_deref().map(parse_decimal).transpose())
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| bad(i, e))?,
            ),
            ParameterValue::ArrayStr(v) => args.add(v),
            ParameterValue::Interval(v) => {
                args.add(PgInterval { months: v.months, days: v.days, microseconds: v.micros })
            }
            ParameterValue::DbNull => args.add(UntypedNull),
        };
        added.map_err(|e| bad(i, e))?;
    }
    Ok(args)
}

fn parse_decimal(text: &str) -> Result<rust_decimal::Decimal, rust_decimal::Error> {
    text.parse()
}

fn date(y: i32, m: u8, d: u8) -> Option<chrono::NaiveDate> {
    chrono::NaiveDate::from_ymd_opt(y, m.into(), d.into())
}

fn time(h: u8, m: u8, s: u8, ns: u32) -> Option<chrono::NaiveTime> {
    chrono::NaiveTime::from_hms_nano_opt(h.into(), m.into(), s.into(), ns)
}

fn range<T>(lower: Option<(T, RangeBoundKind)>, upper: Option<(T, RangeBoundKind)>) -> PgRange<T> {
    use std::ops::Bound;
    let bound = |b: Option<(T, RangeBoundKind)>| match b {
        None => Bound::Unbounded,
        Some((v, RangeBoundKind::Inclusive)) => Bound::Included(v),
        Some((v, RangeBoundKind::Exclusive)) => Bound::Excluded(v),
    };
    PgRange { start: bound(lower), end: bound(upper) }
}

fn unrange<T, U>(bound: std::ops::Bound<T>, f: impl Fn(T) -> U) -> Option<(U, RangeBoundKind)> {
    use std::ops::Bound;
    match bound {
        Bound::Unbounded => None,
        Bound::Included(v) => Some((f(v), RangeBoundKind::Inclusive)),
        Bound::Excluded(v) => Some((f(v), RangeBoundKind::Exclusive)),
    }
}

fn column(name: &str, type_info: &PgTypeInfo) -> wit::Column {
    wit::Column { name: name.to_owned(), data_type: data_type(type_info) }
}

/// The WIT type of a PostgreSQL column type.
fn data_type(type_info: &PgTypeInfo) -> DbDataType {
    match type_info.name() {
        "BOOL" => DbDataType::Boolean,
        "\"CHAR\"" => DbDataType::Int8,
        "INT2" => DbDataType::Int16,
        "INT4" => DbDataType::Int32,
        "INT8" => DbDataType::Int64,
        "FLOAT4" => DbDataType::Floating32,
        "FLOAT8" => DbDataType::Floating64,
        "TEXT" | "VARCHAR" | "BPCHAR" | "NAME" | "CITEXT" => DbDataType::Str,
        "BYTEA" => DbDataType::Binary,
        "DATE" => DbDataType::Date,
        "TIME" => DbDataType::Time,
        // Date-times cross the interface as UTC without a zone.
        "TIMESTAMP" | "TIMESTAMPTZ" => DbDataType::Datetime,
        "UUID" => DbDataType::Uuid,
        "JSON" | "JSONB" => DbDataType::Jsonb,
        "NUMERIC" => DbDataType::Decimal,
        "INT4RANGE" => DbDataType::RangeInt32,
        "INT8RANGE" => DbDataType::RangeInt64,
        "NUMRANGE" => DbDataType::RangeDecimal,
        "INT4[]" => DbDataType::ArrayInt32,
        "INT8[]" => DbDataType::ArrayInt64,
        "NUMERIC[]" => DbDataType::ArrayDecimal,
        "TEXT[]" | "VARCHAR[]" => DbDataType::ArrayStr,
        "INTERVAL" => DbDataType::Interval,
        other => DbDataType::Other(other.to_owned()),
    }
}

fn decode_row(row: &PgRow) -> Result<Vec<DbValue>, Error> {
    (0..row.len()).map(|i| decode_value(row, i)).collect()
}

fn decode_value(row: &PgRow, i: usize) -> Result<DbValue, Error> {
    let raw: PgValueRef<'_> = row.try_get_raw(i).map_err(|e| Error::ValueConversionFailed(e.to_string()))?;
    if raw.is_null() {
        return Ok(DbValue::DbNull);
    }
    let kind = data_type(&raw.type_info());
    fn get<'r, T: sqlx::Decode<'r, Postgres> + sqlx::Type<Postgres>>(row: &'r PgRow, i: usize) -> Result<T, Error> {
        row.try_get_unchecked(i).map_err(|e| Error::ValueConversionFailed(e.to_string()))
    }
    Ok(match kind {
        DbDataType::Boolean => DbValue::Boolean(get(row, i)?),
        DbDataType::Int8 => DbValue::Int8(get(row, i)?),
        DbDataType::Int16 => DbValue::Int16(get(row, i)?),
        DbDataType::Int32 => DbValue::Int32(get(row, i)?),
        DbDataType::Int64 => DbValue::Int64(get(row, i)?),
        DbDataType::Floating32 => DbValue::Floating32(get(row, i)?),
        DbDataType::Floating64 => DbValue::Floating64(get(row, i)?),
        DbDataType::Str => DbValue::Str(get(row, i)?),
        DbDataType::Binary => DbValue::Binary(get(row, i)?),
        DbDataType::Date => {
            use chrono::Datelike;
            let d: chrono::NaiveDate = get(row, i)?;
            DbValue::Date((d.year(), d.month() as u8, d.day() as u8))
        }
        DbDataType::Time => DbValue::Time(time_tuple(get(row, i)?)),
        // `data_type` never yields Timestamp; both arrive as date-times.
        DbDataType::Datetime | DbDataType::Timestamp => {
            use chrono::Datelike;
            let dt: chrono::NaiveDateTime = if raw.type_info().name() == "TIMESTAMPTZ" {
                get::<chrono::DateTime<chrono::Utc>>(row, i)?.naive_utc()
            } else {
                get(row, i)?
            };
            let (h, mi, s, ns) = time_tuple(dt.time());
            DbValue::Datetime((dt.year(), dt.month() as u8, dt.day() as u8, h, mi, s, ns))
        }
        DbDataType::Uuid => DbValue::Uuid(get::<uuid::Uuid>(row, i)?.to_string()),
        DbDataType::Jsonb => {
            let value: sqlx::types::JsonValue = get(row, i)?;
            DbValue::Jsonb(serde_json::to_vec(&value).map_err(|e| Error::ValueConversionFailed(e.to_string()))?)
        }
        DbDataType::Decimal => DbValue::Decimal(get::<rust_decimal::Decimal>(row, i)?.to_string()),
        DbDataType::RangeInt32 => {
            let r: PgRange<i32> = get(row, i)?;
            DbValue::RangeInt32((unrange(r.start, |v| v), unrange(r.end, |v| v)))
        }
        DbDataType::RangeInt64 => {
            let r: PgRange<i64> = get(row, i)?;
            DbValue::RangeInt64((unrange(r.start, |v| v), unrange(r.end, |v| v)))
        }
        DbDataType::RangeDecimal => {
            let r: PgRange<rust_decimal::Decimal> = get(row, i)?;
            let text = |d: rust_decimal::Decimal| d.to_string();
            DbValue::RangeDecimal((unrange(r.start, text), unrange(r.end, text)))
        }
        DbDataType::ArrayInt32 => DbValue::ArrayInt32(get(row, i)?),
        DbDataType::ArrayInt64 => DbValue::ArrayInt64(get(row, i)?),
        DbDataType::ArrayDecimal => DbValue::ArrayDecimal(
            get::<Vec<Option<rust_decimal::Decimal>>>(row, i)?.into_iter().map(|d| d.map(|d| d.to_string())).collect(),
        ),
        DbDataType::ArrayStr => DbValue::ArrayStr(get(row, i)?),
        DbDataType::Interval => {
            let v: PgInterval = get(row, i)?;
            DbValue::Interval(wit::Interval { micros: v.microseconds, days: v.days, months: v.months })
        }
        DbDataType::Other(_) => DbValue::Unsupported(raw.as_bytes().map(<[u8]>::to_vec).unwrap_or_default()),
    })
}

fn time_tuple(t: chrono::NaiveTime) -> (u8, u8, u8, u32) {
    use chrono::Timelike;
    (t.hour() as u8, t.minute() as u8, t.second() as u8, t.nanosecond())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_parameters_are_guest_errors() {
        let err = bind_parameters(vec![ParameterValue::Int32(1), ParameterValue::Uuid("nope".into())]).unwrap_err();
        assert!(matches!(&err, Error::BadParameter(m) if m.starts_with("parameter $2")), "{err:?}");
        let err = bind_parameters(vec![ParameterValue::Date((2024, 2, 30))]).unwrap_err();
        assert!(matches!(err, Error::BadParameter(_)));
        let err = bind_parameters(vec![ParameterValue::Decimal("1.2.3".into())]).unwrap_err();
        assert!(matches!(err, Error::BadParameter(_)));
    }

    #[test]
    fn column_types_map_to_wit_types() {
        assert!(matches!(data_type(&PgTypeInfo::with_name("UUID")), DbDataType::Uuid));
        assert!(matches!(data_type(&PgTypeInfo::with_name("TIMESTAMPTZ")), DbDataType::Datetime));
        assert!(matches!(data_type(&PgTypeInfo::with_name("box")), DbDataType::Other(n) if n == "box"));
    }
}
