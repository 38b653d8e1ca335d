//! Parsing: `sqlparser` with the PostgreSQL dialect, plus the CockroachDB
//! statements we support.
//!
//! CockroachDB syntax that PostgreSQL lacks is handled by a token-level pass
//! before the generic parser runs (the parser is fed the rewritten tokens, which
//! keep their source positions, so syntax errors still point into the text the
//! client sent), and by fixing up the parsed statements afterwards:
//!
//! - `UPSERT INTO …` parses as `INSERT INTO …` with `replace_into = true` (the
//!   executor treats that as UPSERT);
//! - `CREATE [UNIQUE] INDEX … STORING (cols)` is `INCLUDE (cols)`;
//! - inside `CREATE TABLE`, `[UNIQUE] INDEX [name] (cols) [STORING (cols)]` become
//!   [`TableConstraint::Index`] entries (uniqueness and the STORING columns are
//!   carried as [`UNIQUE_INDEX_MARKER`] / [`STORING_MARKER`] index options) and
//!   `FAMILY …` is accepted and ignored (one column family per table);
//! - `t@index` (in `DROP INDEX`, `ALTER INDEX`) becomes the single identifier
//!   `"t@index"`;
//! - `COMMENT ON CONSTRAINT c ON t IS …`, which the parser does not take,
//!   parses as `COMMENT ON TABLE t IS …` with the constraint's name in a
//!   marker first name part ([`COMMENT_CONSTRAINT_MARKER`]); every `COMMENT
//!   ON` becomes [`Ours::Comment`]. A dollar-quoted comment is made a plain
//!   string for the parser;
//! - `SHOW RANGES FROM TABLE t`, `SHOW RANGES FROM INDEX t@i`,
//!   `SHOW INDEXES FROM t`, `SHOW CONSTRAINTS FROM t`, `SHOW STATISTICS FOR
//!   TABLE t`, `CREATE STATISTICS …` and `ALTER TABLE t SPLIT AT VALUES (…)`
//!   become [`Ours`] variants of the owned statement type [`Stmt`] that
//!   [`parse`] gives the session (`ddl::execute_ours` runs them). Inside this
//!   module they still pass through sqlparser as a placeholder replaced by a
//!   marked `Unload` ([`classify`] turns those into [`Ours`]);
//! - `AS OF SYSTEM TIME <expr>` (after a query's FROM list, among the modes
//!   of BEGIN and SET TRANSACTION) is cut out of the statement, its
//!   expression parsed on its own ([`as_of`]), and the statement given to
//!   the session as [`Ours::AsOf`]. Internal SQL ([`parse_statements`])
//!   takes no such clause.
//!
//! Errors are SQLSTATE 42601 with the position when the parser reports one.

use sqlparser::ast::{Ident, IndexConstraint, IndexOption, ObjectName, Statement, TableConstraint};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::{Parser, ParserError};
use sqlparser::tokenizer::{Token, TokenWithSpan, Tokenizer, Whitespace};
use tardigrade_sqltypes::{SqlError, SqlResult};

pub mod as_of;
mod descriptions;
pub mod nesting;

pub use as_of::AsOf;

/// Nesting deeper than this is refused (54001) instead of overflowing the stack.
const MAX_NESTING: usize = 200;

/// `query_text` of the `Unload` standing for `ALTER … CONFIGURE ZONE`.
const CONFIGURE_ZONE_MARKER: &str = "tardigrade:configure_zone";
/// `query_text` of the `Unload` standing for a multi-region statement.
const REGION_STMT_MARKER: &str = "tardigrade:region_stmt";
/// `query_text` of the `Unload` standing for `SET CONSTRAINTS …`; its target
/// is the mode, then each name after a separator.
const SET_CONSTRAINTS_MARKER: &str = "tardigrade:set_constraints";
const SET_CONSTRAINTS_SEPARATOR: char = '\u{1f}';
/// `query_text` of the `Unload` standing for `SHOW REGIONS …`.
const SHOW_REGIONS_MARKER: &str = "tardigrade:show_regions";
/// `query_text` of the `Unload` standing for `SHOW ZONE CONFIGURATION(S)`.
const SHOW_ZONES_MARKER: &str = "tardigrade:show_zones";
/// `query_text` of the `Unload` standing for `ALTER TABLE … SPLIT AT`.
const SPLIT_AT_MARKER: &str = "tardigrade:split_at";
/// `query_text` of the `Unload` standing for `SHOW RANGES FROM TABLE`.
const SHOW_RANGES_TABLE_MARKER: &str = "tardigrade:show_ranges_table";
/// `query_text` of the `Unload` standing for `SHOW RANGES FROM INDEX`.
const SHOW_RANGES_INDEX_MARKER: &str = "tardigrade:show_ranges_index";
/// `query_text` of the `Unload` standing for `SHOW INDEXES FROM t`.
const SHOW_INDEXES_MARKER: &str = "tardigrade:show_indexes";
/// `query_text` of the `Unload` standing for `SHOW CONSTRAINTS FROM t`.
const SHOW_CONSTRAINTS_MARKER: &str = "tardigrade:show_constraints";
/// `query_text` of the `Unload` standing for `SHOW STATISTICS FOR TABLE t`.
const SHOW_STATISTICS_MARKER: &str = "tardigrade:show_statistics";
/// `query_text` of the `Unload` standing for `CREATE STATISTICS name [ON
/// cols] FROM t`; `to` holds the table, the name and the columns, separated
/// by NUL.
// TODO(issue 12): build [`Ours`] from the tokens directly, without markers.
const CREATE_STATISTICS_MARKER: &str = "tardigrade:create_statistics";
/// First name part of the `CREATE SEQUENCE` standing for `ALTER SEQUENCE`
/// (followed by `:<IF EXISTS 0|1>:<RESTART: empty, `start` or the value>`);
/// [`classify`] turns it into [`Ours::AlterSequence`].
const ALTER_SEQUENCE_MARKER: &str = "tardigrade:alter_sequence:";
/// Prefix of the first name part of the `COMMENT ON TABLE` standing for
/// `COMMENT ON CONSTRAINT <name> ON <table>` (followed by the folded name);
/// [`classify`] turns it into [`Ours::Comment`].
const COMMENT_CONSTRAINT_MARKER: &str = "tardigrade:comment_constraint:";
/// The `INTO` target a `MOVE` (parsed as `FETCH`) carries until [`classify`]
/// turns it into [`Ours::Move`].
const MOVE_MARKER: &str = "tardigrade:move";
/// Prefix of the name a window specification carries when its frame has an
/// `EXCLUDE` clause, which the parser does not take: `EXCLUDE TIES` in
/// `OVER (w ORDER BY x ROWS 1 PRECEDING EXCLUDE TIES)` is removed and the
/// specification named `tardigrade:exclude=ties;w` (see
/// [`split_window_name`]).
pub const WINDOW_EXCLUDE_MARKER: &str = "tardigrade:exclude=";

/// A window specification's name and frame exclusion (`current row`,
/// `group` or `ties`), taken apart from [`WINDOW_EXCLUDE_MARKER`].
pub fn split_window_name(name: &Ident) -> (Option<String>, Option<String>) {
    match name.value.strip_prefix(WINDOW_EXCLUDE_MARKER) {
        Some(rest) if name.quote_style.is_some() => match rest.split_once(';') {
            Some((kind, base)) => (Some(base.to_string()), Some(kind.to_string())),
            None => (None, Some(rest.to_string())),
        },
        _ => (Some(normalize(name)), None),
    }
}

/// Index option (a `Comment`) marking a CREATE TABLE `UNIQUE INDEX`.
pub const UNIQUE_INDEX_MARKER: &str = "tardigrade:unique";
/// Prefix of the index option (a `Comment`) listing STORING columns, separated
/// by NUL.
pub const STORING_MARKER: &str = "tardigrade:storing:";

/// A statement as the rest of the SQL layer sees it: sqlparser's, or one of
/// the CockroachDB statements PostgreSQL lacks.
#[derive(Clone, Debug)]
pub enum Stmt {
    Sql(Box<Statement>),
    Ours(Ours),
}

/// Our statements. Targets are the names as written (`t`, `db.t`, `t@i`).
#[derive(Clone, Debug)]
pub enum Ours {
    /// `ALTER TABLE t SPLIT AT <query>`.
    SplitAt {
        target: String,
        query: Box<sqlparser::ast::Query>,
    },
    /// `SHOW RANGES FROM TABLE t` / `FROM INDEX t@i`.
    ShowRanges { target: String, index: bool },
    /// `SHOW INDEXES FROM t`.
    ShowIndexes { target: String },
    /// `SHOW CONSTRAINTS FROM t`.
    ShowConstraints { target: String },
    /// `SHOW STATISTICS FOR TABLE t`.
    ShowStatistics { target: String },
    /// `CREATE STATISTICS name [ON columns] FROM t`.
    CreateStatistics {
        name: String,
        target: String,
        columns: Vec<String>,
    },
    /// `MOVE …`: the `FETCH` statement it moves like, without its rows.
    Move(Box<Statement>),
    /// `ALTER SEQUENCE [IF EXISTS] name options`: the options CREATE
    /// SEQUENCE takes, and `RESTART [[WITH] n]` (`Some(None)`: back to the
    /// start value).
    AlterSequence {
        name: ObjectName,
        if_exists: bool,
        options: Vec<sqlparser::ast::SequenceOptions>,
        restart: Option<Option<i64>>,
    },
    /// `COMMENT ON <object> IS '<text>' | NULL` (`None`: remove it).
    Comment {
        object: CommentObject,
        comment: Option<String>,
    },
    /// `ALTER <target> CONFIGURE ZONE USING field = value, …` or
    /// `… CONFIGURE ZONE DISCARD` (`discard`, no settings).
    ConfigureZone {
        target: ZoneTarget,
        discard: bool,
        settings: Vec<(String, ZoneValue)>,
    },
    /// `SHOW ZONE CONFIGURATION FROM <target>` (`Some`) or `SHOW [ALL]
    /// ZONE CONFIGURATIONS` (`None`).
    ShowZones { target: Option<ZoneTarget> },
    /// The multi-region statements ([`RegionStmt`]).
    Regions(RegionStmt),
    /// `SET CONSTRAINTS {ALL | name, …} {DEFERRED | IMMEDIATE}` (`names`
    /// empty for ALL). Every constraint is checked when its statement ends
    /// (none is deferrable), which is what PostgreSQL does for constraints
    /// that are not DEFERRABLE: a no-op, but a named constraint must exist
    /// and cannot be deferred.
    SetConstraints { deferred: bool, names: Vec<String> },
    /// `SHOW REGIONS [FROM CLUSTER]` (`database: None`) or `SHOW REGIONS
    /// FROM DATABASE [d]` (`Some(name)`, empty for the current one).
    ShowRegions { database: Option<String> },
    /// A statement with `AS OF SYSTEM TIME`: a query (or EXPLAIN of one),
    /// `BEGIN`/`START TRANSACTION` or `SET TRANSACTION`, without the clause
    /// ([`as_of`]).
    AsOf {
        statement: Box<Statement>,
        as_of: Box<AsOf>,
    },
}

/// CockroachDB's multi-region statements, names as written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RegionStmt {
    /// `ALTER DATABASE d [SET] PRIMARY REGION r`.
    PrimaryRegion { database: String, region: String },
    /// `ALTER DATABASE d ADD REGION [IF NOT EXISTS] r`.
    AddRegion {
        database: String,
        region: String,
        if_not_exists: bool,
    },
    /// `ALTER DATABASE d DROP REGION [IF EXISTS] r`.
    DropRegion {
        database: String,
        region: String,
        if_exists: bool,
    },
    /// `ALTER DATABASE d SURVIVE {ZONE | REGION} FAILURE`.
    Survive { database: String, region: bool },
    /// `ALTER TABLE t SET LOCALITY …`.
    SetLocality { table: String, locality: Locality },
    /// `SHOW SURVIVAL GOAL FROM DATABASE [d]` (empty: the current one).
    ShowSurvivalGoal { database: String },
}

/// A table's locality in a multi-region database.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Locality {
    /// `REGIONAL BY TABLE [IN r | IN PRIMARY REGION]` (`None`: the
    /// primary region).
    RegionalByTable(Option<String>),
    Global,
    RegionalByRow,
}

/// What a zone configuration statement names, as written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ZoneTarget {
    /// `RANGE default|meta|system|…`.
    Range(String),
    Database(String),
    Table(String),
    /// `t@i`.
    Index(String),
}

/// The value of one `CONFIGURE ZONE USING` setting.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ZoneValue {
    /// A number, as written.
    Number(String),
    /// A string literal.
    Text(String),
    /// `COPY FROM PARENT`: inherit again.
    CopyFromParent,
}

/// What a `COMMENT ON` names, as written.
#[derive(Clone, Debug)]
pub enum CommentObject {
    Table(ObjectName),
    View(ObjectName),
    Sequence(ObjectName),
    Index(ObjectName),
    /// `table.column`, possibly qualified.
    Column(ObjectName),
    Constraint {
        name: String,
        table: ObjectName,
    },
    Database(ObjectName),
    Schema(ObjectName),
    /// An object kind Tardigrade does not have (`FUNCTION`, `TYPE`, …),
    /// or `COMMENT IF EXISTS` (not PostgreSQL's): refused.
    Unsupported(String),
}

impl Stmt {
    /// The sqlparser statement, when it is one.
    pub fn sql(&self) -> Option<&Statement> {
        match self {
            Stmt::Sql(s) => Some(s.as_ref()),
            Stmt::Ours(_) => None,
        }
    }
}

/// Parses what a client sent into statements ([`parse_statements`], with our
/// statements as [`Ours`]).
pub fn parse(sql: &str) -> SqlResult<Vec<Stmt>> {
    let (statements, mut clauses) = parse_all(sql)?;
    Ok(statements
        .into_iter()
        .enumerate()
        .map(|(i, s)| match clauses.iter().position(|(at, _)| *at == i) {
            Some(c) => Stmt::Ours(Ours::AsOf {
                statement: Box::new(s),
                as_of: Box::new(clauses.swap_remove(c).1),
            }),
            None => classify(s),
        })
        .collect())
}

/// Our statements travel through sqlparser's parse as `Unload`s carrying a
/// marker (the token pass replaces them with a placeholder, see
/// [`rewrite_statement`]); they are turned into [`Ours`] here and nowhere
/// else reads the markers.
fn classify(s: Statement) -> Stmt {
    if let Statement::Comment {
        object_type,
        object_name,
        comment,
        if_exists,
    } = s
    {
        return Stmt::Ours(comment_statement(
            object_type,
            object_name,
            comment,
            if_exists,
        ));
    }
    if let Statement::CreateSequence {
        name,
        sequence_options,
        ..
    } = &s
        && let Some(sqlparser::ast::ObjectNamePart::Identifier(first)) = name.0.first()
        && let Some(rest) = first.value.strip_prefix(ALTER_SEQUENCE_MARKER)
    {
        let (if_exists, restart) = rest.split_once(':').unwrap_or((rest, ""));
        let restart = match restart {
            "" => None,
            "start" => Some(None),
            n => Some(n.parse().ok()),
        };
        return Stmt::Ours(Ours::AlterSequence {
            name: ObjectName(name.0[1..].to_vec()),
            if_exists: if_exists == "1",
            options: sequence_options.clone(),
            restart,
        });
    }
    if let Statement::Fetch {
        into: Some(into), ..
    } = &s
        && into.to_string() == format!("\"{MOVE_MARKER}\"")
    {
        let mut s = s;
        if let Statement::Fetch { into, .. } = &mut s {
            *into = None;
        }
        return Stmt::Ours(Ours::Move(Box::new(s)));
    }
    let Statement::Unload {
        query,
        query_text: Some(marker),
        to,
        ..
    } = &s
    else {
        return Stmt::Sql(Box::new(s));
    };
    let target = to.value.clone();
    let ours = match marker.as_str() {
        SPLIT_AT_MARKER => match query {
            Some(q) => Ours::SplitAt {
                target,
                query: q.clone(),
            },
            None => return Stmt::Sql(Box::new(s)),
        },
        SHOW_RANGES_TABLE_MARKER => Ours::ShowRanges {
            target,
            index: false,
        },
        SHOW_RANGES_INDEX_MARKER => Ours::ShowRanges {
            target,
            index: true,
        },
        REGION_STMT_MARKER => match decode_region_marker(&target) {
            Some(r) => Ours::Regions(r),
            None => return Stmt::Sql(Box::new(s)),
        },
        SET_CONSTRAINTS_MARKER => {
            let mut parts = target.split(SET_CONSTRAINTS_SEPARATOR);
            Ours::SetConstraints {
                deferred: parts.next() == Some("deferred"),
                names: parts.map(str::to_string).collect(),
            }
        }
        SHOW_REGIONS_MARKER => Ours::ShowRegions {
            database: target.strip_prefix("db:").map(str::to_string),
        },
        CONFIGURE_ZONE_MARKER | SHOW_ZONES_MARKER => match decode_zone_marker(marker, &target) {
            Some(ours) => ours,
            None => return Stmt::Sql(Box::new(s)),
        },
        SHOW_INDEXES_MARKER => Ours::ShowIndexes { target },
        SHOW_CONSTRAINTS_MARKER => Ours::ShowConstraints { target },
        SHOW_STATISTICS_MARKER => Ours::ShowStatistics { target },
        CREATE_STATISTICS_MARKER => {
            let mut parts = target.split('\0');
            let table = parts.next().unwrap_or_default().to_string();
            let name = parts.next().unwrap_or_default().to_string();
            Ours::CreateStatistics {
                name,
                target: table,
                columns: parts.map(str::to_string).collect(),
            }
        }
        _ => return Stmt::Sql(Box::new(s)),
    };
    Stmt::Ours(ours)
}

/// [`Ours::Comment`] of a parsed `COMMENT ON`.
fn comment_statement(
    object_type: sqlparser::ast::CommentObject,
    mut name: ObjectName,
    comment: Option<String>,
    if_exists: bool,
) -> Ours {
    use sqlparser::ast::CommentObject as K;
    let constraint = match name.0.first() {
        Some(sqlparser::ast::ObjectNamePart::Identifier(first))
            if matches!(object_type, K::Table) =>
        {
            first
                .value
                .strip_prefix(COMMENT_CONSTRAINT_MARKER)
                .map(str::to_string)
        }
        _ => None,
    };
    let object = if if_exists {
        CommentObject::Unsupported("COMMENT IF EXISTS".into())
    } else if let Some(constraint) = constraint {
        name.0.remove(0);
        CommentObject::Constraint {
            name: constraint,
            table: name,
        }
    } else {
        match object_type {
            K::Table => CommentObject::Table(name),
            K::View => CommentObject::View(name),
            K::Sequence => CommentObject::Sequence(name),
            K::Index => CommentObject::Index(name),
            K::Column => CommentObject::Column(name),
            K::Database => CommentObject::Database(name),
            K::Schema => CommentObject::Schema(name),
            other => CommentObject::Unsupported(format!("COMMENT ON {other}")),
        }
    };
    Ours::Comment { object, comment }
}

/// Parses a query string into statements (empty statements are dropped),
/// refusing those nested too deeply ([`nesting`]). Internal SQL (views,
/// CREATE TABLE AS) uses this; client input goes through [`parse`].
pub fn parse_statements(sql: &str) -> SqlResult<Vec<Statement>> {
    let (statements, clauses) = parse_all(sql)?;
    if !clauses.is_empty() {
        return Err(as_of::not_top_level());
    }
    Ok(statements)
}

/// The statements, and the `AS OF SYSTEM TIME` clauses taken out of them
/// (by the statement's position).
fn parse_all(sql: &str) -> SqlResult<(Vec<Statement>, Vec<(usize, AsOf)>)> {
    let mut recursion = 0;
    if let Ok(tokens) = Tokenizer::new(&PostgreSqlDialect {}, sql).tokenize() {
        nesting::check_tokens(&tokens)?;
        recursion = nesting::recursion_estimate(&tokens);
        if recursion > MAX_NESTING {
            return Err(nesting::too_deep());
        }
    }
    let (statements, clauses) = match parse_unbounded(sql) {
        // Probably the parser's recursion limit, swallowed on a path that
        // tried another parse (each level of nesting may cost the parser
        // two or three of its levels).
        Err(e)
            if e.code == tardigrade_sqltypes::error::codes::SYNTAX_ERROR
                && recursion * 3 > MAX_NESTING =>
        {
            return Err(nesting::too_deep());
        }
        r => r?,
    };
    let mut out = Vec::with_capacity(statements.len());
    let mut refused = None;
    for statement in statements {
        // Every statement is checked, so that each too-deep one is taken
        // apart rather than dropped recursively.
        match nesting::bound_statement(statement) {
            Ok(mut s) => {
                let _ = sqlparser::ast::visit_expressions_mut(&mut s, |e| {
                    sign_binds_tighter_than_pow(e);
                    descriptions::rewrite(e);
                    std::ops::ControlFlow::<()>::Continue(())
                });
                out.push(s)
            }
            Err(e) => refused = Some(e),
        }
    }
    match refused {
        Some(e) => Err(e),
        None => Ok((out, clauses)),
    }
}

/// PostgreSQL's unary minus and plus bind tighter than `^` (`-2 ^ 2` is 4,
/// `-x ^ 2` is `(-x) ^ 2`), sqlparser's looser (`-(2 ^ 2)`): the sign moves
/// onto the leftmost operand of the `^` chain it was given. (Parenthesized,
/// `-(2 ^ 2)` is a `Nested` operand and stays as written.)
fn sign_binds_tighter_than_pow(e: &mut sqlparser::ast::Expr) {
    use sqlparser::ast::{BinaryOperator, Expr, UnaryOperator};
    fn leftmost(e: &mut Expr) -> &mut Expr {
        match e {
            Expr::BinaryOp {
                op: BinaryOperator::PGExp,
                left,
                ..
            } => leftmost(left),
            other => other,
        }
    }
    let Expr::UnaryOp {
        op: op @ (UnaryOperator::Minus | UnaryOperator::Plus),
        expr,
    } = e
    else {
        return;
    };
    if !matches!(
        expr.as_ref(),
        Expr::BinaryOp {
            op: BinaryOperator::PGExp,
            ..
        }
    ) {
        return;
    }
    let op = *op;
    let placeholder = || Expr::value(sqlparser::ast::Value::Null);
    let mut pow = std::mem::replace(expr.as_mut(), placeholder());
    let leaf = leftmost(&mut pow);
    let operand = std::mem::replace(leaf, placeholder());
    *leaf = Expr::UnaryOp {
        op,
        expr: Box::new(operand),
    };
    *e = pow;
}

/// Normalizes an identifier: unquoted names fold to lower case, as in PostgreSQL.
pub fn normalize(ident: &Ident) -> String {
    if ident.quote_style.is_some() {
        ident.value.clone()
    } else {
        ident.value.to_lowercase()
    }
}

/// The statements (see [`parse_all`]), without the bounds on nesting.
type Parsed = (Vec<Statement>, Vec<(usize, AsOf)>);

fn parse_unbounded(sql: &str) -> SqlResult<Parsed> {
    if !might_need_rewrite(sql) {
        return Ok((parse_plain(sql)?, Vec::new()));
    }
    let dialect = PostgreSqlDialect {};
    let tokens = match Tokenizer::new(&dialect, sql).tokenize_with_location() {
        Ok(t) => t,
        // Let the parser report it the usual way.
        Err(_) => return Ok((parse_plain(sql)?, Vec::new())),
    };
    let mut out_tokens: Vec<TokenWithSpan> = Vec::with_capacity(tokens.len());
    let mut fixups: Vec<(usize, Fixup)> = Vec::new();
    let mut clauses: Vec<(usize, AsOf)> = Vec::new();
    let mut ordinal = 0;
    for stmt in split_statements(&tokens) {
        let significant = stmt.iter().any(|t| !is_space(&t.token));
        let (stmt, as_of) = as_of::extract(sql, stmt)?;
        if let Some(a) = as_of {
            clauses.push((ordinal, a));
        }
        let stmt = &rewrite_window_exclusions(&stmt)[..];
        let stmt = &rewrite_fetch_first(stmt)[..];
        let (rewritten, fixup) = rewrite_statement(sql, stmt)?;
        out_tokens.extend(rewritten);
        if let Some(f) = fixup {
            fixups.push((ordinal, f));
        }
        if significant {
            ordinal += 1;
        }
    }
    let mut statements = Parser::new(&dialect)
        .with_recursion_limit(MAX_NESTING)
        .with_tokens_with_locations(out_tokens)
        .parse_statements()
        .map_err(|e| parser_error(sql, e))?;
    for (i, f) in fixups {
        let Some(s) = statements.get_mut(i) else {
            continue;
        };
        apply_fixup(s, f);
    }
    Ok((statements, clauses))
}

fn parse_plain(sql: &str) -> SqlResult<Vec<Statement>> {
    let dialect = PostgreSqlDialect {};
    Parser::new(&dialect)
        .with_recursion_limit(MAX_NESTING)
        .try_with_sql(sql)
        .and_then(|mut p| p.parse_statements())
        .map_err(|e| parser_error(sql, e))
}

/// A cheap test: statements without any of these words parse as they are.
fn might_need_rewrite(sql: &str) -> bool {
    let lower = sql.to_ascii_lowercase();
    [
        "upsert",
        "storing",
        "index",
        "family",
        "ranges",
        "split",
        "@",
        "constraints",
        "keys",
        "statistics",
        "move",
        "fetch",
        "exclude",
        "sequence",
        "comment",
        "zone",
        "system",
        "regions",
        "region",
        "locality",
        "survival",
    ]
    .iter()
    .any(|w| lower.contains(w))
}

/// What to change in a parsed statement.
enum Fixup {
    Upsert,
    /// A `MOVE` parsed as `FETCH`: mark it.
    Move,
    /// Index constraints to add to a CREATE TABLE.
    TableIndexes(Vec<TableConstraint>),
    /// Replace the placeholder with this statement.
    Replace(Box<Statement>),
    /// A `COMMENT ON CONSTRAINT` parsed as `COMMENT ON TABLE`: mark it
    /// with the constraint's name ([`COMMENT_CONSTRAINT_MARKER`]).
    CommentConstraint(String),
    /// An `ALTER SEQUENCE` parsed as `CREATE SEQUENCE`: mark it
    /// ([`ALTER_SEQUENCE_MARKER`]).
    AlterSequence {
        if_exists: bool,
        restart: Option<Option<i64>>,
    },
}

fn apply_fixup(s: &mut Statement, f: Fixup) {
    match f {
        Fixup::Upsert => {
            if let Statement::Insert(ins) = s {
                ins.replace_into = true;
            }
        }
        Fixup::TableIndexes(mut cs) => {
            if let Statement::CreateTable(ct) = s {
                ct.constraints.append(&mut cs);
            }
        }
        Fixup::Replace(r) => *s = *r,
        Fixup::AlterSequence { if_exists, restart } => {
            if let Statement::CreateSequence { name, .. } = s {
                let restart = match restart {
                    None => String::new(),
                    Some(None) => "start".to_string(),
                    Some(Some(n)) => n.to_string(),
                };
                let marker = format!("{ALTER_SEQUENCE_MARKER}{}:{restart}", if_exists as u8);
                name.0.insert(
                    0,
                    sqlparser::ast::ObjectNamePart::Identifier(Ident::with_quote('"', marker)),
                );
            }
        }
        Fixup::CommentConstraint(constraint) => {
            if let Statement::Comment { object_name, .. } = s {
                object_name.0.insert(
                    0,
                    sqlparser::ast::ObjectNamePart::Identifier(Ident::with_quote(
                        '"',
                        format!("{COMMENT_CONSTRAINT_MARKER}{constraint}"),
                    )),
                );
            }
        }
        Fixup::Move => {
            if let Statement::Fetch { into, .. } = s {
                *into = Some(ObjectName::from(vec![Ident::with_quote('"', MOVE_MARKER)]));
            }
        }
    }
}

fn is_space(t: &Token) -> bool {
    matches!(t, Token::Whitespace(_))
}

fn is_word(t: &Token, kw: &str) -> bool {
    matches!(t, Token::Word(w) if w.quote_style.is_none() && w.value.eq_ignore_ascii_case(kw))
}

/// `FETCH {FIRST | NEXT} (expr) {ROW | ROWS} {ONLY | WITH TIES}` (as
/// SQLAlchemy writes it): the parser takes only a value after FIRST.
/// Parentheses around one token (a number, a parameter), or around one
/// token cast to a type, give way to the token; a longer expression with
/// ONLY becomes `LIMIT (expr)`, which means the same.
/// A longer expression WITH TIES is left to the parser's error.
fn rewrite_fetch_first(stmt: &[TokenWithSpan]) -> Vec<TokenWithSpan> {
    let mut out = stmt.to_vec();
    let mut from = 0;
    loop {
        let sig = significant(&out);
        let word = |k: usize, kw: &str| sig.get(k).is_some_and(|&i| is_word(&out[i].token, kw));
        let Some(k) = (from..sig.len()).find(|&k| {
            word(k, "fetch")
                && (word(k + 1, "first") || word(k + 1, "next"))
                && sig
                    .get(k + 2)
                    .is_some_and(|&i| out[i].token == Token::LParen)
        }) else {
            return out;
        };
        from = k + 1;
        let mut depth = 0usize;
        let mut close = None;
        for (j, &i) in sig.iter().enumerate().skip(k + 2) {
            match out[i].token {
                Token::LParen => depth += 1,
                Token::RParen => {
                    depth -= 1;
                    if depth == 0 {
                        close = Some(j);
                        break;
                    }
                }
                _ => {}
            }
        }
        let Some(m) = close else {
            return out;
        };
        let rows = word(m + 1, "row") || word(m + 1, "rows");
        let cast = m > k + 4 && out[sig[k + 4]].token == Token::DoubleColon;
        let drop: Vec<usize> = if m == k + 4 {
            vec![sig[k + 2], sig[m]]
        } else if cast {
            // `(value::type)` (SQLAlchemy's bound count): the value; the
            // count is an integer whatever it is cast to.
            let mut d = vec![sig[k + 2]];
            d.extend(sig[k + 4]..=sig[m]);
            d
        } else if rows && word(m + 2, "only") {
            out[sig[k]] = with_span(Token::make_keyword("LIMIT"), &out[sig[k]]);
            vec![sig[k + 1], sig[m + 1], sig[m + 2]]
        } else {
            continue;
        };
        out = out
            .into_iter()
            .enumerate()
            .filter(|(i, _)| !drop.contains(i))
            .map(|(_, t)| t)
            .collect();
    }
}

/// Window frames' `EXCLUDE CURRENT ROW | GROUP | TIES | NO OTHERS`, which
/// the parser does not take: removed, and the exclusion carried in the
/// window specification's name ([`WINDOW_EXCLUDE_MARKER`]). Only an
/// `EXCLUDE` right before the specification's closing parenthesis counts.
fn rewrite_window_exclusions(stmt: &[TokenWithSpan]) -> Vec<TokenWithSpan> {
    let mut out = stmt.to_vec();
    loop {
        let sig = significant(&out);
        let word = |k: usize, kw: &str| sig.get(k).is_some_and(|&i| is_word(&out[i].token, kw));
        let found = (0..sig.len()).find_map(|k| {
            if !word(k, "exclude") {
                return None;
            }
            let (kind, len) = if word(k + 1, "current") && word(k + 2, "row") {
                ("current row", 3)
            } else if word(k + 1, "group") {
                ("group", 2)
            } else if word(k + 1, "ties") {
                ("ties", 2)
            } else if word(k + 1, "no") && word(k + 2, "others") {
                ("no others", 3)
            } else {
                return None;
            };
            let close = *sig.get(k + len)?;
            (out[close].token == Token::RParen).then_some((k, kind, len))
        });
        let Some((k, kind, len)) = found else {
            return out;
        };
        // The specification's opening parenthesis.
        let mut depth = 0usize;
        let mut open = None;
        for j in (0..k).rev() {
            match out[sig[j]].token {
                Token::RParen => depth += 1,
                Token::LParen if depth == 0 => {
                    open = Some(j);
                    break;
                }
                Token::LParen => depth -= 1,
                _ => {}
            }
        }
        let (start, end) = (sig[k], sig[k + len - 1]);
        out.drain(start..=end);
        let Some(open) = open else {
            continue;
        };
        if kind == "no others" {
            continue;
        }
        let first = sig[open + 1];
        let name = match &out[first].token {
            Token::Word(w)
                if w.quote_style.is_some()
                    || !["partition", "order", "rows", "range", "groups"]
                        .iter()
                        .any(|kw| w.value.eq_ignore_ascii_case(kw)) =>
            {
                Some(normalize(&Ident {
                    value: w.value.clone(),
                    quote_style: w.quote_style,
                    span: sqlparser::tokenizer::Span::empty(),
                }))
            }
            _ => None,
        };
        let marker = match &name {
            Some(n) => format!("{WINDOW_EXCLUDE_MARKER}{kind};{n}"),
            None => format!("{WINDOW_EXCLUDE_MARKER}{kind}"),
        };
        let token = with_span(
            Token::Word(sqlparser::tokenizer::Word {
                value: marker,
                quote_style: Some('"'),
                keyword: sqlparser::keywords::Keyword::NoKeyword,
            }),
            &out[first],
        );
        if name.is_some() {
            out[first] = token;
        } else {
            let sp = space(&out[first]);
            out.insert(first, sp);
            out.insert(first, token);
        }
    }
}

/// The statements of a token stream, each with its terminating semicolon.
fn split_statements(tokens: &[TokenWithSpan]) -> Vec<&[TokenWithSpan]> {
    let mut out = Vec::new();
    let mut start = 0;
    for (i, t) in tokens.iter().enumerate() {
        if t.token == Token::SemiColon {
            out.push(&tokens[start..=i]);
            start = i + 1;
        }
    }
    if start < tokens.len() {
        out.push(&tokens[start..]);
    }
    out
}

/// Positions of the significant (non-whitespace) tokens.
fn significant(tokens: &[TokenWithSpan]) -> Vec<usize> {
    tokens
        .iter()
        .enumerate()
        .filter(|(_, t)| !is_space(&t.token) && t.token != Token::SemiColon)
        .map(|(i, _)| i)
        .collect()
}

fn with_span(token: Token, like: &TokenWithSpan) -> TokenWithSpan {
    TokenWithSpan {
        token,
        span: like.span,
    }
}

fn space(like: &TokenWithSpan) -> TokenWithSpan {
    with_span(Token::Whitespace(Whitespace::Space), like)
}

/// A placeholder statement (`SELECT 1`) replaced after parsing.
fn placeholder(stmt: &[TokenWithSpan]) -> Vec<TokenWithSpan> {
    let Some(first) = stmt.first() else {
        return Vec::new();
    };
    let mut out = vec![
        with_span(Token::make_keyword("SELECT"), first),
        space(first),
        with_span(Token::Number("1".into(), false), first),
    ];
    if let Some(last) = stmt.last()
        && last.token == Token::SemiColon
    {
        out.push(last.clone());
    }
    out
}

/// The source text of tokens (for names).
fn tokens_text(tokens: &[TokenWithSpan]) -> String {
    let mut s = String::new();
    for t in tokens {
        match &t.token {
            Token::Word(w) if w.quote_style.is_some() => s.push_str(&w.value),
            Token::Word(w) => s.push_str(&w.value.to_lowercase()),
            Token::Whitespace(_) => {}
            other => s.push_str(&other.to_string()),
        }
    }
    s
}

/// An `Unload` carrying one of our statements (see the `*_MARKER`s).
fn marker_statement(marker: &str, target: String) -> Statement {
    Statement::Unload {
        query: None,
        query_text: Some(marker.into()),
        to: Ident::new(target),
        auth: None,
        with: Vec::new(),
        options: Vec::new(),
    }
}

fn rewrite_statement(
    sql: &str,
    stmt: &[TokenWithSpan],
) -> SqlResult<(Vec<TokenWithSpan>, Option<Fixup>)> {
    let sig = significant(stmt);
    let word = |k: usize, kw: &str| sig.get(k).is_some_and(|&i| is_word(&stmt[i].token, kw));
    // FETCH / MOVE: a negative count (`FETCH ABSOLUTE -1`), which the parser
    // does not take, as one number token; MOVE parses as FETCH.
    if word(0, "fetch") || word(0, "move") {
        let mut out: Vec<TokenWithSpan> = Vec::with_capacity(stmt.len());
        let mut k = 0;
        while k < stmt.len() {
            let t = &stmt[k];
            if t.token == Token::Minus
                && let Some(TokenWithSpan {
                    token: Token::Number(n, long),
                    ..
                }) = stmt.get(k + 1)
            {
                out.push(with_span(Token::Number(format!("-{n}"), *long), t));
                k += 2;
                continue;
            }
            out.push(t.clone());
            k += 1;
        }
        if word(0, "move") {
            out[sig[0]] = with_span(Token::make_keyword("FETCH"), &stmt[sig[0]]);
            return Ok((out, Some(Fixup::Move)));
        }
        return Ok((out, None));
    }
    // ALTER SEQUENCE [IF EXISTS] name options: parsed as CREATE SEQUENCE,
    // without IF EXISTS and RESTART (which CREATE does not take).
    if word(0, "alter") && word(1, "sequence") {
        let mut drop = vec![false; stmt.len()];
        let if_exists = word(2, "if") && word(3, "exists");
        if if_exists {
            drop[sig[2]] = true;
            drop[sig[3]] = true;
        }
        let mut restart = None;
        if let Some(k) = (2..sig.len()).find(|&k| word(k, "restart")) {
            drop[sig[k]] = true;
            let mut j = k + 1;
            if word(j, "with") {
                drop[sig[j]] = true;
                j += 1;
            }
            let negative = sig.get(j).is_some_and(|&i| stmt[i].token == Token::Minus);
            let at = if negative { j + 1 } else { j };
            let value = match sig.get(at).map(|&i| &stmt[i].token) {
                Some(Token::Number(n, _)) => {
                    let text = if negative { format!("-{n}") } else { n.clone() };
                    let v = text.parse::<i64>().map_err(|_| {
                        SqlError::syntax(format!(
                            "ALTER SEQUENCE: RESTART value {text} is not a bigint"
                        ))
                    })?;
                    for &i in &sig[j..=at] {
                        drop[i] = true;
                    }
                    Some(v)
                }
                _ if at > k + 1 => {
                    return Err(SqlError::syntax(
                        "ALTER SEQUENCE: expected a number after RESTART WITH",
                    ));
                }
                _ => None,
            };
            restart = Some(value);
        }
        let mut out: Vec<TokenWithSpan> = stmt
            .iter()
            .zip(&drop)
            .filter(|(_, d)| !**d)
            .map(|(t, _)| t.clone())
            .collect();
        if let Some(first) = stmt.iter().position(|t| !is_space(&t.token)) {
            let at = out.iter().position(|t| !is_space(&t.token)).unwrap_or(0);
            out[at] = with_span(Token::make_keyword("CREATE"), &stmt[first]);
        }
        return Ok((out, Some(Fixup::AlterSequence { if_exists, restart })));
    }
    // COMMENT ON …: a dollar-quoted comment as a plain string (the parser
    // takes only the latter); CONSTRAINT c ON t as TABLE t, marked.
    if word(0, "comment") && word(1, "on") {
        let mut out = stmt.to_vec();
        if let Some(&last) = sig.last() {
            match &stmt[last].token {
                Token::DollarQuotedString(d) => {
                    out[last] = with_span(Token::SingleQuotedString(d.value.clone()), &stmt[last]);
                }
                // The parser would take a name as the text; PostgreSQL
                // takes only a string constant or NULL.
                Token::Word(w)
                    if sig.len() >= 2
                        && word(sig.len() - 2, "is")
                        && !word(sig.len() - 1, "null") =>
                {
                    return Err(SqlError::syntax(format!(
                        "syntax error at or near \"{}\"",
                        w.value
                    )));
                }
                _ => {}
            }
        }
        let constraint = match sig.get(3).map(|&i| &stmt[i].token) {
            Some(Token::Word(w))
                if word(2, "constraint") && word(4, "on") && !word(5, "domain") =>
            {
                Some(normalize(&Ident {
                    value: w.value.clone(),
                    quote_style: w.quote_style,
                    span: sqlparser::tokenizer::Span::empty(),
                }))
            }
            _ => None,
        };
        let Some(constraint) = constraint else {
            return Ok((out, None));
        };
        out[sig[2]] = with_span(Token::make_keyword("TABLE"), &stmt[sig[2]]);
        let (name, on) = (sig[3], sig[4]);
        let out = out
            .into_iter()
            .enumerate()
            .filter(|(i, _)| *i != name && *i != on)
            .map(|(_, t)| t)
            .collect();
        return Ok((out, Some(Fixup::CommentConstraint(constraint))));
    }
    // UPSERT INTO …
    if word(0, "upsert") {
        let mut out = stmt.to_vec();
        out[sig[0]] = with_span(Token::make_keyword("INSERT"), &stmt[sig[0]]);
        return Ok((out, Some(Fixup::Upsert)));
    }
    // SET CONSTRAINTS ALL {DEFERRED | IMMEDIATE}
    if word(0, "set") && word(1, "constraints") {
        let end = if sig
            .last()
            .is_some_and(|&i| stmt[i].token == Token::SemiColon)
        {
            sig.len() - 1
        } else {
            sig.len()
        };
        let deferred = word(end.saturating_sub(1), "deferred");
        if end < 4 || !(deferred || word(end - 1, "immediate")) {
            return Err(SqlError::syntax(
                "SET CONSTRAINTS: expected {ALL | name [, …]} {DEFERRED | IMMEDIATE}",
            ));
        }
        // The names, each the last part of a possibly qualified name.
        let mut names = Vec::new();
        if !(end == 4 && word(2, "all")) {
            let mut current: Option<String> = None;
            for &i in &sig[2..end - 1] {
                match &stmt[i].token {
                    Token::Word(w) if w.quote_style.is_none() => {
                        current = Some(w.value.to_lowercase())
                    }
                    Token::Word(w) => current = Some(w.value.clone()),
                    Token::Period if current.is_some() => {}
                    Token::Comma => names.extend(current.take()),
                    other => {
                        return Err(SqlError::syntax(format!(
                            "SET CONSTRAINTS: unexpected {other}"
                        )));
                    }
                }
            }
            match current {
                Some(n) => names.push(n),
                None => return Err(SqlError::syntax("SET CONSTRAINTS: expected a name")),
            }
        }
        let mut target = if deferred { "deferred" } else { "immediate" }.to_string();
        for n in &names {
            target.push(SET_CONSTRAINTS_SEPARATOR);
            target.push_str(n);
        }
        let unload = marker_statement(SET_CONSTRAINTS_MARKER, target);
        return Ok((placeholder(stmt), Some(Fixup::Replace(Box::new(unload)))));
    }
    // ALTER <target> CONFIGURE ZONE …, SHOW [ALL] ZONE CONFIGURATION(S) …
    if let Some(target) = zone_statement(stmt, &sig)? {
        let unload = marker_statement(target.0, target.1);
        return Ok((placeholder(stmt), Some(Fixup::Replace(Box::new(unload)))));
    }
    // SHOW RANGES FROM TABLE t / FROM INDEX t@i
    if word(0, "show") && word(1, "ranges") {
        if !word(2, "from") || !(word(3, "table") || word(3, "index")) {
            return Err(SqlError::unsupported(
                "SHOW RANGES: only FROM TABLE t and FROM INDEX t@i are supported",
            ));
        }
        let index = word(3, "index");
        let target_tokens: Vec<TokenWithSpan> = sig[4..].iter().map(|&i| stmt[i].clone()).collect();
        if target_tokens.is_empty() {
            return Err(SqlError::syntax("SHOW RANGES: expected a name"));
        }
        let marker = if index {
            SHOW_RANGES_INDEX_MARKER
        } else {
            SHOW_RANGES_TABLE_MARKER
        };
        let unload = Statement::Unload {
            query: None,
            query_text: Some(marker.into()),
            to: Ident::new(tokens_text(&target_tokens)),
            auth: None,
            with: Vec::new(),
            options: Vec::new(),
        };
        return Ok((placeholder(stmt), Some(Fixup::Replace(Box::new(unload)))));
    }
    // SHOW STATISTICS FOR TABLE t
    if word(0, "show") && word(1, "statistics") {
        if !word(2, "for") || !word(3, "table") || sig.len() < 5 {
            return Err(SqlError::syntax(
                "SHOW STATISTICS: expected FOR TABLE <name>",
            ));
        }
        let target_tokens: Vec<TokenWithSpan> = sig[4..].iter().map(|&i| stmt[i].clone()).collect();
        let unload = marker_statement(SHOW_STATISTICS_MARKER, tokens_text(&target_tokens));
        return Ok((placeholder(stmt), Some(Fixup::Replace(Box::new(unload)))));
    }
    // CREATE STATISTICS name [ON col, …] FROM t
    if word(0, "create") && word(1, "statistics") {
        let from = (2..sig.len()).find(|&k| word(k, "from"));
        let (Some(from), Some(&name_at)) = (from, sig.get(2)) else {
            return Err(SqlError::syntax(
                "CREATE STATISTICS: expected <name> [ON <columns>] FROM <table>",
            ));
        };
        let name = match &stmt[name_at].token {
            Token::Word(w) if from > 2 => normalize(&Ident {
                value: w.value.clone(),
                quote_style: w.quote_style,
                span: stmt[name_at].span,
            }),
            _ => {
                return Err(SqlError::syntax(
                    "CREATE STATISTICS: expected a statistics name",
                ));
            }
        };
        let mut columns = Vec::new();
        if from > 3 {
            if !word(3, "on") {
                return Err(SqlError::syntax("CREATE STATISTICS: expected ON or FROM"));
            }
            for &i in &sig[4..from] {
                match &stmt[i].token {
                    Token::Comma => {}
                    Token::Word(w) => columns.push(normalize(&Ident {
                        value: w.value.clone(),
                        quote_style: w.quote_style,
                        span: stmt[i].span,
                    })),
                    _ => {
                        return Err(SqlError::syntax(
                            "CREATE STATISTICS: expected column names after ON",
                        ));
                    }
                }
            }
        }
        let target_tokens: Vec<TokenWithSpan> =
            sig[from + 1..].iter().map(|&i| stmt[i].clone()).collect();
        if target_tokens.is_empty() {
            return Err(SqlError::syntax(
                "CREATE STATISTICS: expected a table after FROM",
            ));
        }
        let mut to = tokens_text(&target_tokens);
        to.push('\0');
        to.push_str(&name);
        for c in columns {
            to.push('\0');
            to.push_str(&c);
        }
        let unload = marker_statement(CREATE_STATISTICS_MARKER, to);
        return Ok((placeholder(stmt), Some(Fixup::Replace(Box::new(unload)))));
    }
    // SHOW INDEXES FROM t / SHOW CONSTRAINTS FROM t
    if word(0, "show")
        && (word(1, "index") || word(1, "indexes") || word(1, "keys") || word(1, "constraints"))
        && word(2, "from")
    {
        let target_tokens: Vec<TokenWithSpan> = sig[3..].iter().map(|&i| stmt[i].clone()).collect();
        if target_tokens.is_empty() {
            return Err(SqlError::syntax("SHOW … FROM: expected a table name"));
        }
        let marker = if word(1, "constraints") {
            SHOW_CONSTRAINTS_MARKER
        } else {
            SHOW_INDEXES_MARKER
        };
        let unload = Statement::Unload {
            query: None,
            query_text: Some(marker.into()),
            to: Ident::new(tokens_text(&target_tokens)),
            auth: None,
            with: Vec::new(),
            options: Vec::new(),
        };
        return Ok((placeholder(stmt), Some(Fixup::Replace(Box::new(unload)))));
    }
    // ALTER TABLE t SPLIT AT <query>
    if word(0, "alter")
        && word(1, "table")
        && let Some(k) = (2..sig.len()).find(|&k| word(k, "split") && word(k + 1, "at"))
    {
        {
            let target_tokens: Vec<TokenWithSpan> =
                sig[2..k].iter().map(|&i| stmt[i].clone()).collect();
            let query_tokens: Vec<TokenWithSpan> = stmt[sig[k + 1] + 1..]
                .iter()
                .filter(|t| t.token != Token::SemiColon)
                .cloned()
                .collect();
            let dialect = PostgreSqlDialect {};
            let query = Parser::new(&dialect)
                .with_recursion_limit(MAX_NESTING)
                .with_tokens_with_locations(query_tokens)
                .parse_query()
                .map_err(|e| parser_error(sql, e))?;
            let unload = Statement::Unload {
                query: Some(query),
                query_text: Some(SPLIT_AT_MARKER.into()),
                to: Ident::new(tokens_text(&target_tokens)),
                auth: None,
                with: Vec::new(),
                options: Vec::new(),
            };
            return Ok((placeholder(stmt), Some(Fixup::Replace(Box::new(unload)))));
        }
    }
    // CREATE [UNIQUE] INDEX … STORING (…)
    if word(0, "create") && (word(1, "index") || (word(1, "unique") && word(2, "index"))) {
        let mut out = stmt.to_vec();
        let mut depth = 0i32;
        for t in &mut out {
            match t.token {
                Token::LParen => depth += 1,
                Token::RParen => depth -= 1,
                _ => {}
            }
            if depth == 0 && is_word(&t.token, "storing") {
                t.token = Token::make_keyword("INCLUDE");
            }
        }
        return Ok((merge_at_names(out), None));
    }
    // DROP INDEX t@i, ALTER INDEX t@i …
    if (word(0, "drop") || word(0, "alter")) && word(1, "index") {
        return Ok((merge_at_names(stmt.to_vec()), None));
    }
    // CREATE TABLE … ( …, INDEX …, FAMILY … )
    if word(0, "create") && (1..4).any(|k| word(k, "table")) {
        return rewrite_create_table(sql, stmt, &sig);
    }
    Ok((stmt.to_vec(), None))
}

/// Merges `a @ b` into the quoted identifier `"a@b"`.
/// Recognizes the zone configuration statements; gives the marker and its
/// target string (fields separated by NUL: the target's kind and name, then
/// for CONFIGURE ZONE `D` (discard) or `U` and each setting's name and
/// value, the value's first character saying its kind: `n` number, `s`
/// string, `p` COPY FROM PARENT).
fn zone_statement(
    stmt: &[TokenWithSpan],
    sig: &[usize],
) -> SqlResult<Option<(&'static str, String)>> {
    let word = |k: usize, kw: &str| sig.get(k).is_some_and(|&i| is_word(&stmt[i].token, kw));
    let tok = |k: usize| sig.get(k).map(|&i| &stmt[i].token);
    let target_of = |from: usize, to: usize, what: &str| -> SqlResult<String> {
        let kind = match tok(from) {
            Some(Token::Word(w)) => w.value.to_lowercase(),
            _ => {
                return Err(SqlError::syntax(format!(
                    "{what}: expected RANGE, DATABASE, TABLE or INDEX"
                )));
            }
        };
        if !["range", "database", "table", "index", "partition"].contains(&kind.as_str()) {
            return Err(SqlError::syntax(format!(
                "{what}: expected RANGE, DATABASE, TABLE or INDEX, found {kind}"
            )));
        }
        if kind == "partition" {
            return Err(SqlError::unsupported(
                "zone configurations of partitions: table partitioning is not supported",
            ));
        }
        let name_tokens: Vec<TokenWithSpan> =
            sig[from + 1..to].iter().map(|&i| stmt[i].clone()).collect();
        if name_tokens.is_empty() {
            return Err(SqlError::syntax(format!(
                "{what}: expected a name after {kind}"
            )));
        }
        Ok(format!("{kind}\0{}", tokens_text(&name_tokens)))
    };
    if let Some(text) = region_statement(stmt, sig)? {
        return Ok(Some((REGION_STMT_MARKER, text)));
    }
    if word(0, "show") && word(1, "regions") {
        let end = if tok(sig.len() - 1) == Some(&Token::SemiColon) {
            sig.len() - 1
        } else {
            sig.len()
        };
        let target = match end {
            2 => String::new(),
            4 if word(2, "from") && word(3, "cluster") => String::new(),
            4 if word(2, "from") && word(3, "database") => "db:".to_string(),
            5 if word(2, "from") && word(3, "database") => {
                let name: Vec<TokenWithSpan> = vec![stmt[sig[4]].clone()];
                format!("db:{}", tokens_text(&name))
            }
            _ => {
                return Err(SqlError::syntax(
                    "expected SHOW REGIONS [FROM CLUSTER | FROM DATABASE [name]]",
                ));
            }
        };
        return Ok(Some((SHOW_REGIONS_MARKER, target)));
    }
    if word(0, "show") {
        let all = word(1, "all");
        let at = if all { 2 } else { 1 };
        if !word(at, "zone") {
            return Ok(None);
        }
        if word(at + 1, "configurations") && sig.len() == at + 2 {
            return Ok(Some((SHOW_ZONES_MARKER, String::new())));
        }
        if word(at + 1, "configuration") && !all && (word(at + 2, "from") || word(at + 2, "for")) {
            let end = if tok(sig.len() - 1) == Some(&Token::SemiColon) {
                sig.len() - 1
            } else {
                sig.len()
            };
            let target = target_of(at + 3, end, "SHOW ZONE CONFIGURATION")?;
            return Ok(Some((SHOW_ZONES_MARKER, target)));
        }
        return Err(SqlError::syntax(
            "expected SHOW ZONE CONFIGURATIONS or SHOW ZONE CONFIGURATION FROM <target>",
        ));
    }
    if !word(0, "alter") {
        return Ok(None);
    }
    let Some(k) = (2..sig.len()).find(|&k| word(k, "configure") && word(k + 1, "zone")) else {
        return Ok(None);
    };
    let mut out = target_of(1, k, "CONFIGURE ZONE")?;
    let mut j = k + 2;
    let end = if tok(sig.len() - 1) == Some(&Token::SemiColon) {
        sig.len() - 1
    } else {
        sig.len()
    };
    if word(j, "discard") && j + 1 == end {
        out.push_str("\0D");
        return Ok(Some((CONFIGURE_ZONE_MARKER, out)));
    }
    if !word(j, "using") {
        return Err(SqlError::syntax(
            "CONFIGURE ZONE: expected USING or DISCARD",
        ));
    }
    out.push_str("\0U");
    j += 1;
    loop {
        // name [. name] = value
        let mut name = match tok(j) {
            Some(Token::Word(w)) => w.value.to_lowercase(),
            _ => return Err(SqlError::syntax("CONFIGURE ZONE: expected a setting name")),
        };
        j += 1;
        while tok(j) == Some(&Token::Period) {
            match tok(j + 1) {
                Some(Token::Word(w)) => name = format!("{name}.{}", w.value.to_lowercase()),
                _ => return Err(SqlError::syntax("CONFIGURE ZONE: expected a setting name")),
            }
            j += 2;
        }
        if tok(j) != Some(&Token::Eq) {
            return Err(SqlError::syntax(format!(
                "CONFIGURE ZONE: expected = after {name}"
            )));
        }
        j += 1;
        let value = match tok(j) {
            Some(Token::Number(n, _)) => format!("n{n}"),
            Some(Token::Minus) => match tok(j + 1) {
                Some(Token::Number(n, _)) => {
                    j += 1;
                    format!("n-{n}")
                }
                _ => {
                    return Err(SqlError::syntax(format!(
                        "CONFIGURE ZONE: bad value for {name}"
                    )));
                }
            },
            Some(Token::SingleQuotedString(v)) => format!("s{v}"),
            Some(Token::Word(w)) if w.value.eq_ignore_ascii_case("copy") => {
                if !(word(j + 1, "from") && word(j + 2, "parent")) {
                    return Err(SqlError::syntax(
                        "CONFIGURE ZONE: expected COPY FROM PARENT",
                    ));
                }
                j += 2;
                "p".to_string()
            }
            _ => {
                return Err(SqlError::syntax(format!(
                    "CONFIGURE ZONE: the value of {name} must be a number, a string or COPY FROM PARENT"
                )));
            }
        };
        j += 1;
        out.push_str(&format!("\0{name}\0{value}"));
        match tok(j) {
            Some(Token::Comma) => j += 1,
            _ if j >= end => break,
            _ => {
                return Err(SqlError::syntax(
                    "CONFIGURE ZONE: expected , between settings",
                ));
            }
        }
    }
    Ok(Some((CONFIGURE_ZONE_MARKER, out)))
}

/// Recognizes the multi-region statements; gives their marker text (NUL
/// separated: the statement's kind, then its names and flags).
fn region_statement(stmt: &[TokenWithSpan], sig: &[usize]) -> SqlResult<Option<String>> {
    let word = |k: usize, kw: &str| sig.get(k).is_some_and(|&i| is_word(&stmt[i].token, kw));
    let end = match sig.last() {
        Some(&i) if stmt[i].token == Token::SemiColon => sig.len() - 1,
        _ => sig.len(),
    };
    let name = |k: usize| -> SqlResult<String> {
        match sig.get(k).map(|&i| &stmt[i].token) {
            Some(Token::Word(_)) if k < end => Ok(tokens_text(&[stmt[sig[k]].clone()])),
            _ => Err(SqlError::syntax("expected a name")),
        }
    };
    let done = |k: usize| -> SqlResult<()> {
        if k == end {
            Ok(())
        } else {
            Err(SqlError::syntax("unexpected input after the statement"))
        }
    };
    if word(0, "show") && word(1, "survival") && word(2, "goal") {
        if !(word(3, "from") && word(4, "database")) {
            return Err(SqlError::syntax(
                "expected SHOW SURVIVAL GOAL FROM DATABASE [name]",
            ));
        }
        let db = if end > 5 { name(5)? } else { String::new() };
        done(if end > 5 { 6 } else { 5 })?;
        return Ok(Some(format!("goal\0{db}")));
    }
    if word(0, "alter") && word(1, "database") && end > 3 {
        let db = name(2)?;
        let k = if word(3, "set") { 4 } else { 3 };
        if word(k, "primary") && word(k + 1, "region") {
            let region = name(k + 2)?;
            done(k + 3)?;
            return Ok(Some(format!("primary\0{db}\0{region}")));
        }
        if word(3, "add") && word(4, "region") {
            let guarded = word(5, "if") && word(6, "not") && word(7, "exists");
            let at = if guarded { 8 } else { 5 };
            let region = name(at)?;
            done(at + 1)?;
            return Ok(Some(format!("add\0{db}\0{region}\0{}", guarded as u8)));
        }
        if word(3, "drop") && word(4, "region") {
            let guarded = word(5, "if") && word(6, "exists");
            let at = if guarded { 7 } else { 5 };
            let region = name(at)?;
            done(at + 1)?;
            return Ok(Some(format!("drop\0{db}\0{region}\0{}", guarded as u8)));
        }
        if word(3, "survive") && (word(4, "zone") || word(4, "region")) && word(5, "failure") {
            done(6)?;
            return Ok(Some(format!("survive\0{db}\0{}", word(4, "region") as u8)));
        }
        return Ok(None);
    }
    if word(0, "alter") && word(1, "table") {
        let Some(k) = (2..end).find(|&k| word(k, "set") && word(k + 1, "locality")) else {
            return Ok(None);
        };
        let table = tokens_text(
            &sig[2..k]
                .iter()
                .map(|&i| stmt[i].clone())
                .collect::<Vec<_>>(),
        );
        let at = k + 2;
        let locality = if word(at, "global") {
            done(at + 1)?;
            "global".to_string()
        } else if word(at, "regional") && word(at + 1, "by") && word(at + 2, "row") {
            "row".to_string()
        } else if word(at, "regional") && word(at + 1, "by") && word(at + 2, "table") {
            if at + 3 == end {
                "table\0".to_string()
            } else if word(at + 3, "in") && word(at + 4, "primary") && word(at + 5, "region") {
                done(at + 6)?;
                "table\0".to_string()
            } else if word(at + 3, "in") {
                let region = name(at + 4)?;
                done(at + 5)?;
                format!("table\0{region}")
            } else {
                return Err(SqlError::syntax("expected REGIONAL BY TABLE [IN <region>]"));
            }
        } else {
            return Err(SqlError::syntax(
                "expected SET LOCALITY GLOBAL, REGIONAL BY TABLE [IN <region>] or REGIONAL BY ROW",
            ));
        };
        return Ok(Some(format!("locality\0{table}\0{locality}")));
    }
    Ok(None)
}

fn decode_region_marker(text: &str) -> Option<RegionStmt> {
    let p: Vec<&str> = text.split('\0').collect();
    let s = |i: usize| p.get(i).map(|x| x.to_string());
    Some(match *p.first()? {
        "goal" => RegionStmt::ShowSurvivalGoal { database: s(1)? },
        "primary" => RegionStmt::PrimaryRegion {
            database: s(1)?,
            region: s(2)?,
        },
        "add" => RegionStmt::AddRegion {
            database: s(1)?,
            region: s(2)?,
            if_not_exists: s(3)? == "1",
        },
        "drop" => RegionStmt::DropRegion {
            database: s(1)?,
            region: s(2)?,
            if_exists: s(3)? == "1",
        },
        "survive" => RegionStmt::Survive {
            database: s(1)?,
            region: s(2)? == "1",
        },
        "locality" => RegionStmt::SetLocality {
            table: s(1)?,
            locality: match (p.get(2)?, p.get(3)) {
                (&"global", _) => Locality::Global,
                (&"row", _) => Locality::RegionalByRow,
                (&"table", Some(r)) if !r.is_empty() => {
                    Locality::RegionalByTable(Some(r.to_string()))
                }
                (&"table", _) => Locality::RegionalByTable(None),
                _ => return None,
            },
        },
        _ => return None,
    })
}

/// The [`Ours`] a zone marker's target string stands for.
fn decode_zone_marker(marker: &str, text: &str) -> Option<Ours> {
    let mut parts = text.split('\0');
    let target = |kind: &str, name: &str| -> Option<ZoneTarget> {
        let name = name.to_string();
        Some(match kind {
            "range" => ZoneTarget::Range(name),
            "database" => ZoneTarget::Database(name),
            "table" => ZoneTarget::Table(name),
            "index" => ZoneTarget::Index(name),
            _ => return None,
        })
    };
    if marker == SHOW_ZONES_MARKER {
        if text.is_empty() {
            return Some(Ours::ShowZones { target: None });
        }
        let (kind, name) = (parts.next()?, parts.next()?);
        return Some(Ours::ShowZones {
            target: Some(target(kind, name)?),
        });
    }
    let (kind, name) = (parts.next()?, parts.next()?);
    let target = target(kind, name)?;
    let discard = parts.next()? == "D";
    let mut settings = Vec::new();
    while let (Some(name), Some(value)) = (parts.next(), parts.next()) {
        let v = match value.split_at_checked(1)? {
            ("n", n) => ZoneValue::Number(n.to_string()),
            ("s", t) => ZoneValue::Text(t.to_string()),
            ("p", _) => ZoneValue::CopyFromParent,
            _ => return None,
        };
        settings.push((name.to_string(), v));
    }
    Some(Ours::ConfigureZone {
        target,
        discard,
        settings,
    })
}

fn merge_at_names(tokens: Vec<TokenWithSpan>) -> Vec<TokenWithSpan> {
    let mut out: Vec<TokenWithSpan> = Vec::with_capacity(tokens.len());
    let mut i = 0;
    while i < tokens.len() {
        if tokens[i].token == Token::AtSign
            && let (Some(prev), Some(next)) = (out.last(), tokens.get(i + 1))
            && let (Token::Word(a), Token::Word(b)) = (&prev.token, &next.token)
        {
            let fold = |w: &sqlparser::tokenizer::Word| {
                if w.quote_style.is_some() {
                    w.value.clone()
                } else {
                    w.value.to_lowercase()
                }
            };
            let merged = format!("{}@{}", fold(a), fold(b));
            let span = prev.span;
            out.pop();
            out.push(TokenWithSpan {
                token: Token::make_word(&merged, Some('"')),
                span,
            });
            i += 2;
            continue;
        }
        out.push(tokens[i].clone());
        i += 1;
    }
    out
}

/// Removes CockroachDB's INDEX and FAMILY elements from a CREATE TABLE's
/// element list; the indexes come back as constraints after parsing.
fn rewrite_create_table(
    sql: &str,
    stmt: &[TokenWithSpan],
    sig: &[usize],
) -> SqlResult<(Vec<TokenWithSpan>, Option<Fixup>)> {
    // The element list: the first '(' at depth 0 that does not follow AS.
    let Some(open_k) = sig.iter().position(|&i| stmt[i].token == Token::LParen) else {
        return Ok((stmt.to_vec(), None));
    };
    if open_k == 0 || is_word(&stmt[sig[open_k - 1]].token, "as") {
        return Ok((stmt.to_vec(), None));
    }
    let open = sig[open_k];
    // Element boundaries: commas at depth 1, up to the matching ')'.
    let mut depth = 0i32;
    let mut close = None;
    let mut bounds = vec![open + 1];
    for (i, t) in stmt.iter().enumerate().skip(open) {
        match t.token {
            Token::LParen => depth += 1,
            Token::RParen => {
                depth -= 1;
                if depth == 0 {
                    close = Some(i);
                    break;
                }
            }
            Token::Comma if depth == 1 => bounds.push(i + 1),
            _ => {}
        }
    }
    let Some(close) = close else {
        return Ok((stmt.to_vec(), None));
    };
    // Elements as [start, end) token ranges (end excludes the comma).
    let mut elements: Vec<(usize, usize)> = Vec::new();
    for (n, &s) in bounds.iter().enumerate() {
        let e = bounds.get(n + 1).map_or(close, |&next| next - 1);
        elements.push((s, e));
    }
    let mut constraints = Vec::new();
    let mut removed: Vec<bool> = vec![false; elements.len()];
    for (n, &(s, e)) in elements.iter().enumerate() {
        let el: Vec<usize> = (s..e).filter(|&i| !is_space(&stmt[i].token)).collect();
        let w = |k: usize, kw: &str| el.get(k).is_some_and(|&i| is_word(&stmt[i].token, kw));
        let paren_at = |k: usize| el.get(k).is_some_and(|&i| stmt[i].token == Token::LParen);
        let word_at = |k: usize| {
            el.get(k)
                .is_some_and(|&i| matches!(stmt[i].token, Token::Word(_)))
        };
        // INDEX [name] ( / UNIQUE INDEX [name] ( / FAMILY [name] ( / INVERTED INDEX
        let (unique, skip) = if w(0, "unique") && w(1, "index") {
            (true, 2)
        } else if w(0, "index") {
            (false, 1)
        } else if w(0, "family") && (paren_at(1) || (word_at(1) && paren_at(2))) {
            removed[n] = true;
            continue;
        } else if w(0, "inverted") && w(1, "index") {
            return Err(SqlError::unsupported("inverted indexes"));
        } else {
            continue;
        };
        if !(paren_at(skip) || (word_at(skip) && paren_at(skip + 1))) {
            continue;
        }
        removed[n] = true;
        // Parse `CREATE [UNIQUE] INDEX [name] ON x <rest>` for the columns.
        let first = &stmt[el[0]];
        let mut toks = vec![
            with_span(Token::make_keyword("CREATE"), first),
            space(first),
        ];
        if unique {
            toks.push(with_span(Token::make_keyword("UNIQUE"), first));
            toks.push(space(first));
        }
        toks.push(with_span(Token::make_keyword("INDEX"), first));
        toks.push(space(first));
        let mut rest_start = skip;
        if word_at(skip) {
            toks.push(stmt[el[skip]].clone());
            toks.push(space(first));
            rest_start = skip + 1;
        }
        toks.push(with_span(Token::make_keyword("ON"), first));
        toks.push(space(first));
        toks.push(with_span(Token::make_word("x", None), first));
        toks.push(space(first));
        for &i in &el[rest_start..] {
            let mut t = stmt[i].clone();
            if is_word(&t.token, "storing") {
                t.token = Token::make_keyword("INCLUDE");
            }
            toks.push(t);
            toks.push(space(first));
        }
        let dialect = PostgreSqlDialect {};
        let parsed = Parser::new(&dialect)
            .with_recursion_limit(MAX_NESTING)
            .with_tokens_with_locations(toks)
            .parse_statement()
            .map_err(|e| parser_error(sql, e))?;
        let Statement::CreateIndex(ci) = parsed else {
            return Err(SqlError::syntax("invalid index definition"));
        };
        let mut options = Vec::new();
        if ci.unique {
            options.push(IndexOption::Comment(UNIQUE_INDEX_MARKER.into()));
        }
        if !ci.include.is_empty() {
            let names: Vec<String> = ci
                .include
                .iter()
                .map(|i| {
                    if i.quote_style.is_some() {
                        i.value.clone()
                    } else {
                        i.value.to_lowercase()
                    }
                })
                .collect();
            options.push(IndexOption::Comment(format!(
                "{STORING_MARKER}{}",
                names.join("\0")
            )));
        }
        let name = ci
            .name
            .as_ref()
            .and_then(|n: &ObjectName| n.0.last())
            .and_then(|p| p.as_ident().cloned());
        constraints.push(TableConstraint::Index(IndexConstraint {
            display_as_key: false,
            name,
            index_type: None,
            columns: ci.columns,
            index_options: options,
        }));
    }
    if !removed.iter().any(|r| *r) {
        return Ok((stmt.to_vec(), None));
    }
    // Rebuild: the kept elements joined by commas.
    let mut out: Vec<TokenWithSpan> = stmt[..=open].to_vec();
    let mut first = true;
    for (n, &(s, e)) in elements.iter().enumerate() {
        if removed[n] {
            continue;
        }
        if !first {
            out.push(with_span(Token::Comma, &stmt[s.saturating_sub(1)]));
        }
        first = false;
        out.extend_from_slice(&stmt[s..e]);
    }
    out.extend_from_slice(&stmt[close..]);
    Ok((out, Some(Fixup::TableIndexes(constraints))))
}

fn parser_error(sql: &str, e: ParserError) -> SqlError {
    match e {
        ParserError::RecursionLimitExceeded => SqlError::new(
            tardigrade_sqltypes::error::codes::STATEMENT_TOO_COMPLEX,
            "statement is too deeply nested",
        ),
        ParserError::TokenizerError(m) | ParserError::ParserError(m) => {
            let position = position_of(sql, &m);
            let message = strip_location(&m);
            let err = SqlError::syntax(format!("syntax error: {message}"));
            match position {
                Some(p) => err.with_position(p),
                None => err,
            }
        }
    }
}

/// sqlparser reports "… at Line: L, Column: C"; PostgreSQL wants a 1-based
/// character offset into the statement.
fn position_of(sql: &str, message: &str) -> Option<usize> {
    let at = message.rfind("at Line: ")?;
    let rest = &message[at + "at Line: ".len()..];
    let (line, rest) = rest.split_once(", Column: ")?;
    let line: usize = line.trim().parse().ok()?;
    let column: usize = rest
        .trim()
        .trim_end_matches(|c: char| !c.is_ascii_digit())
        .parse()
        .ok()?;
    line_column_offset(sql, line, column)
}

/// The 1-based character offset of where a token starts.
fn span_position(sql: &str, token: &TokenWithSpan) -> Option<usize> {
    let start = token.span.start;
    line_column_offset(sql, start.line as usize, start.column as usize)
}

/// The 1-based character offset of a 1-based line and column.
fn line_column_offset(sql: &str, line: usize, column: usize) -> Option<usize> {
    let mut offset = 0;
    for (i, l) in sql.split('\n').enumerate() {
        if i + 1 == line {
            return Some(offset + l.chars().take(column.saturating_sub(1)).count() + 1);
        }
        offset += l.chars().count() + 1;
    }
    None
}

fn strip_location(message: &str) -> &str {
    match message.rfind(" at Line: ") {
        Some(i) => &message[..i],
        None => message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(sql: &str) -> Statement {
        let mut v = parse_statements(sql).expect("parses");
        assert_eq!(v.len(), 1, "{sql}");
        v.remove(0)
    }

    #[test]
    fn window_frame_exclusions_ride_in_the_window_name() {
        let sql = "SELECT sum(x) OVER (w ORDER BY x ROWS 1 PRECEDING EXCLUDE TIES), \
                   sum(x) OVER (ORDER BY x ROWS BETWEEN 1 PRECEDING AND 1 FOLLOWING EXCLUDE CURRENT ROW), \
                   sum(x) OVER (ROWS UNBOUNDED PRECEDING EXCLUDE NO OTHERS) FROM t WINDOW w AS (PARTITION BY y)";
        let text = one(sql).to_string();
        assert!(!text.contains("EXCLUDE"), "{text}");
        assert!(
            text.contains(&format!("\"{WINDOW_EXCLUDE_MARKER}ties;w\" ORDER BY x")),
            "{text}"
        );
        assert!(
            text.contains(&format!(
                "\"{WINDOW_EXCLUDE_MARKER}current row\" ORDER BY x"
            )),
            "{text}"
        );
        let marked = Ident::with_quote('"', format!("{WINDOW_EXCLUDE_MARKER}ties;w"));
        assert_eq!(
            split_window_name(&marked),
            (Some("w".to_string()), Some("ties".to_string()))
        );
        assert_eq!(
            split_window_name(&Ident::new("W")),
            (Some("w".to_string()), None)
        );
        // EXCLUDE elsewhere is left to the parser.
        assert!(parse_statements("SELECT 1 EXCLUDE TIES").is_err());
    }

    #[test]
    fn upsert_is_insert_with_replace_into() {
        match one("UPSERT INTO t (a) VALUES (1)") {
            Statement::Insert(i) => assert!(i.replace_into),
            other => panic!("{other:?}"),
        }
        match one("INSERT INTO t (a) VALUES (1)") {
            Statement::Insert(i) => assert!(!i.replace_into),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn storing_is_include() {
        match one("CREATE INDEX i ON t (a DESC) STORING (b, c)") {
            Statement::CreateIndex(ci) => assert_eq!(ci.include.len(), 2),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn create_table_indexes_and_families() {
        let s = one(
            "CREATE TABLE t (a INT PRIMARY KEY, b TEXT, c INT, INDEX (b), UNIQUE INDEX u (c DESC) STORING (b), FAMILY f (a, b), INDEX \"Quoted\" (b, c))",
        );
        let Statement::CreateTable(ct) = s else {
            panic!("not a CREATE TABLE")
        };
        assert_eq!(ct.columns.len(), 3);
        assert_eq!(ct.constraints.len(), 3);
        let TableConstraint::Index(u) = &ct.constraints[1] else {
            panic!("not an index")
        };
        assert_eq!(u.name.as_ref().map(|n| n.value.as_str()), Some("u"));
        assert!(
            u.index_options
                .contains(&IndexOption::Comment(UNIQUE_INDEX_MARKER.into()))
        );
        assert!(
            u.index_options
                .contains(&IndexOption::Comment(format!("{STORING_MARKER}b")))
        );
    }

    #[test]
    fn at_names_and_markers() {
        match one("DROP INDEX t@i") {
            Statement::Drop { names, .. } => assert_eq!(names[0].to_string(), "\"t@i\""),
            other => panic!("{other:?}"),
        }
        let v = parse_statements(
            "SELECT 1; SHOW RANGES FROM TABLE db.t; ALTER TABLE t SPLIT AT VALUES (1), (2);",
        )
        .expect("parses");
        assert_eq!(v.len(), 3);
        match &v[1] {
            Statement::Unload { query_text, to, .. } => {
                assert_eq!(query_text.as_deref(), Some(SHOW_RANGES_TABLE_MARKER));
                assert_eq!(to.value, "db.t");
            }
            other => panic!("{other:?}"),
        }
        match &v[2] {
            Statement::Unload {
                query_text, query, ..
            } => {
                assert_eq!(query_text.as_deref(), Some(SPLIT_AT_MARKER));
                assert!(query.is_some());
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn as_of_system_time_is_cut_out() {
        let as_of = |sql: &str| match parse(sql).expect("parses").pop() {
            Some(Stmt::Ours(Ours::AsOf { statement, as_of })) => (
                statement.to_string(),
                as_of.expr.to_string(),
                as_of
                    .nested
                    .iter()
                    .map(|e| e.to_string())
                    .collect::<Vec<_>>(),
            ),
            other => panic!("{sql}: {other:?}"),
        };
        assert_eq!(
            as_of("SELECT * FROM t AS OF SYSTEM TIME '-1s' WHERE a = 1 ORDER BY a"),
            (
                "SELECT * FROM t WHERE a = 1 ORDER BY a".to_string(),
                "'-1s'".to_string(),
                vec![]
            )
        );
        assert_eq!(
            as_of(
                "select * from (select * from u as of system time -('1' || 's')::interval) as x \
                 AS OF SYSTEM TIME follower_read_timestamp();"
            ),
            (
                "SELECT * FROM (SELECT * FROM u) AS x".to_string(),
                "follower_read_timestamp()".to_string(),
                vec!["-('1' || 's')::INTERVAL".to_string()]
            )
        );
        assert_eq!(
            as_of("BEGIN READ ONLY, AS OF SYSTEM TIME INTERVAL '-5 seconds', ISOLATION LEVEL SERIALIZABLE").0,
            "BEGIN READ ONLY, ISOLATION LEVEL SERIALIZABLE"
        );
        assert_eq!(
            as_of("SET TRANSACTION AS OF SYSTEM TIME 1733568000000000000.0000000001").1,
            "1733568000000000000.0000000001"
        );
        // Quoted words and strings are no clause.
        assert!(matches!(
            parse("SELECT 'AS OF SYSTEM TIME' FROM t AS \"of\"").expect("parses")[..],
            [Stmt::Sql(_)]
        ));
        // Internal SQL takes none.
        assert_eq!(
            parse_statements("SELECT * FROM t AS OF SYSTEM TIME '-1s'")
                .unwrap_err()
                .code,
            "42601"
        );
    }

    #[test]
    fn errors_keep_positions() {
        let e = parse_statements("SELECT 1; UPSERT INTO t VALUES (1) garbage").unwrap_err();
        assert_eq!(e.code, "42601");
        assert!(e.position.is_some());
        let e = parse_statements("SELEC 1").unwrap_err();
        assert_eq!(e.code, "42601");
    }
}
