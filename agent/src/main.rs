//! `cleartap`: thin binary over the agent library. Reads flags, environment and the config
//! file (in that precedence), then runs the agent or a `config` subcommand.

use clap::{CommandFactory as _, FromArgMatches as _};

use agent::{
    config::{Command, Config, ConfigAction},
    config_file::{self, FileConfig},
};

fn load() -> anyhow::Result<Config> {
    let matches = Config::command().get_matches();
    let mut config = Config::from_arg_matches(&matches)?;
    if let Some(path) = config_file::chosen_path(config.config.as_deref()) {
        let file = FileConfig::load(&path)?;
        config_file::merge(&mut config, file, &matches);
        config.config = Some(path);
    }
    config_file::validate(&config)?;
    config.filters().validate()?;
    Ok(config)
}

fn run() -> anyhow::Result<()> {
    let config = load()?;
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
        None => agent::app::run(config),
    }
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
