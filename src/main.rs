//! The `neonhub` binary: parses the command line and runs it in an actix
//! system; on error prints one line and exits non-zero.

use std::process::ExitCode;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    quiet_on_a_closed_pipe();
    let cli = neonhub::Cli::parse_args();
    let result: anyhow::Result<()> = neonhub::init_logging(&cli.log_level)
        .and_then(|()| actix_rt::System::new().block_on(neonhub::run(cli)))
        .map_err(anyhow::Error::from);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// A reader that has gone (`neonhub runs list | head -1`) ends the command
/// as SIGPIPE ends a Unix tool: quietly, with the status 141 (128 + SIGPIPE).
/// Rust ignores SIGPIPE (which `serve`'s sockets need), so writing to the
/// closed pipe fails and `println!` panics; this hook takes that one panic
/// and leaves every other to the default hook.
fn quiet_on_a_closed_pipe() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let message = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or_default();
        // std's message: "failed printing to stdout: Broken pipe (os error 32)".
        if message.starts_with("failed printing to stdout")
            && message.to_ascii_lowercase().contains("broken pipe")
        {
            std::process::exit(141);
        }
        default(info);
    }));
}
