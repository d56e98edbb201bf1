//! `cleartap`: thin binary over the agent library. Reads flags, environment and the config
//! file (in that precedence), then runs the agent or a `config` subcommand.

use agent::{
    config::file::{self as config_file, Loader},
    config::{Command, ConfigAction},
};

/// One request to a running agent's admin socket; the answer is printed as JSON on stdout.
fn admin(socket: &std::path::Path, request: &agent::enforce::admin::Request) -> anyhow::Result<()> {
    let answer = agent::enforce::admin::send(socket, request).map_err(anyhow::Error::msg)?;
    println!("{}", serde_json::to_string_pretty(&answer)?);
    match answer.error {
        Some(e) => anyhow::bail!("{e}"),
        None => Ok(()),
    }
}

fn run() -> anyhow::Result<()> {
    let loader = Loader::from_command_line();
    let config = loader.load()?;
    match &config.command {
        Some(Command::Config {
            action: ConfigAction::Default,
        }) => {
            print!("{}", config_file::DEFAULT_CONFIG);
            Ok(())
        }
        Some(Command::Config {
            action: ConfigAction::Check,
        }) => {
            match &config.config {
                Some(path) => println!("ok: {} (with environment and flags)", path.display()),
                None => println!("ok: no config file; built-in defaults, environment and flags"),
            }
            Ok(())
        }
        Some(Command::Replay {
            file,
            inventory_out,
        }) => replay(file, inventory_out.as_deref(), config.detect.clone()),
        Some(Command::Openapi {
            inventory, diff, ..
        }) if !diff.is_empty() => openapi_diff(inventory, diff),
        Some(Command::Openapi {
            inventory,
            format,
            out_dir,
            host,
            diff: _,
        }) => openapi(inventory, *format, out_dir.as_deref(), host.as_deref()),
        Some(Command::Install { root, no_start }) => {
            for line in agent::app::install::install(root, *no_start)? {
                println!("{line}");
            }
            Ok(())
        }
        Some(Command::Uninstall { root, keep_data }) => {
            for line in agent::app::install::uninstall(root, *keep_data)? {
                println!("{line}");
            }
            Ok(())
        }
        Some(Command::Block {
            action,
            admin_socket,
        }) => {
            use agent::{config::BlockAction, enforce::admin::Request};
            let request = match action {
                BlockAction::List => Request::List,
                BlockAction::Add {
                    actor,
                    route,
                    ttl_secs,
                    reason,
                } => Request::Add {
                    actor: actor.clone(),
                    route: route.clone(),
                    ttl_secs: *ttl_secs,
                    reason: reason.clone(),
                },
                BlockAction::Remove { id } => Request::Remove { id: id.clone() },
            };
            admin(admin_socket, &request)
        }
        Some(Command::Enforce { mode, admin_socket }) => admin(
            admin_socket,
            &agent::enforce::admin::Request::Enforce { mode: *mode },
        ),
        None => agent::app::run(config, loader),
    }
}

fn replay(
    file: &std::path::Path,
    inventory_out: Option<&std::path::Path>,
    detect: agent::detect::DetectConfig,
) -> anyhow::Result<()> {
    use anyhow::Context as _;
    let input: Box<dyn std::io::BufRead> = if file.as_os_str() == "-" {
        Box::new(std::io::stdin().lock())
    } else {
        let f = std::fs::File::open(file).with_context(|| format!("opening {}", file.display()))?;
        Box::new(std::io::BufReader::new(f))
    };
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let (summary, engine) = agent::app::replay::run(input, file, detect, &mut out)?;
    std::io::Write::flush(&mut out)?;
    if let Some(path) = inventory_out {
        std::fs::write(path, engine.dump(summary.last_epoch_ms).to_string())
            .with_context(|| format!("writing {}", path.display()))?;
    }
    let rate = summary.exchanges as f64 / summary.seconds.max(1e-9);
    log::info!(
        "replayed {} exchanges ({} other lines skipped) in {:.3} s ({rate:.0} exchanges/s): {} findings {:?}",
        summary.exchanges,
        summary.skipped_lines,
        summary.seconds,
        summary.findings,
        summary.by_rule
    );
    Ok(())
}

/// `cleartap openapi --diff SPEC`: the inventory's drift from the specs, as lines on stdout.
fn openapi_diff(inventory: &std::path::Path, specs: &[String]) -> anyhow::Result<()> {
    use anyhow::Context as _;
    let specs = agent::detect::specs::ApiSpecs::load(&agent::detect::specs::InventoryConfig {
        specs: specs.to_vec(),
    })?;
    let text = std::fs::read_to_string(inventory)
        .with_context(|| format!("reading the inventory {}", inventory.display()))?;
    let value: serde_json::Value = serde_json::from_str(&text)
        .with_context(|| format!("{} is not JSON", inventory.display()))?;
    anyhow::ensure!(
        value["schema"] == "cleartap.inventory/1",
        "{} is not a cleartap inventory",
        inventory.display()
    );
    let lines = agent::output::drift_report::report(&value, &specs);
    for line in &lines {
        println!("{line}");
    }
    log::info!(
        "{} drift lines against {} operations from {} spec files",
        lines.len(),
        specs.operations,
        specs.files
    );
    Ok(())
}

/// `cleartap openapi`: the inventory file → one OpenAPI document per host.
fn openapi(
    inventory: &std::path::Path,
    format: agent::config::OpenApiFormat,
    out_dir: Option<&std::path::Path>,
    only_host: Option<&str>,
) -> anyhow::Result<()> {
    use agent::{config::OpenApiFormat, output::openapi};
    use anyhow::Context as _;
    let text = std::fs::read_to_string(inventory).with_context(|| {
        format!(
            "reading the inventory {} (a running agent writes it on SIGUSR1 and at exit)",
            inventory.display()
        )
    })?;
    let value: serde_json::Value = serde_json::from_str(&text)
        .with_context(|| format!("{} is not JSON", inventory.display()))?;
    let mut docs = openapi::documents(&value)?;
    if let Some(host) = only_host {
        docs.retain(|h, _| h == host);
        anyhow::ensure!(
            !docs.is_empty(),
            "host {host:?} is not in {}",
            inventory.display()
        );
    }
    let render = |doc: &serde_json::Value| -> anyhow::Result<String> {
        Ok(match format {
            OpenApiFormat::Yaml => openapi::to_yaml(doc)?,
            OpenApiFormat::Json => serde_json::to_string_pretty(doc)?,
        })
    };
    match out_dir {
        Some(dir) => {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            let ext = match format {
                OpenApiFormat::Yaml => "yaml",
                OpenApiFormat::Json => "json",
            };
            for (host, doc) in &docs {
                let path = dir.join(format!("{}.openapi.{ext}", openapi::file_stem(host)));
                std::fs::write(&path, render(doc)?)
                    .with_context(|| format!("writing {}", path.display()))?;
                log::info!("{host}: {}", path.display());
            }
        }
        None => {
            let mut out = String::new();
            for doc in docs.values() {
                match format {
                    OpenApiFormat::Yaml => {
                        out.push_str("---\n");
                        out.push_str(&render(doc)?);
                    }
                    OpenApiFormat::Json => {
                        out.push_str(&serde_json::to_string(doc)?);
                        out.push('\n');
                    }
                }
            }
            print!("{out}");
        }
    }
    log::info!(
        "{} OpenAPI document(s) from {}",
        docs.len(),
        inventory.display()
    );
    Ok(())
}

fn main() -> std::process::ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"))
        .target(env_logger::Target::Stderr)
        .init();
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            log::error!("{e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
