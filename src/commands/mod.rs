//! The subcommands: each opens what it needs, does its job and prints.

mod audit;
mod demo;
mod query;
mod replay;
mod run;
mod serve;
mod table;

use crate::cli::{AuditCommand, Cli, Command, RunsCommand};
use crate::config::DataDir;
use crate::error::Result;

/// Runs the command `cli` names. Call it inside an actix system (the
/// `neonhub` binary does).
///
/// # Errors
/// Whatever the command fails with; the message is one line for people.
pub async fn run(cli: Cli) -> Result<()> {
    let data = DataDir::new(&cli.data_dir);
    match cli.command {
        Command::Serve(args) => serve::serve(data, cli.store, args).await,
        Command::Demo(args) => demo::demo(data, cli.store, args).await,
        Command::Run(args) => run::run(data, cli.store, args).await,
        Command::Runs(RunsCommand::List(args)) => query::list(data, cli.store, args).await,
        Command::Runs(RunsCommand::Show(args)) => query::show(data, cli.store, args).await,
        Command::Report(args) => query::report(data, cli.store, args).await,
        Command::Replay(args) => replay::replay(data, cli.store, args).await,
        Command::Audit(AuditCommand::Verify) => audit::verify(data, cli.store).await,
    }
}

/// Prints a JSON value, pretty.
fn print_json(value: &serde_json::Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
    );
}
