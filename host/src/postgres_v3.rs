//! `spin:postgres/postgres@3.0.0` (spin-sdk 5's `pg3`), served by the 4.x
//! implementation: parameters are widened to 4.x values, results narrowed
//! back. A column 3.0.0 has no type for (UUID, JSONB, numeric, arrays,
//! ranges, intervals) comes back as `unsupported`, as on Spin.

// Results carry the WIT `error` type, which goes back to the guest as it is.
#![allow(clippy::result_large_err)]

use wasmtime::component::Resource;

use crate::bindings::spin::postgres3_0_0::postgres as v3;
use crate::bindings::spin::postgres4_2_0::postgres as v4;
use crate::postgres::{GuestConnection, HasPostgres, PostgresView};

pub fn add_to_linker<T: Send + 'static>(
    linker: &mut wasmtime::component::Linker<T>,
    view: fn(&mut T) -> PostgresView<'_>,
) -> wasmtime::Result<()> {
    v3::add_to_linker::<T, HasPostgres>(linker, view)
}

impl v3::Host for PostgresView<'_> {}

impl v3::HostConnection for PostgresView<'_> {
    async fn open(&mut self, address: String) -> wasmtime::Result<Result<Resource<GuestConnection>, v3::Error>> {
        Ok(PostgresView::open(self, &address).await?.map_err(error))
    }

    async fn query(
        &mut self,
        conn: Resource<GuestConnection>,
        statement: String,
        params: Vec<v3::ParameterValue>,
    ) -> wasmtime::Result<Result<v3::RowSet, v3::Error>> {
        let params = params.into_iter().map(parameter).collect();
        Ok(PostgresView::query(self, &conn, &statement, params).await?.map(row_set).map_err(error))
    }

    async fn execute(
        &mut self,
        conn: Resource<GuestConnection>,
        statement: String,
        params: Vec<v3::ParameterValue>,
    ) -> wasmtime::Result<Result<u64, v3::Error>> {
        let params = params.into_iter().map(parameter).collect();
        Ok(PostgresView::execute(self, &conn, &statement, params).await?.map_err(error))
    }

    async fn drop(&mut self, conn: Resource<GuestConnection>) -> wasmtime::Result<()> {
        self.close(conn)
    }
}

fn parameter(p: v3::ParameterValue) -> v4::ParameterValue {
    use v3::ParameterValue as P;
    match p {
        P::Boolean(v) => v4::ParameterValue::Boolean(v),
        P::Int8(v) => v4::ParameterValue::Int8(v),
        P::Int16(v) => v4::ParameterValue::Int16(v),
        P::Int32(v) => v4::ParameterValue::Int32(v),
        P::Int64(v) => v4::ParameterValue::Int64(v),
        P::Floating32(v) => v4::ParameterValue::Floating32(v),
        P::Floating64(v) => v4::ParameterValue::Floating64(v),
        P::Str(v) => v4::ParameterValue::Str(v),
        P::Binary(v) => v4::ParameterValue::Binary(v),
        P::Date(v) => v4::ParameterValue::Date(v),
        P::Time(v) => v4::ParameterValue::Time(v),
        P::Datetime(v) => v4::ParameterValue::Datetime(v),
        P::Timestamp(v) => v4::ParameterValue::Timestamp(v),
        P::DbNull => v4::ParameterValue::DbNull,
    }
}

fn row_set(set: v4::RowSet) -> v3::RowSet {
    v3::RowSet {
        columns: set
            .columns
            .into_iter()
            .map(|c| v3::Column { name: c.name, data_type: data_type(c.data_type) })
            .collect(),
        rows: set.rows.into_iter().map(|row| row.into_iter().map(value).collect()).collect(),
    }
}

fn data_type(t: v4::DbDataType) -> v3::DbDataType {
    use v4::DbDataType as T;
    match t {
        T::Boolean => v3::DbDataType::Boolean,
        T::Int8 => v3::DbDataType::Int8,
        T::Int16 => v3::DbDataType::Int16,
        T::Int32 => v3::DbDataType::Int32,
        T::Int64 => v3::DbDataType::Int64,
        T::Floating32 => v3::DbDataType::Floating32,
        T::Floating64 => v3::DbDataType::Floating64,
        T::Str => v3::DbDataType::Str,
        T::Binary => v3::DbDataType::Binary,
        T::Date => v3::DbDataType::Date,
        T::Time => v3::DbDataType::Time,
        T::Datetime => v3::DbDataType::Datetime,
        T::Timestamp => v3::DbDataType::Timestamp,
        _ => v3::DbDataType::Other,
    }
}

fn value(v: v4::DbValue) -> v3::DbValue {
    use v4::DbValue as V;
    match v {
        V::Boolean(v) => v3::DbValue::Boolean(v),
        V::Int8(v) => v3::DbValue::Int8(v),
        V::Int16(v) => v3::DbValue::Int16(v),
        V::Int32(v) => v3::DbValue::Int32(v),
        V::Int64(v) => v3::DbValue::Int64(v),
        V::Floating32(v) => v3::DbValue::Floating32(v),
        V::Floating64(v) => v3::DbValue::Floating64(v),
        V::Str(v) => v3::DbValue::Str(v),
        V::Binary(v) => v3::DbValue::Binary(v),
        V::Date(v) => v3::DbValue::Date(v),
        V::Time(v) => v3::DbValue::Time(v),
        V::Datetime(v) => v3::DbValue::Datetime(v),
        V::Timestamp(v) => v3::DbValue::Timestamp(v),
        V::DbNull => v3::DbValue::DbNull,
        _ => v3::DbValue::Unsupported,
    }
}

/// 4.x errors in 3.0.0's terms: a database error becomes its text.
fn error(e: v4::Error) -> v3::Error {
    match e {
        v4::Error::ConnectionFailed(m) => v3::Error::ConnectionFailed(m),
        v4::Error::BadParameter(m) => v3::Error::BadParameter(m),
        v4::Error::QueryFailed(v4::QueryError::Text(m)) => v3::Error::QueryFailed(m),
        v4::Error::QueryFailed(v4::QueryError::DbError(db)) => v3::Error::QueryFailed(db.as_text),
        v4::Error::ValueConversionFailed(m) => v3::Error::ValueConversionFailed(m),
        v4::Error::Other(m) => v3::Error::Other(m),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_3_0_0_lacks_come_back_unsupported() {
        assert!(matches!(value(v4::DbValue::Uuid("x".into())), v3::DbValue::Unsupported));
        assert!(matches!(value(v4::DbValue::Int32(7)), v3::DbValue::Int32(7)));
        assert!(matches!(data_type(v4::DbDataType::Jsonb), v3::DbDataType::Other));
        let db = v4::DbError {
            as_text: "ERROR: syntax error".into(),
            severity: "ERROR".into(),
            code: "42601".into(),
            message: "syntax error".into(),
            detail: None,
            extras: Vec::new(),
        };
        assert!(
            matches!(error(v4::Error::QueryFailed(v4::QueryError::DbError(db))), v3::Error::QueryFailed(m) if m.contains("syntax"))
        );
    }
}
