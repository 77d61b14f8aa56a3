//! The subcommands: each opens what it needs, does its job and prints.

mod audit;
mod control;
mod demo;
mod log;
mod output;
mod query;
mod replay;
mod run;
mod serve;
mod table;

use crate::cli::{AuditCommand, Cli, Command, ConfigCommand, LogCommand, RunsCommand};
use crate::config::{DataDir, connectors_from_env};
use crate::config_file::{ConfigFile, DEFAULT_DATA_DIR};
use crate::error::Result;

/// Runs the command `cli` names. Call it inside an actix system (the
/// `neonhub` binary does).
///
/// # Errors
/// Whatever the command fails with; the message is one line for people.
pub async fn run(cli: Cli) -> Result<()> {
    if let Command::Serve(args) = cli.command {
        // The configuration file's `[store]` and `[connectors.*]` settings,
        // under the flags and variables.
        let file = read_config(args.config.as_deref())?;
        let data = file.store.data_dir_under(cli.data_dir);
        let store = file
            .store
            .store_under(cli.store, cli.eventstore_url.as_ref())
            .map_err(crate::Error::Usage)?;
        let connectors = file.connectors_under(|var| std::env::var(var).ok())?;
        return serve::serve(data, store, connectors, file, args).await;
    }
    let data = DataDir::new(
        cli.data_dir
            .as_deref()
            .unwrap_or(std::path::Path::new(DEFAULT_DATA_DIR)),
    );
    let store = cli.store_config()?;
    match cli.command {
        Command::Serve(_) => unreachable!("served above"),
        Command::Demo(args) => demo::demo(data, store, args).await,
        Command::Run(args) => run::run(data, store, connectors_from_env()?, args).await,
        Command::Runs(RunsCommand::List(args)) => query::list(data, args),
        Command::Runs(RunsCommand::Show(args)) => query::show(data, store, args).await,
        Command::Runs(RunsCommand::Tree(args)) => query::tree(data, args),
        Command::Runs(RunsCommand::Cancel(args)) => control::cancel(args).await,
        Command::Runs(RunsCommand::Resolve(args)) => control::resolve(args).await,
        Command::Report(args) => query::report(data, args),
        Command::Replay(args) => replay::replay(data, store, args).await,
        Command::Audit(AuditCommand::Verify(args)) => audit::verify(data, store, args).await,
        Command::Audit(AuditCommand::Anchor(args)) => audit::anchor(data, store, args).await,
        Command::Log(LogCommand::Repair) => log::repair(&data).await,
        Command::Log(LogCommand::Archive(args)) => log::archive(&data, &store, &args),
        Command::Config(ConfigCommand::Check { file }) => {
            let config = read_config(Some(&file))?;
            println!(
                "{}: ok ({} agents over HTTP, settings for {} agents and {} connectors)",
                file.display(),
                config.http_agents().count(),
                config.agents.len(),
                config.connectors_set()
            );
            Ok(())
        }
        Command::Config(ConfigCommand::Show { config }) => {
            print!("{}", read_config(config.as_deref())?);
            Ok(())
        }
    }
}

/// The configuration file at `path`, or every default without one.
fn read_config(path: Option<&std::path::Path>) -> Result<ConfigFile> {
    match path {
        Some(path) => ConfigFile::read(path).map_err(|e| crate::Error::Usage(e.to_string())),
        None => Ok(ConfigFile::none()),
    }
}

/// Prints a JSON value, pretty.
fn print_json(value: &serde_json::Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
    );
}
