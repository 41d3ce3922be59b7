//! PostgreSQL's types, both ways: a step's parameter converted to the type
//! the server inferred for it (PostgreSQL is strict), and a column's binary
//! value into a JSON cell. Any other type is refused with a hint to cast.

use std::error::Error as StdError;

use bytes::{BufMut, BytesMut};
use tokio_postgres::types::{FromSql, IsNull, ToSql, Type, to_sql_checked};

use super::rows::Cell;
use super::{Error, Value};

/// A parameter encoded for its statement's type.
#[derive(Debug)]
pub(crate) enum Param {
    Null,
    /// Bytes in the binary format of the parameter's type.
    Encoded(Vec<u8>),
}

impl ToSql for Param {
    fn to_sql(
        &self,
        _ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn StdError + Sync + Send>> {
        match self {
            Param::Null => Ok(IsNull::Yes),
            Param::Encoded(bytes) => {
                out.put_slice(bytes);
                Ok(IsNull::No)
            }
        }
    }

    fn accepts(_ty: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

/// The parameters of a statement whose types are `types`.
pub(crate) fn params(db: &str, types: &[Type], values: Vec<Value>) -> Result<Vec<Param>, Error> {
    if types.len() != values.len() {
        return Err(Error::Invalid(format!(
            "database `{db}`: the statement takes {} parameters; {} given",
            types.len(),
            values.len()
        )));
    }
    types
        .iter()
        .zip(values)
        .enumerate()
        .map(|(i, (ty, value))| {
            param(ty, value).map_err(|why| {
                let n = format!("${}", i + 1);
                Error::Invalid(format!(
                    "database `{db}`: parameter {n} ({}): {}",
                    ty.name(),
                    why.replace("$N", &n)
                ))
            })
        })
        .collect()
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Boolean(_) => "a boolean",
        Value::Integer(_) => "an integer",
        Value::Real(_) => "a real",
        Value::Text(_) => "text",
        Value::Blob(_) => "a blob",
    }
}

fn param(ty: &Type, value: Value) -> Result<Param, String> {
    let mismatch = |value: &Value| {
        format!(
            "{} does not fit this type; convert it, or cast the parameter in the SQL (`$N::text`)",
            kind(value)
        )
    };
    let bytes = match (ty, value) {
        (_, Value::Null) => return Ok(Param::Null),
        (&Type::BOOL, Value::Boolean(b)) => vec![u8::from(b)],
        (&Type::INT2, Value::Integer(n)) => i16::try_from(n)
            .map_err(|_| format!("{n} is out of range for int2"))?
            .to_be_bytes()
            .to_vec(),
        (&Type::INT4, Value::Integer(n)) => i32::try_from(n)
            .map_err(|_| format!("{n} is out of range for int4"))?
            .to_be_bytes()
            .to_vec(),
        (&Type::INT8, Value::Integer(n)) => n.to_be_bytes().to_vec(),
        (&Type::FLOAT4, Value::Integer(n)) => (n as f32).to_be_bytes().to_vec(),
        (&Type::FLOAT8, Value::Integer(n)) => (n as f64).to_be_bytes().to_vec(),
        (&Type::FLOAT4, Value::Real(f)) => (f as f32).to_be_bytes().to_vec(),
        (&Type::FLOAT8, Value::Real(f)) => f.to_be_bytes().to_vec(),
        (&Type::NUMERIC, Value::Integer(n)) => numeric(&n.to_string())?,
        (&Type::NUMERIC, Value::Real(f)) if f.is_finite() => numeric(&format!("{f}"))?,
        (&Type::NUMERIC, Value::Text(t)) => numeric(&t)?,
        (
            &Type::TEXT | &Type::VARCHAR | &Type::BPCHAR | &Type::NAME | &Type::UNKNOWN,
            Value::Text(t),
        ) => t.into_bytes(),
        (&Type::JSON, v) => json_text(v)?.into_bytes(),
        (&Type::JSONB, v) => {
            let mut out = vec![1];
            out.extend_from_slice(json_text(v)?.as_bytes());
            out
        }
        (&Type::UUID, Value::Text(t)) => uuid::Uuid::parse_str(&t)
            .map_err(|e| format!("not a UUID: {e}"))?
            .as_bytes()
            .to_vec(),
        (&Type::BYTEA, Value::Blob(b)) => b,
        // Readable, but not sent from a step's values: the SQL casts text.
        (_, v)
            if !supported(ty)
                || [Type::TIMESTAMP, Type::TIMESTAMPTZ, Type::DATE, Type::OID].contains(ty) =>
        {
            return Err(format!(
                "{} cannot be sent as {}; cast the parameter in the SQL (`$N::text::{}`)",
                kind(&v),
                ty.name(),
                ty.name()
            ));
        }
        (_, v) => return Err(mismatch(&v)),
    };
    Ok(Param::Encoded(bytes))
}

/// A JSON parameter: text is taken as JSON text (checked), anything else
/// becomes its JSON value.
fn json_text(value: Value) -> Result<String, String> {
    Ok(match value {
        Value::Text(t) => {
            serde_json::from_str::<serde::de::IgnoredAny>(&t)
                .map_err(|e| format!("not JSON: {e}"))?;
            t
        }
        Value::Boolean(b) => b.to_string(),
        Value::Integer(n) => n.to_string(),
        Value::Real(f) => serde_json::Number::from_f64(f)
            .map(|n| n.to_string())
            .ok_or("a real that is not finite is not JSON")?,
        Value::Null => "null".into(),
        Value::Blob(_) => return Err("a blob is not JSON".into()),
    })
}

/// `numeric`'s binary form of a decimal written in text (`-12.5`, `3e2` not).
fn numeric(text: &str) -> Result<Vec<u8>, String> {
    let bad = || format!("`{text}` is not a decimal number");
    let (negative, digits) = match text.trim().strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.trim().strip_prefix('+').unwrap_or(text.trim())),
    };
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    if (int.is_empty() && frac.is_empty())
        || !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit())
        || int.len() + frac.len() > 1000
    {
        return Err(bad());
    }
    // Base-10000 groups: the integer part aligned from the point leftwards,
    // the fraction rightwards.
    let int = int.trim_start_matches('0');
    let pad_left = (4 - int.len() % 4) % 4;
    let pad_right = (4 - frac.len() % 4) % 4;
    let all = format!(
        "{}{int}{frac}{}",
        "0".repeat(pad_left),
        "0".repeat(pad_right)
    );
    let mut groups: Vec<i16> = all
        .as_bytes()
        .chunks(4)
        .map(|c| c.iter().fold(0i16, |acc, d| acc * 10 + i16::from(d - b'0')))
        .collect();
    let mut weight = ((int.len() + pad_left) / 4) as i16 - 1;
    while groups.first() == Some(&0) {
        groups.remove(0);
        weight -= 1;
    }
    while groups.last() == Some(&0) {
        groups.pop();
    }
    if groups.is_empty() {
        weight = 0;
    }
    let mut out = Vec::with_capacity(8 + groups.len() * 2);
    out.extend_from_slice(&(groups.len() as i16).to_be_bytes());
    out.extend_from_slice(&weight.to_be_bytes());
    let sign: u16 = if negative && !groups.is_empty() {
        0x4000
    } else {
        0
    };
    out.extend_from_slice(&sign.to_be_bytes());
    out.extend_from_slice(&(frac.len() as u16).to_be_bytes());
    for g in groups {
        out.extend_from_slice(&g.to_be_bytes());
    }
    Ok(out)
}

/// Whether a column of type `ty` can be read.
pub(crate) fn supported(ty: &Type) -> bool {
    [
        Type::BOOL,
        Type::INT2,
        Type::INT4,
        Type::INT8,
        Type::OID,
        Type::FLOAT4,
        Type::FLOAT8,
        Type::NUMERIC,
        Type::TEXT,
        Type::VARCHAR,
        Type::BPCHAR,
        Type::NAME,
        Type::UNKNOWN,
        Type::JSON,
        Type::JSONB,
        Type::UUID,
        Type::TIMESTAMP,
        Type::TIMESTAMPTZ,
        Type::DATE,
        Type::BYTEA,
    ]
    .contains(ty)
}

/// A column's value as it came, in binary.
pub(crate) struct Raw<'a>(pub(crate) &'a [u8]);

impl<'a> FromSql<'a> for Raw<'a> {
    fn from_sql(_ty: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn StdError + Sync + Send>> {
        Ok(Raw(raw))
    }

    fn accepts(_ty: &Type) -> bool {
        true
    }
}

/// A cell, with the text it may need (a number, a date) kept in `scratch`.
pub(crate) fn cell<'a>(
    ty: &Type,
    raw: Option<&'a [u8]>,
    scratch: &'a mut String,
) -> Result<Cell<'a>, String> {
    let Some(raw) = raw else {
        return Ok(Cell::Null);
    };
    let short = || format!("a {} value of {} bytes", ty.name(), raw.len());
    let fixed = |n: usize| -> Result<&'a [u8], String> {
        if raw.len() == n {
            Ok(raw)
        } else {
            Err(short())
        }
    };
    Ok(match *ty {
        Type::BOOL => Cell::Bool(fixed(1)?[0] != 0),
        Type::INT2 => Cell::Int(i64::from(i16::from_be_bytes(array(fixed(2)?)))),
        Type::INT4 => Cell::Int(i64::from(i32::from_be_bytes(array(fixed(4)?)))),
        Type::OID => Cell::Int(i64::from(u32::from_be_bytes(array(fixed(4)?)))),
        Type::INT8 => Cell::Int(i64::from_be_bytes(array(fixed(8)?))),
        Type::FLOAT4 => Cell::Float(f64::from(f32::from_be_bytes(array(fixed(4)?)))),
        Type::FLOAT8 => Cell::Float(f64::from_be_bytes(array(fixed(8)?))),
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::UNKNOWN => {
            Cell::Text(std::str::from_utf8(raw).map_err(|_| short())?)
        }
        Type::JSON => Cell::Json(std::str::from_utf8(raw).map_err(|_| short())?),
        Type::JSONB => match raw.split_first() {
            Some((1, json)) => Cell::Json(std::str::from_utf8(json).map_err(|_| short())?),
            _ => return Err(short()),
        },
        Type::BYTEA => Cell::Bytes(raw),
        Type::UUID => {
            *scratch = uuid::Uuid::from_bytes(array(fixed(16)?))
                .hyphenated()
                .to_string();
            Cell::Text(scratch)
        }
        Type::NUMERIC => {
            *scratch = numeric_text(raw).ok_or_else(short)?;
            Cell::Text(scratch)
        }
        Type::DATE => {
            *scratch = date_text(i32::from_be_bytes(array(fixed(4)?)));
            Cell::Text(scratch)
        }
        Type::TIMESTAMP | Type::TIMESTAMPTZ => {
            let zone = if *ty == Type::TIMESTAMPTZ { "Z" } else { "" };
            *scratch = timestamp_text(i64::from_be_bytes(array(fixed(8)?)), zone);
            Cell::Text(scratch)
        }
        _ => {
            return Err(format!(
                "a column of type {0} cannot be read; cast it to text in the SQL (`col::text`)",
                ty.name()
            ));
        }
    })
}

fn array<const N: usize>(bytes: &[u8]) -> [u8; N] {
    let mut out = [0; N];
    out.copy_from_slice(&bytes[..N]);
    out
}

/// `numeric`'s binary form as decimal text (`-12.50`, `NaN`, `Infinity`).
fn numeric_text(raw: &[u8]) -> Option<String> {
    let word = |i: usize| raw.get(i..i + 2).map(|b| u16::from_be_bytes([b[0], b[1]]));
    let ndigits = word(0)? as usize;
    let weight = word(2)? as i16;
    let sign = word(4)?;
    let dscale = word(6)? as usize;
    match sign {
        0xC000 => return Some("NaN".into()),
        0xD000 => return Some("Infinity".into()),
        0xF000 => return Some("-Infinity".into()),
        _ => {}
    }
    let digits: Vec<u16> = (0..ndigits)
        .map(|i| word(8 + 2 * i))
        .collect::<Option<_>>()?;
    let mut out = String::new();
    if sign == 0x4000 {
        out.push('-');
    }
    // The integer part: groups 0..=weight.
    if weight < 0 {
        out.push('0');
    } else {
        for g in 0..=weight as usize {
            let d = digits.get(g).copied().unwrap_or(0);
            if g == 0 {
                out.push_str(&d.to_string());
            } else {
                out.push_str(&format!("{d:04}"));
            }
        }
    }
    if dscale > 0 {
        out.push('.');
        let mut frac = String::new();
        let mut g = weight as i32 + 1;
        while frac.len() < dscale {
            let d = if g < 0 {
                0
            } else {
                digits.get(g as usize).copied().unwrap_or(0)
            };
            frac.push_str(&format!("{d:04}"));
            g += 1;
        }
        frac.truncate(dscale);
        out.push_str(&frac);
    }
    Some(out)
}

/// Days since 2000-01-01 as `YYYY-MM-DD`.
fn date_text(days: i32) -> String {
    match days {
        i32::MAX => "infinity".into(),
        i32::MIN => "-infinity".into(),
        _ => {
            let (y, m, d) = civil(i64::from(days) + 10_957);
            format!("{y:04}-{m:02}-{d:02}")
        }
    }
}

/// Microseconds since 2000-01-01 00:00 as ISO 8601 text.
fn timestamp_text(micros: i64, zone: &str) -> String {
    match micros {
        i64::MAX => return "infinity".into(),
        i64::MIN => return "-infinity".into(),
        _ => {}
    }
    let days = micros.div_euclid(86_400_000_000);
    let in_day = micros.rem_euclid(86_400_000_000);
    let (y, m, d) = civil(days + 10_957);
    let secs = in_day / 1_000_000;
    let frac = in_day % 1_000_000;
    let (hh, mm, ss) = (secs / 3600, secs / 60 % 60, secs % 60);
    let frac = if frac == 0 {
        String::new()
    } else {
        format!(".{frac:06}")
    };
    format!("{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}{frac}{zone}")
}

/// Days since 1970-01-01 as (year, month, day), proleptic Gregorian
/// (Howard Hinnant's `civil_from_days`).
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numerics_round_trip_through_their_binary_form() {
        for (text, shown) in [
            ("0", "0"),
            ("12.50", "12.50"),
            ("-12.5", "-12.5"),
            ("10000", "10000"),
            ("123456789.000001", "123456789.000001"),
            ("0.0001", "0.0001"),
            ("-0.05", "-0.05"),
        ] {
            let raw = numeric(text).unwrap();
            assert_eq!(numeric_text(&raw).unwrap(), shown, "{text}");
        }
        assert!(numeric("1e5").is_err());
        assert!(numeric("").is_err());
        assert!(numeric("1.2.3").is_err());
    }

    #[test]
    fn dates_and_timestamps_are_iso_text() {
        assert_eq!(date_text(0), "2000-01-01");
        assert_eq!(date_text(-1), "1999-12-31");
        assert_eq!(date_text(9_190), "2025-02-28");
        assert_eq!(timestamp_text(0, "Z"), "2000-01-01T00:00:00Z");
        assert_eq!(
            timestamp_text(86_400_000_000 + 3_723_000_042, ""),
            "2000-01-02T01:02:03.000042"
        );
        assert_eq!(timestamp_text(-1_000_000, "Z"), "1999-12-31T23:59:59Z");
        assert_eq!(timestamp_text(i64::MAX, "Z"), "infinity");
    }

    #[test]
    fn parameters_fit_the_inferred_type_or_say_why() {
        assert!(
            matches!(param(&Type::INT4, Value::Integer(7)), Ok(Param::Encoded(b)) if b == [0, 0, 0, 7])
        );
        let e = param(&Type::INT2, Value::Integer(70_000)).unwrap_err();
        assert!(e.contains("out of range for int2"), "{e}");
        let e = param(&Type::INT4, Value::Text("7".into())).unwrap_err();
        assert!(e.contains("text does not fit"), "{e}");
        let e = param(&Type::TIMESTAMPTZ, Value::Text("2020-01-01".into())).unwrap_err();
        assert!(e.contains("::text::timestamptz"), "{e}");
        assert!(
            matches!(param(&Type::JSONB, Value::Integer(3)), Ok(Param::Encoded(b)) if b == [1, b'3'])
        );
        assert!(param(&Type::JSON, Value::Text("{".into())).is_err());
        assert!(param(&Type::UUID, Value::Text("nope".into())).is_err());
        assert!(matches!(param(&Type::TEXT, Value::Null), Ok(Param::Null)));
    }
}
