//! INJ-2: injection into the system around the application — path traversal and local file
//! inclusion, shell command injection, NoSQL query operators — in every location the request
//! has (inputs.rs), each value decoded as servers decode it (URL decoding up to three times,
//! `%uXXXX`, overlong UTF-8 dots and slashes, HTML entities; lower case; `\` read as `/`).
//!
//! Each check needs a construct, not a word: `../` or a system file's path for traversal, a
//! shell separator directly followed by a command for commands, a `$` operator in a key or
//! object for NoSQL. A bare separator (`;`, `|`) or quote is no attack on its own and is not
//! reported.

use std::borrow::Cow;

use serde_json::{Value, json};

use super::{
    inject::normalise,
    inputs::{self, Place},
    view::View,
};

/// Paths whose contents are the usual targets of a traversal (after `\` became `/`).
const SYSTEM_FILES: [&str; 12] = [
    "/etc/passwd",
    "/etc/shadow",
    "/etc/hosts",
    "/etc/group",
    "/proc/self/",
    "/proc/version",
    "/windows/win.ini",
    "win.ini",
    "boot.ini",
    "/windows/system32",
    "/.ssh/id_rsa",
    "web-inf/web.xml",
];

/// Absolute locations no parameter of an API names legitimately: the system's own directories
/// (configuration, logs, spools, run state, installed software, boot), not users' or the
/// application's. A value that is one of them, or starts with one, is a file-inclusion probe.
const SYSTEM_ROOTS: [&str; 21] = [
    "/etc/",
    "/proc/",
    "/root/",
    "/var/",
    "/usr/local/",
    "/usr/lib/",
    "/usr/bin/",
    "/usr/sbin/",
    "/usr/share/",
    "/usr/spool/",
    "/usr/ports/",
    "/usr/pkgsrc/",
    "/usr/etc/",
    "/boot/",
    "/bin/",
    "/sbin/",
    "/private/etc/",
    "/private/var/",
    "/windows/",
    "/winnt/",
    "/system32/",
];

/// Windows system directories, after a drive (`c:\`, `d:/`, `/c:/`, drive-relative `c:windows`).
/// Users' own folders (`c:\users\…`) are not among them: file APIs take those.
const WINDOWS_SYSTEM_DIRS: [&str; 10] = [
    "windows",
    "winnt",
    "inetpub",
    "program files",
    "programdata",
    "appserv",
    "system32",
    "xampp",
    "wamp",
    "boot.ini",
];

/// Whether a path (lower case, `/` for `\`) names a system location: an absolute path under
/// one of SYSTEM_ROOTS, or a drive followed by a Windows system directory.
fn system_location(t: &str) -> bool {
    let absolute = t.starts_with('/') || t.starts_with("file://");
    let rest = t
        .strip_prefix("file://")
        .unwrap_or(t)
        .trim_start_matches('/');
    if drive(rest) {
        let dir = rest.get(2..).unwrap_or_default().trim_start_matches('/');
        return WINDOWS_SYSTEM_DIRS.iter().any(|d| dir.starts_with(d));
    }
    absolute
        && SYSTEM_ROOTS.iter().any(|r| {
            let r = r.trim_start_matches('/');
            rest.starts_with(r) || Some(rest) == r.strip_suffix('/')
        })
}

/// Commands an injected shell is made to run (probes, exfiltration, shells), lower case.
const COMMANDS: [&str; 42] = [
    "bash",
    "cat",
    "certutil",
    "cmd",
    "curl",
    "dig",
    "dir",
    "echo",
    "env",
    "getent",
    "head",
    "hostname",
    "id",
    "ifconfig",
    "ipconfig",
    "ls",
    "nc",
    "ncat",
    "net",
    "netcat",
    "netsh",
    "netstat",
    "nslookup",
    "perl",
    "php",
    "ping",
    "powershell",
    "printenv",
    "ps",
    "pwd",
    "python",
    "python3",
    "reg",
    "rm",
    "sh",
    "sleep",
    "sysinfo",
    "systeminfo",
    "type",
    "uname",
    "wget",
    "whoami",
];

/// Commands that are no word of any language: a value that is one of them is a probe.
const LONE_COMMANDS: [&str; 7] = [
    "whoami",
    "ifconfig",
    "ipconfig",
    "systeminfo",
    "sysinfo",
    "netstat",
    "uname",
];

/// Interpreter constructs that run a command or code (PHP, Perl, Python, Node), and
/// server-side includes.
const EXEC_CALLS: [&str; 20] = [
    "system(",
    "passthru(",
    "shell_exec(",
    "exec(",
    "popen(",
    "proc_open(",
    "phpinfo(",
    "phpversion(",
    "child_process",
    "eval(",
    "assert(",
    "create_function(",
    "{${",
    "${@",
    "$_get[",
    "$_post[",
    "$_request[",
    "$_server[",
    "<!--#exec",
    "<!--#include",
];

/// Commands given whole as the value, with the arguments that make them a command line rather
/// than a word: a flag, an absolute path, a drive, a URL (`uname -a`, `ls -l /etc/`,
/// `nc -lvvp 4444 -e /bin/sh`, `wget https://…`, `type c:\windows\…`, `net user x /add`).
const COMMAND_LINES: [&str; 18] = [
    "cat", "curl", "dir", "ifconfig", "ipconfig", "ls", "nc", "ncat", "net", "netsh", "netstat",
    "perl", "ping", "reg", "type", "uname", "wget", "which",
];

fn command_line(t: &str) -> bool {
    let mut words = t.split_whitespace();
    let (Some(first), Some(arg)) = (words.next(), words.next()) else {
        return false;
    };
    COMMAND_LINES.contains(&first)
        && (arg.starts_with('-')
            || arg.starts_with('/')
            || arg.starts_with("http://")
            || arg.starts_with("https://")
            || arg.get(1..3) == Some(":/")
            || arg.get(1..3) == Some(":\\")
            || arg.starts_with('%')
            || (first == "net" && matches!(arg, "user" | "localgroup" | "view" | "share"))
            || (first == "reg" && matches!(arg, "add" | "query" | "delete"))
            || (first == "netsh" && matches!(arg, "firewall" | "advfirewall" | "interface"))
            || (first == "which" && COMMANDS.contains(&arg)))
}

/// MongoDB query operators (after `$`).
const NOSQL_OPERATORS: [&str; 16] = [
    "where",
    "ne",
    "gt",
    "gte",
    "lt",
    "lte",
    "regex",
    "nin",
    "in",
    "or",
    "and",
    "not",
    "exists",
    "expr",
    "elemmatch",
    "comment",
];

/// Overlong UTF-8 forms of `.` and `/` and `\` that old decoders accepted, as text after URL
/// decoding turned them into replacement characters: read from the raw value instead.
fn overlong(raw: &str) -> String {
    let lower = raw.to_ascii_lowercase();
    let mut out = lower;
    for (from, to) in [
        ("%c0%ae", "."),
        ("%e0%80%ae", "."),
        ("%c0%af", "/"),
        ("%e0%80%af", "/"),
        ("%c1%9c", "\\"),
        ("%c0%5c", "\\"),
        ("%25c0%25ae", "."),
        ("%25c0%25af", "/"),
    ] {
        if out.contains(from) {
            out = out.replace(from, to);
        }
    }
    out
}

/// A `..` path segment: after the start or a `/`, before the end or a `/`, `;`, `%`, `?`
/// or `#` (what is left of an encoding the server decodes once more).
fn dot_dot_segment(t: &str) -> bool {
    let b = t.as_bytes();
    t.match_indices("..").any(|(at, _)| {
        let before = at.checked_sub(1).and_then(|i| b.get(i));
        let after = b.get(at + 2);
        matches!(before, None | Some(b'/'))
            && matches!(after, None | Some(b'/' | b';' | b'%' | b'?' | b'#'))
    })
}

/// Files a probe asks for by name — web server, interpreter and database configuration,
/// server logs (log poisoning), shell and SSH secrets — as a whole value or a path's last part.
const SECRET_FILES: [&str; 44] = [
    "etc/passwd",
    "etc/shadow",
    "passwd",
    ".passwd",
    ".pass",
    "passwd.dat",
    "pass.dat",
    ".profile",
    ".cshrc",
    ".forward",
    ".logout",
    ".shosts",
    ".sh_history",
    ".xauthority",
    ".htaccess",
    ".htpasswd",
    ".git/config",
    ".env",
    ".bash_history",
    ".bashrc",
    ".bash_profile",
    ".netrc",
    ".rhosts",
    "id_rsa",
    "authorized_keys",
    "master.passwd",
    "httpd.conf",
    "apache2.conf",
    "nginx.conf",
    "php.ini",
    "my.cnf",
    "my.ini",
    "web.config",
    "global.asa",
    "wp-config.php",
    "access_log",
    "error_log",
    "access.log",
    "error.log",
    "repair/sam",
    "repair/system",
    "config/sam",
    "desktop.ini",
    "pure-ftpd.conf",
];

/// Substrings any of which makes a value a traversal, and those that make a raw value worth
/// decoding for one: one case-insensitive pass each.
fn needles() -> &'static (aho_corasick::AhoCorasick, aho_corasick::AhoCorasick) {
    static N: std::sync::OnceLock<(aho_corasick::AhoCorasick, aho_corasick::AhoCorasick)> =
        std::sync::OnceLock::new();
    N.get_or_init(|| {
        let build = |patterns: Vec<&str>| {
            #[allow(clippy::expect_used)] // constant patterns, built by the tests
            aho_corasick::AhoCorasick::builder()
                .ascii_case_insensitive(true)
                .build(patterns)
                .expect("static patterns build")
        };
        let mut traversal: Vec<&str> = SYSTEM_FILES.to_vec();
        // `..2f` and `..5c`: an escape whose `%` a proxy or the probe itself dropped, which
        // some servers still decode.
        traversal.extend(["../", "..;/", "..2f", "..5c", "php://", "file://"]);
        let mut candidate: Vec<&str> = traversal.clone();
        candidate.extend(SECRET_FILES);
        candidate.extend(SYSTEM_ROOTS);
        candidate.extend(EXEC_CALLS);
        candidate.extend([".."]);
        (build(traversal), build(candidate))
    })
}

fn traversal(n: &str) -> bool {
    let t: Cow<'_, str> = if n.contains(['\\', '\0']) {
        Cow::Owned(n.replace('\\', "/").replace('\0', ""))
    } else {
        Cow::Borrowed(n)
    };
    let t = t.trim();
    needles().0.is_match(t)
        || dot_dot_segment(t)
        || SECRET_FILES.iter().any(|f| {
            t.strip_suffix(f)
                .is_some_and(|before| before.is_empty() || before.ends_with('/'))
        })
        || system_location(t)
}

/// A shell separator followed by a command: `;id`, `| cat /etc/passwd`, `$(whoami)`,
/// `` `id` ``, `%0aid`, `&& ping -c 21 …`, `${IFS}` as the space.
fn command(n: &str) -> bool {
    let t: Cow<'_, str> = if n.contains("$ifs") || n.contains("${ifs}") {
        Cow::Owned(n.replace("${ifs}", " ").replace("$ifs", " "))
    } else {
        Cow::Borrowed(n)
    };
    let whole = t.trim().trim_start_matches(['\'', '"', '`']).trim_start();
    if EXEC_CALLS.iter().any(|c| t.contains(c))
        || command_line(whole)
        || LONE_COMMANDS.contains(&whole)
    {
        return true;
    }
    let bytes = t.as_bytes();
    let mut starts = bytes.iter().enumerate().filter_map(|(i, b)| match b {
        b';' | b'|' | b'&' | b'`' | b'\n' | b'\r' => Some(i + 1),
        b'$' if bytes.get(i + 1) == Some(&b'(') => Some(i + 2),
        // A line break written as an escape, which a shell-building `echo -e` or printf turns
        // into one.
        b'\\' if matches!(bytes.get(i + 1), Some(b'n' | b'r')) => Some(i + 2),
        _ => None,
    });
    starts.any(|at| {
        let rest = t.get(at..).unwrap_or_default();
        let rest = rest.trim_start_matches(['|', '&', ' ', '\t', '(', '{']);
        let rest = rest
            .strip_prefix("/usr/bin/")
            .or_else(|| rest.strip_prefix("/bin/"))
            .or_else(|| rest.strip_prefix("/usr/sbin/"))
            .unwrap_or(rest);
        let word_len = rest.bytes().take_while(u8::is_ascii_alphanumeric).count();
        let word = rest.get(..word_len).unwrap_or_default();
        if !COMMANDS.contains(&word) {
            return false;
        }
        // The command must end where a shell word ends: `;identity` is no `id`.
        let after = rest.get(word.len()..).unwrap_or_default();
        after.is_empty()
            || after.starts_with([
                ' ', '\t', ';', '|', '&', '`', ')', '\n', '<', '>', '$', '}', '#', '\'', '"', '\\',
                '\0',
            ])
    })
}

/// JavaScript a `$where` clause runs (server-side JavaScript injection into MongoDB).
const NOSQL_JS: [&str; 9] = [
    "this.",
    "db.",
    "sleep(",
    "mapreduce(",
    "1==1",
    "emit(",
    "return ",
    "return(",
    "new date()",
];

/// A MongoDB operator where a value or key should be: `name[$ne]=`, `{"$gt": ""}`, `$where:`;
/// or a string broken out of into JavaScript (`' && this.password.match(/.*/)//`).
fn nosql(n: &str) -> bool {
    // The value itself must leave its string or number, on one line: code that merely
    // contains `';` or starts with a docstring (snippets in a JSON body) is no injection.
    let start = n.trim_start();
    let breaks_out = !n.contains('\n')
        && (start.starts_with(['\'', '"', '|', '&', ';'])
            || start
                .trim_start_matches(|c: char| c.is_ascii_alphanumeric())
                .starts_with(";return"));
    if breaks_out && NOSQL_JS.iter().any(|j| n.contains(j)) {
        return true;
    }
    if n.contains("db.")
        && [".insert(", ".find(", ".remove(", ".drop("]
            .iter()
            .any(|c| n.contains(c))
    {
        return true;
    }
    nosql_operator(n)
}

fn nosql_operator(n: &str) -> bool {
    n.match_indices('$').any(|(at, _)| {
        let rest = n.get(at + 1..).unwrap_or_default();
        let word_len = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
        let word = rest.get(..word_len).unwrap_or_default();
        let after = rest.get(word_len..).unwrap_or_default().trim_start();
        NOSQL_OPERATORS.contains(&word)
            && (after.starts_with(':')
                || after.starts_with(']')
                || after.starts_with("\":")
                || after.starts_with("':")
                || after.starts_with("\" :"))
    })
}

/// Cheap pre-check on the raw value, before any decoding: an escape or entity (anything may
/// hide behind it), a shell or NoSQL metacharacter, or (one case-insensitive pass) a `..`, a
/// system file, root or secret file name, a wrapper or an interpreter call. Plain words, paths
/// and URLs — most values — stop here.
fn candidate(value: &str) -> bool {
    drive(value)
        || value.bytes().any(|b| {
            matches!(
                b,
                b'%' | b'&' | b'\\' | b';' | b'|' | b'`' | b'$' | b'\n' | b'\r'
            )
        })
        || needles().1.is_match(value)
        || starts_with_command(value)
}

/// Whether the value starts with a drive letter (`c:`, `/d:`).
fn drive(value: &str) -> bool {
    let b = value.trim_start_matches('/').as_bytes();
    b.first().is_some_and(u8::is_ascii_alphabetic) && b.get(1) == Some(&b':')
}

/// Whether the value's first word is a command (`uname -a`, `which nc`, `whoami`): such
/// values need no special byte to be a command line.
fn starts_with_command(value: &str) -> bool {
    let first = value
        .trim_start()
        .split(|c: char| !c.is_ascii_alphanumeric())
        .next()
        .unwrap_or_default();
    first.len() >= 2
        && COMMAND_LINES
            .iter()
            .chain(&LONE_COMMANDS)
            .any(|c| c.eq_ignore_ascii_case(first))
}

/// INJ-2 over the request path and every input.
pub fn inj2(v: &View) -> Option<Value> {
    inj2_path(v).or_else(|| inputs::walk(v, false, inj2_value))
}

/// INJ-2 on the whole request path (traversal that spans segments), before its inputs.
pub fn inj2_path(v: &View) -> Option<Value> {
    (candidate(v.path) && (traversal(&normalise(v.path)) || traversal(&overlong(v.path)))).then(
        || {
            inputs::with_matched(
                json!({ "kind": "path_traversal", "input": "path" }),
                v.path,
                Place::Param(None),
            )
        },
    )
}

/// INJ-2 on one input (`label` names it in the evidence).
pub fn inj2_value(label: &dyn Fn() -> String, value: &str, place: Place<'_>) -> Option<Value> {
    match place {
        Place::RawBody => return None,
        Place::Header(name) if super::rules::STRUCTURED_HEADERS.contains(&name) => {
            return None;
        }
        _ => {}
    }
    classify(value)
        .map(|kind| inputs::with_matched(json!({ "kind": kind, "input": label() }), value, place))
}

/// The kind of system injection one raw value carries, if any (also the fuzz entry point).
pub fn classify(value: &str) -> Option<&'static str> {
    if !candidate(value) {
        return base64_traversal(value);
    }
    let n = normalise(value);
    // A command that reads a system file is a command injection first.
    if command(&n) {
        Some("command_injection")
    } else if traversal(&n) || (value.contains('%') && traversal(&overlong(value))) {
        Some("path_traversal")
    } else if nosql(&n) {
        Some("nosql_operator")
    } else {
        base64_traversal(value)
    }
}

/// A value that is base64 of a traversal (`Li4vLi4vZXRjL3Bhc3N3ZA==`): applications that decode
/// a parameter before opening the file see the path. Only traversal is looked for in the
/// decoded text: base64 pagination cursors carry JSON with `$gt` legitimately.
fn base64_traversal(value: &str) -> Option<&'static str> {
    use base64::Engine as _;
    let v = value.trim();
    let shaped = (8..=4096).contains(&v.len())
        && v.len().is_multiple_of(4)
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='));
    if !shaped {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD.decode(v).ok()?;
    if !decoded.iter().all(|b| (0x20..0x7f).contains(b)) {
        return None;
    }
    let text = std::str::from_utf8(&decoded).ok()?;
    traversal(&normalise(text)).then_some("path_traversal")
}

#[cfg(test)]
#[path = "system_inject_tests.rs"]
mod tests;
