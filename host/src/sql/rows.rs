//! Rows as JSON text, built as they are read and checked against the
//! database's caps on the way, so a result past a cap stops reading at once
//! and never sits whole in memory.

use base64::Engine as _;

use super::Error;

/// The row and byte caps of one database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Caps {
    pub(crate) max_rows: u64,
    pub(crate) max_bytes: u64,
}

/// One value of a row, as JSON will show it.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Cell<'a> {
    Null,
    Bool(bool),
    Int(i64),
    /// Not finite (SQLite's and PostgreSQL's infinities, NaN): `null`.
    Float(f64),
    Text(&'a str),
    /// Already JSON (PostgreSQL `json`, `jsonb`): written as it is.
    Json(&'a str),
    /// A blob or `bytea`: a base64 string (standard alphabet, padded).
    Bytes(&'a [u8]),
}

/// A JSON array of row objects, written as rows arrive.
pub(crate) struct RowsJson<'a> {
    out: String,
    rows: u64,
    caps: Caps,
    db: &'a str,
    /// Each column's key, `"name":`, escaped once.
    keys: Vec<String>,
    /// Cells written in the current row.
    in_row: usize,
}

impl<'a> RowsJson<'a> {
    pub(crate) fn new<'n>(db: &'a str, caps: Caps, columns: impl Iterator<Item = &'n str>) -> Self {
        let keys = columns
            .map(|name| {
                let mut key = serde_json::to_string(name).unwrap_or_else(|_| "\"?\"".into());
                key.push(':');
                key
            })
            .collect();
        RowsJson {
            out: String::from("["),
            rows: 0,
            caps,
            db,
            keys,
            in_row: 0,
        }
    }

    /// Starts a row; refused past `max_rows`.
    pub(crate) fn row(&mut self) -> Result<(), Error> {
        if self.rows >= self.caps.max_rows {
            return Err(Error::TooLarge(format!(
                "database `{}`: the result has more than {} rows (its `max_rows`)",
                self.db, self.caps.max_rows
            )));
        }
        if self.rows > 0 {
            self.out.push(',');
        }
        self.rows += 1;
        self.out.push('{');
        self.in_row = 0;
        Ok(())
    }

    /// Adds the next column's value to the current row; refused past `max_bytes`.
    pub(crate) fn cell(&mut self, cell: Cell<'_>) -> Result<(), Error> {
        if self.in_row > 0 {
            self.out.push(',');
        }
        let key = self.keys.get(self.in_row).map_or("\"?\":", String::as_str);
        self.out.push_str(key);
        self.in_row += 1;
        match cell {
            Cell::Null => self.out.push_str("null"),
            Cell::Bool(b) => self.out.push_str(if b { "true" } else { "false" }),
            Cell::Int(i) => self.out.push_str(&i.to_string()),
            Cell::Float(f) => match serde_json::Number::from_f64(f) {
                Some(n) => self.out.push_str(&n.to_string()),
                None => self.out.push_str("null"),
            },
            Cell::Text(text) => self.push_string(text),
            Cell::Json(json) => self.out.push_str(json),
            Cell::Bytes(bytes) => {
                self.out.push('"');
                base64::engine::general_purpose::STANDARD.encode_string(bytes, &mut self.out);
                self.out.push('"');
            }
        }
        self.check_bytes()
    }

    /// Ends the current row.
    pub(crate) fn end_row(&mut self) -> Result<(), Error> {
        self.out.push('}');
        self.check_bytes()
    }

    /// The JSON array.
    pub(crate) fn finish(mut self) -> String {
        self.out.push(']');
        self.out
    }

    fn push_string(&mut self, text: &str) {
        // A `str` always serialises.
        let escaped = serde_json::to_string(text).unwrap_or_default();
        self.out.push_str(&escaped);
    }

    fn check_bytes(&self) -> Result<(), Error> {
        // The closing `]` counts too.
        if self.out.len() as u64 + 1 > self.caps.max_bytes {
            return Err(Error::TooLarge(format!(
                "database `{}`: the result is larger than {} bytes of JSON (its `max_bytes`)",
                self.db, self.caps.max_bytes
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caps(max_rows: u64, max_bytes: u64) -> Caps {
        Caps {
            max_rows,
            max_bytes,
        }
    }

    #[test]
    fn rows_are_objects_keyed_by_column() {
        let mut rows = RowsJson::new(
            "db",
            caps(10, 1000),
            ["id", "name \"x\"", "v", "b", "j"].into_iter(),
        );
        rows.row().unwrap();
        for cell in [
            Cell::Int(1),
            Cell::Text("a\nb"),
            Cell::Float(f64::INFINITY),
            Cell::Bytes(&[0, 255, 7]),
            Cell::Json("{\"k\":[1]}"),
        ] {
            rows.cell(cell).unwrap();
        }
        rows.end_row().unwrap();
        rows.row().unwrap();
        for cell in [
            Cell::Null,
            Cell::Bool(true),
            Cell::Float(1.5),
            Cell::Null,
            Cell::Null,
        ] {
            rows.cell(cell).unwrap();
        }
        rows.end_row().unwrap();
        let json: serde_json::Value = serde_json::from_str(&rows.finish()).unwrap();
        assert_eq!(
            json,
            serde_json::json!([
                {"id": 1, "name \"x\"": "a\nb", "v": null, "b": "AP8H", "j": {"k": [1]}},
                {"id": null, "name \"x\"": true, "v": 1.5, "b": null, "j": null},
            ])
        );
        assert_eq!(
            RowsJson::new("db", caps(1, 10), std::iter::empty()).finish(),
            "[]"
        );
    }

    #[test]
    fn caps_stop_the_result() {
        let mut rows = RowsJson::new("orders", caps(1, 1000), ["a"].into_iter());
        rows.row().unwrap();
        rows.cell(Cell::Int(1)).unwrap();
        rows.end_row().unwrap();
        match rows.row() {
            Err(Error::TooLarge(m)) => assert_eq!(
                m,
                "database `orders`: the result has more than 1 rows (its `max_rows`)"
            ),
            other => panic!("{other:?}"),
        }
        let mut rows = RowsJson::new("orders", caps(10, 16), ["a"].into_iter());
        rows.row().unwrap();
        match rows.cell(Cell::Text("a longer text than fits")) {
            Err(Error::TooLarge(m)) => assert!(m.contains("larger than 16 bytes"), "{m}"),
            other => panic!("{other:?}"),
        }
    }
}
