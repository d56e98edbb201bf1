//! SQL structure that libinjection's fingerprints miss: a value that compares something with
//! itself (a tautology) next to a logic keyword, a subquery, a call to a function only a
//! database has inside a condition, or a stacked statement. sqlmap's error-based payloads for
//! newer databases (`AND GTID_SUBSET(CONCAT(…,(SELECT …)),…)`, `4721=ZEROIFNULL(CAST(…))`,
//! `;DECLARE @x …;EXEC @x`) are such; so are hand-written ones built on `CASE WHEN`.
//!
//! Each check needs two SQL-only features together, never a keyword alone: "select a chair",
//! "1=1 puzzle book" and "Rock and roll (live)" are ordinary searches.

use std::sync::OnceLock;

use regex::Regex;

/// Functions only databases have (error-based and time-based extraction, type juggling),
/// from the vendors' references; lower case.
const SQL_FUNCTIONS: [&str; 48] = [
    "ascii",
    "benchmark",
    "bin_shl",
    "bitcount",
    "cast",
    "char",
    "chr",
    "concat",
    "concat_ws",
    "convert",
    "ctxsys.drithsx.sn",
    "dbms_pipe.receive_message",
    "dbms_utility.sqlid_to_sqlhash",
    "elt",
    "exp",
    "extractvalue",
    "floor",
    "generate_series",
    "gtid_subset",
    "hex",
    "if",
    "ifnull",
    "iif",
    "json_extract",
    "json_keys",
    "length",
    "load_file",
    "make_set",
    "md5",
    "mid",
    "nullif",
    "ord",
    "pg_sleep",
    "raise_error",
    "randomblob",
    "rotateleft",
    "sleep",
    "substr",
    "substring",
    "sys.fn_sqlvarbasetostr",
    "updatexml",
    "upper",
    "user",
    "utl_inaddr.get_host_address",
    "utl_inaddr.get_host_name",
    "version",
    "xmltype",
    "zeroifnull",
];

struct Patterns {
    /// A logic keyword between two operands (what makes a condition of the value).
    logic: Regex,
    /// `(SELECT` followed by an SQL operand.
    subquery: Regex,
    /// `CASE [x] WHEN … THEN`.
    case_when: Regex,
    /// A call: a (dotted) name directly followed by `(`.
    call: Regex,
    /// A statement after `;`.
    stacked: Regex,
    /// `WAITFOR DELAY '0:0:5'` / `WAITFOR TIME '…'`.
    waitfor: Regex,
    /// The value opens with a quote that closes the application's string, then a logic or
    /// concatenation operator or a parenthesis, then a query or a database package.
    breakout: Regex,
}

fn patterns() -> &'static Patterns {
    static P: OnceLock<Patterns> = OnceLock::new();
    P.get_or_init(|| {
        let r = crate::classify::static_regex;
        Patterns {
            logic: r(r#"(?:^|[\s)'"`])(?:and|or|xor|having|where|rlike|&&|\|\|)[\s(]"#),
            subquery: r(
                r#"\(\s*select\s+(?:[\d'"(*@]|null\b|case\b|[a-z_][\w$.]*\s*(?:\(|,|\bfrom\b))"#,
            ),
            case_when: r(r"\bcase\b[^;]{0,80}?\bwhen\b[^;]{1,200}?\bthen\b"),
            call: r(r"([a-z_][\w$]*(?:\.[a-z_][\w$]*)*)\s*\("),
            stacked: r(
                r#"[\d'"`)]\s*;\s*(?:declare|exec|execute|select|waitfor|insert|update|delete|drop|create|alter|shutdown|set)\b"#,
            ),
            waitfor: r(r"\bwaitfor\s+(?:delay|time)\s+'\d"),
            breakout: r(concat!(
                r#"^\s*['"`]\s*\)*\s*(?:(?:(?:or|and|xor)\b|\|\||&&|\()\s*)?\(?\s*"#,
                r"(?:select\s+(?:\*|top\b|\d|null\b|@@|[a-z_][\w.$]*\s*(?:,|\(|\bfrom\b))",
                r"|exists\s*[()]|union\s+(?:all\s+)?select\b|utl_[a-z]+\.|dbms_[a-z]+\.)",
            )),
        }
    })
}

/// `N=N`, `'a'='a'` or `"a"="a"` anywhere in `lower` (the same operand both sides of `=`).
fn tautology(lower: &str) -> bool {
    let b = lower.as_bytes();
    let operand_before = |end: usize| -> &[u8] {
        let mut start = end;
        while start > 0 && b.get(start - 1).is_some_and(|c| *c == b' ') {
            start -= 1;
        }
        let stop = start;
        while start > 0
            && b.get(start - 1)
                .is_some_and(|c| c.is_ascii_alphanumeric() || matches!(c, b'\'' | b'"'))
        {
            start -= 1;
        }
        b.get(start..stop).unwrap_or_default()
    };
    let operand_after = |begin: usize| -> &[u8] {
        let mut start = begin;
        while b.get(start).is_some_and(|c| *c == b' ') {
            start += 1;
        }
        let mut end = start;
        while b
            .get(end)
            .is_some_and(|c| c.is_ascii_alphanumeric() || matches!(c, b'\'' | b'"'))
        {
            end += 1;
        }
        b.get(start..end).unwrap_or_default()
    };
    memchr::memchr_iter(b'=', b).any(|at| {
        let (left, right) = (operand_before(at), operand_after(at + 1));
        // The value may end inside the application's own quotes: `' or 'a'='a`.
        let bare = |o: &[u8]| -> Vec<u8> {
            o.iter()
                .copied()
                .filter(|c| !matches!(c, b'\'' | b'"'))
                .collect()
        };
        let (l, r) = (bare(left), bare(right));
        !l.is_empty()
            && l == r
            && (l.iter().all(u8::is_ascii_digit) || (left.len() > l.len() && right.len() > r.len()))
    })
}

/// The SQL construct `value` carries, if any. `value` is decoded already; case is ignored.
pub fn structure(value: &str) -> Option<&'static str> {
    // Every construct needs one of these; most values have none and stop here.
    if !value
        .bytes()
        .any(|b| matches!(b, b'(' | b'=' | b';' | b'\''))
    {
        return None;
    }
    let lower = value.to_ascii_lowercase();
    let p = patterns();
    let logic = p.logic.is_match(&lower);
    if tautology(&lower) && (logic || p.case_when.is_match(&lower)) {
        return Some("tautology");
    }
    if p.subquery.is_match(&lower) && (logic || lower.contains(')')) {
        return Some("subquery");
    }
    if p.stacked.is_match(&lower) {
        return Some("stacked_query");
    }
    if p.breakout.is_match(&lower) {
        return Some("quote_breakout");
    }
    // SQL Server's delay statement, quoted time and all: no prose writes it so.
    if p.waitfor.is_match(&lower) {
        return Some("time_delay");
    }
    let sql_call = p.call.captures_iter(&lower).any(|c| {
        c.get(1)
            .is_some_and(|name| SQL_FUNCTIONS.contains(&name.as_str()))
    });
    if sql_call && (logic || lower.contains('=')) && (p.case_when.is_match(&lower) || logic) {
        return Some("sql_function");
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constructs_libinjection_misses() {
        for (value, construct) in [
            (
                "1) AND GTID_SUBSET(CONCAT('qvkpq',(SELECT (ELT(4721=4721,1))),'qzjbq'),4721) -- -",
                "tautology",
            ),
            (
                "1) AND 4721=ZEROIFNULL(CAST('q'||(SELECT (CASE WHEN (4721=4721) THEN 1 ELSE 0 END))::varchar||'q' AS NUMERIC)) -- -",
                "tautology",
            ),
            (
                "1';DECLARE @q NVARCHAR(4000);SET @q=(SELECT 'a'+(SELECT 'b')+'c');EXEC @q--",
                "subquery",
            ),
            ("1; WAITFOR DELAY '0:0:5'--", "stacked_query"),
            ("1') WAITFOR DELAY '0:0:5' AND ('a' LIKE 'a", "time_delay"),
            ("x' or 'a'='a", "tautology"),
            (
                "1 AND extractvalue(1,concat(0x7e,version()))",
                "sql_function",
            ),
            ("(SELECT 1 FROM dual WHERE 2>1)", "subquery"),
            ("' or (EXISTS)", "quote_breakout"),
            ("' (select top 1", "quote_breakout"),
            ("'||UTL_HTTP.REQUEST", "quote_breakout"),
            ("'or select *", "quote_breakout"),
        ] {
            assert_eq!(structure(value), Some(construct), "{value}");
        }
    }

    #[test]
    fn ordinary_text_is_not_sql() {
        for value in [
            "select a chair",
            "1=1 puzzle book",
            "Rock and roll (live)",
            "Choose a color (select one)",
            "a=b&c=d",
            "price>10",
            "x = 1; y = 2",
            "if (a) { b(); }",
            "Hello (world)",
            "theme=dark; locale=en",
            "sum(a) where a = b",
            "version(2) of the doc",
            "ratio 3=3 means equal",
            "I'll waitfor delay news",
            "'Or select' is a button label",
            "\"union\" means together",
            "'(selected)'",
        ] {
            assert_eq!(structure(value), None, "{value}");
        }
    }
}
