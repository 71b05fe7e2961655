//! What the two diesel adapters share: [`Prepared`], a statement of constant text that a
//! connection prepares once and keeps.
//!
//! diesel keeps no `UPDATE`, no upsert and no `sql_query` in its statement cache
//! (`AstPass::unsafe_to_cache_prepared`: their text may change from call to call, and a cache of
//! every variant could grow without bound), so each execution prepares them again: on SQLite a
//! `sqlite3_prepare_v3` (6 % of the server's samples under fan-out, round 6 of
//! `docs/benchmarks.md`), on PostgreSQL a Parse/Describe round trip before every Bind/Execute.
//! A `Prepared` statement's text is a `&'static str`, so diesel (and diesel-async) cache it like
//! any `SELECT`, keyed by that text and its bind types.

#![forbid(unsafe_code)]

use diesel::backend::Backend;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::query_dsl::RunQueryDsl;
use diesel::result::QueryResult;
use diesel::sql_types::Untyped;

/// A statement of constant SQL text with its binds, in order. Each bind is marked in the text
/// by `?` (SQLite) or by `$1`, `$2`, … in that order (PostgreSQL); the backend writes its own
/// marker in their place. The binds are a tuple of `IntoSql::into_sql` values, e.g.
/// `(seq.into_sql::<BigInt>(), id.into_sql::<Binary>())`. Rows come back by name
/// (`QueryableByName`), as from `sql_query`.
#[derive(Debug, Clone, Copy)]
pub struct Prepared<B> {
    sql: &'static str,
    binds: B,
}

/// [`Prepared`] statement `sql` with `binds`.
pub fn prepared<B>(sql: &'static str, binds: B) -> Prepared<B> {
    Prepared { sql, binds }
}

/// The text of `sql` between its bind markers: `?`, or `$` followed by digits.
fn pieces(sql: &'static str) -> impl Iterator<Item = &'static str> {
    let mut rest = Some(sql);
    std::iter::from_fn(move || {
        let text = rest?;
        let bytes = text.as_bytes();
        let marker = (0..bytes.len())
            .find(|&i| bytes[i] == b'?' || (bytes[i] == b'$' && bytes.get(i + 1).is_some_and(u8::is_ascii_digit)));
        let Some(at) = marker else {
            rest = None;
            return Some(text);
        };
        let end = if bytes[at] == b'?' {
            at + 1
        } else {
            at + 1 + bytes[at + 1..].iter().take_while(|b| b.is_ascii_digit()).count()
        };
        rest = Some(&text[end..]);
        Some(&text[..at])
    })
}

/// The binds of a [`Prepared`] statement, for backend `DB`.
pub trait Binds<DB: Backend> {
    /// How many.
    const COUNT: usize;
    /// Pushes each bind, each followed by the text up to the next one.
    ///
    /// # Errors
    /// A bind that cannot be written.
    fn walk<'b>(
        &'b self,
        text: &mut dyn Iterator<Item = &'static str>,
        out: &mut AstPass<'_, 'b, DB>,
    ) -> QueryResult<()>;
}

macro_rules! binds {
    ($count:literal: $($bind:ident $index:tt),+) => {
        impl<DB: Backend, $($bind: QueryFragment<DB>),+> Binds<DB> for ($($bind,)+) {
            const COUNT: usize = $count;
            fn walk<'b>(
                &'b self,
                text: &mut dyn Iterator<Item = &'static str>,
                out: &mut AstPass<'_, 'b, DB>,
            ) -> QueryResult<()> {
                $(
                    self.$index.walk_ast(out.reborrow())?;
                    out.push_sql(text.next().unwrap_or_default());
                )+
                Ok(())
            }
        }
    };
}
binds!(1: A 0);
binds!(2: A 0, B 1);
binds!(3: A 0, B 1, C 2);
binds!(4: A 0, B 1, C 2, D 3);
binds!(5: A 0, B 1, C 2, D 3, E 4);
binds!(6: A 0, B 1, C 2, D 3, E 4, F 5);
binds!(7: A 0, B 1, C 2, D 3, E 4, F 5, G 6);
binds!(8: A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7);
binds!(9: A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7, I 8);
binds!(10: A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7, I 8, J 9);

impl<DB: Backend, B: Binds<DB>> QueryFragment<DB> for Prepared<B> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        debug_assert_eq!(pieces(self.sql).count(), B::COUNT + 1, "one bind a marker: {}", self.sql);
        let mut text = pieces(self.sql);
        out.push_sql(text.next().unwrap_or_default());
        self.binds.walk(&mut text, &mut out)
    }
}

impl<B> QueryId for Prepared<B> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<B> Query for Prepared<B> {
    type SqlType = Untyped;
}

impl<B, C> RunQueryDsl<C> for Prepared<B> {}

#[cfg(test)]
mod tests {
    use diesel::connection::{InstrumentationEvent, SimpleConnection};
    use diesel::prelude::*;
    use diesel::sql_types::{BigInt, Integer};

    use super::*;

    #[test]
    fn the_text_between_markers_is_kept_whichever_marker_the_backend_reads() {
        let split = |sql| pieces(sql).collect::<Vec<_>>();
        assert_eq!(split("UPDATE t SET n = ? WHERE id = ?"), ["UPDATE t SET n = ", " WHERE id = ", ""]);
        assert_eq!(
            split("SELECT * FROM unnest($1::uuid[], $12::int8[]) WHERE x = '$.a'"),
            ["SELECT * FROM unnest(", "::uuid[], ", "::int8[]) WHERE x = '$.a'"]
        );
        assert_eq!(split("SELECT 1"), ["SELECT 1"]);
    }

    #[derive(QueryableByName)]
    struct N {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }

    #[test]
    fn a_prepared_statement_is_prepared_once_and_kept() {
        let mut c = SqliteConnection::establish(":memory:").unwrap();
        c.batch_execute(
            "CREATE TABLE t (id INTEGER PRIMARY KEY, n INTEGER NOT NULL); INSERT INTO t VALUES (1, 0), (2, 0);",
        )
        .unwrap();
        let cached = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
        let seen = std::sync::Arc::clone(&cached);
        c.set_instrumentation(move |event: InstrumentationEvent<'_>| {
            if let InstrumentationEvent::CacheQuery { sql, .. } = event {
                seen.lock().unwrap().push(sql.to_owned());
            }
        });
        let bump = "UPDATE t SET n = n + ? WHERE id = ? RETURNING n";
        for _ in 0..3 {
            diesel::sql_query(bump).bind::<BigInt, _>(5).bind::<Integer, _>(1).execute(&mut c).unwrap();
        }
        assert!(cached.lock().unwrap().is_empty(), "diesel keeps no sql_query of its own");
        for step in [1_i64, 10, 100] {
            let row =
                prepared(bump, (step.into_sql::<BigInt>(), 2.into_sql::<Integer>())).get_result::<N>(&mut c).unwrap();
            assert!([1, 11, 111].contains(&row.n), "binds in order: {}", row.n);
        }
        assert_eq!(*cached.lock().unwrap(), [bump], "prepared on the first execution, reused after");
        let mut n = |id: i32| {
            diesel::sql_query("SELECT n FROM t WHERE id = ?").bind::<Integer, _>(id).get_result::<N>(&mut c).unwrap().n
        };
        assert_eq!((n(1), n(2)), (15, 111));
    }
}
