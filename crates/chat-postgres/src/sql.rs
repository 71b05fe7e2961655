//! SQL functions diesel does not ship.

use diesel::expression::functions::declare_sql_function;
use diesel::sql_types::{Nullable, Timestamptz};

#[declare_sql_function]
extern "SQL" {
    /// `COALESCE(a, b)` over timestamps: keeps an earlier `archived_at` / `deleted_at`.
    fn coalesce(a: Nullable<Timestamptz>, b: Nullable<Timestamptz>) -> Nullable<Timestamptz>;
}
