use super::*;

#[test]
fn constructs() {
    for t in [
        "../../etc/passwd",
        "..\\..\\windows\\win.ini",
        "/etc/shadow",
        "file:///etc/hosts",
        "c:/windows/system32/drivers/etc/hosts",
        "....//....//etc/passwd",
        "/var/www/../../etc/passwd",
        "/%/..%/..%/..winnt/desktop.ini",
        "././.htaccess",
        "..2f..2fetc2fpasswd",
        "/var/adm/messages",
        "/usr/local/apache/logs/error_log",
        "/var/log",
        "c:/inetpub/wwwroot/index.asp",
        "/c:/program files/",
        "c:windows/system32/",
        "/.sh_history",
        "etc/shadow",
    ] {
        assert!(traversal(t), "{t}");
    }
    assert!(traversal(&overlong("%c0%ae%c0%ae%c0%afetc%c0%afpasswd")));
    assert_eq!(
        classify("Li4vLi4vZXRjL3Bhc3N3ZA=="),
        Some("path_traversal"),
        "base64 of ../../etc/passwd"
    );
    // base64 of {"id":{"$gt":"a"}}: a cursor, not decoded for NoSQL.
    assert_eq!(classify("eyJpZCI6eyIkZ3QiOiJhIn19"), None);
    for c in [
        "8.8.8.8;cat /etc/passwd",
        "`id`",
        "$(whoami)",
        "a|id|",
        "x\nid",
        "1 && ping -c 21 127.0.0.1",
        "x;/bin/ls -la",
        ";cat${ifs}/etc/passwd",
        "<?php system('id'); ?>",
        "uname -a",
        "nc -lvvp 4444 -e /bin/sh",
        "type c:\\windows\\repair\\sam",
        "net user hacker password1 /add",
        "{${sleep(20)}}",
        "<!--#exec cmd=\"/usr/bin/id;-->",
        "which curl",
    ] {
        assert!(command(c), "{c}");
    }
    for n in [
        "{\"$gt\": \"\"}",
        "$where: '1 == 1'",
        "{ $ne: 1 }",
        "name[$ne]",
        "' && this.password.match(/.*/)//",
        "db.injection.insert({success:1});",
        "';sleep(5000);",
    ] {
        assert!(nosql(n), "{n}");
    }
}

#[test]
fn ordinary_values() {
    for v in [
        "see you later; bye",
        "rock & roll",
        "q&a; identity theft",
        "price $5",
        "a.b/c",
        "/api/v2/users",
        "docs/readme.md",
        "wait... / then",
        "$ne is not english",
        "tom & jerry | cartoons",
        "/home/user/etc/notes.txt",
        "v1..v2",
        "a..b/c",
        "config.env.example",
        "cat videos",
        "ls means list",
        "type: book",
        "the net user count",
        "evaluate the plan",
        "this.is a sentence",
        "c:/users/ana/reports/q3 summary.xlsx",
        "/usr/profile",
        "/variables/list",
        "passwords are hard",
    ] {
        let n = normalise(v);
        assert!(!traversal(&n) && !command(&n) && !nosql(&n), "{v}");
    }
}
