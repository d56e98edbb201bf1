use clap::{CommandFactory as _, FromArgMatches as _};

use super::*;

fn merged(args: &[&str], toml_text: &str) -> Result<Config, String> {
    let matches = Config::command()
        .try_get_matches_from(std::iter::once("cleartap").chain(args.iter().copied()))
        .map_err(|e| e.to_string())?;
    let mut config = Config::from_arg_matches(&matches).map_err(|e| e.to_string())?;
    merge(&mut config, FileConfig::parse(toml_text)?, &matches);
    validate(&config).map_err(|e| e.to_string())?;
    Ok(config)
}

#[test]
fn default_config_text_is_exactly_the_built_in_defaults() {
    let from_text = merged(&[], DEFAULT_CONFIG).expect("default config parses");
    let built_in = merged(&[], "").expect("empty config");
    assert_eq!(format!("{from_text:?}"), format!("{built_in:?}"));
}

#[test]
fn file_overrides_defaults_and_flags_override_the_file() {
    let text = "[capture]\nbody_prefix_bytes = 32\nplaintext = false\n\
                [filters]\ncomms = [\"nginx\"]\n[metrics]\nlisten = \"off\"\n";
    let c = merged(&[], text).expect("valid");
    assert_eq!(c.body_prefix_bytes, 32);
    assert!(c.no_plaintext);
    assert_eq!(c.comms, ["nginx"]);
    assert_eq!(c.metrics_listen, "off");
    let c = merged(&["--body-prefix-bytes", "8", "--comm", "curl"], text).expect("valid");
    assert_eq!(c.body_prefix_bytes, 8);
    assert_eq!(c.comms, ["curl"]);
}

#[test]
fn every_error_names_its_field() {
    let cases: &[(&str, &str)] = &[
        (
            "[capture]\nbody_prefix_bytes = 70000\n",
            "capture.body_prefix_bytes",
        ),
        (
            "[capture]\ncapture_max_bytes = 0\n",
            "capture.capture_max_bytes",
        ),
        (
            "[capture]\nlibrary_sweep_secs = 0\n",
            "capture.library_sweep_secs",
        ),
        ("[capture]\nprobe_mode = \"fast\"\n", "probe_mode"),
        ("[capture]\nsocket_hooks = \"fentry\"\n", "socket_hooks"),
        ("[capture]\nplaintext = \"yes\"\n", "plaintext"),
        ("[kernel]\nring_buffer_mib = 3\n", "kernel.ring_buffer_mib"),
        (
            "[kernel]\npoll_interval_ms = 0\n",
            "kernel.poll_interval_ms",
        ),
        ("[streams]\nmax_streams = 0\n", "streams.max_streams"),
        ("[filters]\nports = [70000]\n", "ports"),
        ("[filters]\nportz = [80]\n", "portz"),
        ("[metrics]\nlisten = \"localhost\"\n", "metrics.listen"),
        ("[sinkz]\n", "sinkz"),
    ];
    for (text, field) in cases {
        let err = merged(&[], text).expect_err(text);
        assert!(err.contains(field), "{text:?} → {err}");
    }
    // Enumerations list what is allowed.
    let err = merged(&[], "[capture]\nsocket_hooks = \"fentry\"\n").expect_err("bad");
    assert!(err.contains("tracepoint"), "{err}");
}
