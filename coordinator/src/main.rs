//! The `coordinator` binary; everything lives in the library's `cli` module.

fn main() -> std::process::ExitCode {
    coordinator::cli::main()
}
