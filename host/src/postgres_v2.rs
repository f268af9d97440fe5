//! `fermyon:spin/postgres@2.0.0` (spin-sdk 5's `pg`, with
//! `fermyon:spin/rdbms-types`), served by the 4.x implementation. Unsigned
//! parameters are sent as the next wider signed type (a `u64` past
//! `i64::MAX` is a bad parameter); columns 2.0.0 has no type for (dates,
//! times, UUID, JSONB, ...) come back as `unsupported`, as on Spin.

// Results carry the WIT `error` type, which goes back to the guest as it is.
#![allow(clippy::result_large_err)]

use wasmtime::component::Resource;

use crate::bindings::fermyon::spin::postgres as v2;
use crate::bindings::fermyon::spin::rdbms_types as types;
use crate::bindings::spin::postgres4_2_0::postgres as v4;
use crate::postgres::{GuestConnection, HasPostgres, PostgresView};

pub fn add_to_linker<T: Send + 'static>(
    linker: &mut wasmtime::component::Linker<T>,
    view: fn(&mut T) -> PostgresView<'_>,
) -> wasmtime::Result<()> {
    types::add_to_linker::<T, HasPostgres>(linker, view)?;
    v2::add_to_linker::<T, HasPostgres>(linker, view)
}

impl types::Host for PostgresView<'_> {}

impl v2::Host for PostgresView<'_> {}

impl v2::HostConnection for PostgresView<'_> {
    async fn open(&mut self, address: String) -> wasmtime::Result<Result<Resource<GuestConnection>, types::Error>> {
        Ok(PostgresView::open(self, &address).await?.map_err(error))
    }

    async fn query(
        &mut self,
        conn: Resource<GuestConnection>,
        statement: String,
        params: Vec<types::ParameterValue>,
    ) -> wasmtime::Result<Result<types::RowSet, types::Error>> {
        let params = match parameters(params) {
            Ok(params) => params,
            Err(e) => return Ok(Err(e)),
        };
        Ok(PostgresView::query(self, &conn, &statement, params).await?.map(row_set).map_err(error))
    }

    async fn execute(
        &mut self,
        conn: Resource<GuestConnection>,
        statement: String,
        params: Vec<types::ParameterValue>,
    ) -> wasmtime::Result<Result<u64, types::Error>> {
        let params = match parameters(params) {
            Ok(params) => params,
            Err(e) => return Ok(Err(e)),
        };
        Ok(PostgresView::execute(self, &conn, &statement, params).await?.map_err(error))
    }

    async fn drop(&mut self, conn: Resource<GuestConnection>) -> wasmtime::Result<()> {
        self.close(conn)
    }
}

fn parameters(params: Vec<types::ParameterValue>) -> Result<Vec<v4::ParameterValue>, types::Error> {
    use types::ParameterValue as P;
    params
        .into_iter()
        .enumerate()
        .map(|(i, p)| {
            Ok(match p {
                P::Boolean(v) => v4::ParameterValue::Boolean(v),
                P::Int8(v) => v4::ParameterValue::Int8(v),
                P::Int16(v) => v4::ParameterValue::Int16(v),
                P::Int32(v) => v4::ParameterValue::Int32(v),
                P::Int64(v) => v4::ParameterValue::Int64(v),
                P::Uint8(v) => v4::ParameterValue::Int16(v.into()),
                P::Uint16(v) => v4::ParameterValue::Int32(v.into()),
                P::Uint32(v) => v4::ParameterValue::Int64(v.into()),
                P::Uint64(v) => v4::ParameterValue::Int64(i64::try_from(v).map_err(|_| {
                    types::Error::BadParameter(format!("parameter ${}: {v} does not fit a PostgreSQL bigint", i + 1))
                })?),
                P::Floating32(v) => v4::ParameterValue::Floating32(v),
                P::Floating64(v) => v4::ParameterValue::Floating64(v),
                P::Str(v) => v4::ParameterValue::Str(v),
                P::Binary(v) => v4::ParameterValue::Binary(v),
                P::DbNull => v4::ParameterValue::DbNull,
            })
        })
        .collect()
}

fn row_set(set: v4::RowSet) -> types::RowSet {
    types::RowSet {
        columns: set
            .columns
            .into_iter()
            .map(|c| types::Column { name: c.name, data_type: data_type(c.data_type) })
            .collect(),
        rows: set.rows.into_iter().map(|row| row.into_iter().map(value).collect()).collect(),
    }
}

fn data_type(t: v4::DbDataType) -> types::DbDataType {
    use v4::DbDataType as T;
    match t {
        T::Boolean => types::DbDataType::Boolean,
        T::Int8 => types::DbDataType::Int8,
        T::Int16 => types::DbDataType::Int16,
        T::Int32 => types::DbDataType::Int32,
        T::Int64 => types::DbDataType::Int64,
        T::Floating32 => types::DbDataType::Floating32,
        T::Floating64 => types::DbDataType::Floating64,
        T::Str => types::DbDataType::Str,
        T::Binary => types::DbDataType::Binary,
        _ => types::DbDataType::Other,
    }
}

fn value(v: v4::DbValue) -> types::DbValue {
    use v4::DbValue as V;
    match v {
        V::Boolean(v) => types::DbValue::Boolean(v),
        V::Int8(v) => types::DbValue::Int8(v),
        V::Int16(v) => types::DbValue::Int16(v),
        V::Int32(v) => types::DbValue::Int32(v),
        V::Int64(v) => types::DbValue::Int64(v),
        V::Floating32(v) => types::DbValue::Floating32(v),
        V::Floating64(v) => types::DbValue::Floating64(v),
        V::Str(v) => types::DbValue::Str(v),
        V::Binary(v) => types::DbValue::Binary(v),
        V::DbNull => types::DbValue::DbNull,
        _ => types::DbValue::Unsupported,
    }
}

fn error(e: v4::Error) -> types::Error {
    match e {
        v4::Error::ConnectionFailed(m) => types::Error::ConnectionFailed(m),
        v4::Error::BadParameter(m) => types::Error::BadParameter(m),
        v4::Error::QueryFailed(v4::QueryError::Text(m)) => types::Error::QueryFailed(m),
        v4::Error::QueryFailed(v4::QueryError::DbError(db)) => types::Error::QueryFailed(db.as_text),
        v4::Error::ValueConversionFailed(m) => types::Error::ValueConversionFailed(m),
        v4::Error::Other(m) => types::Error::Other(m),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsigned_parameters_widen_and_overflow_is_a_bad_parameter() {
        let ok = parameters(vec![types::ParameterValue::Uint8(255), types::ParameterValue::Uint32(u32::MAX)]).unwrap();
        assert!(matches!(ok[0], v4::ParameterValue::Int16(255)));
        assert!(matches!(ok[1], v4::ParameterValue::Int64(4294967295)));
        let err = parameters(vec![types::ParameterValue::DbNull, types::ParameterValue::Uint64(u64::MAX)]).unwrap_err();
        assert!(matches!(err, types::Error::BadParameter(m) if m.contains("$2")));
    }

    #[test]
    fn types_2_0_0_lacks_come_back_unsupported() {
        assert!(matches!(value(v4::DbValue::Date((2024, 1, 1))), types::DbValue::Unsupported));
        assert!(matches!(value(v4::DbValue::Str("x".into())), types::DbValue::Str(s) if s == "x"));
        assert!(matches!(data_type(v4::DbDataType::Uuid), types::DbDataType::Other));
    }
}
