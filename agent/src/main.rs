//! `cleartap`: thin binary over the agent library. Reads flags, environment and the config
//! file (in that precedence), then runs the agent or a `config` subcommand.

use agent::{
    config::{Command, ConfigAction},
    config_file::{self, Loader},
};

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
        None => agent::app::run(config, loader),
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
