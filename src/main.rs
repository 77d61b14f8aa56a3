//! The `neonhub` binary: parses the command line and runs it in an actix
//! system; on error prints one line and exits non-zero.

use std::process::ExitCode;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
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
