//! latchctl: parse arguments, run, print; errors are one line and exit 1.

use clap::Parser;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let cli = latchctl::Cli::parse();
    match latchctl::run(cli, &latchctl::Environment::from_process()).await {
        Ok(out) => print!("{out}"),
        Err(e) => {
            eprintln!("latchctl: {e}");
            std::process::exit(1);
        }
    }
}
