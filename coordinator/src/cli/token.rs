//! `coordinator token new`: makes a bearer token for the status service and
//! prints the manifest lines that authorize it (by hash only).

use serde_json::json;

use super::{Cli, CmdResult, Failure, OutputFormat};
use crate::api::auth;
use crate::manifest::raw::TokenRole;

/// `token` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum TokenCommand {
    /// Generate a token. It is printed once; only its SHA-256 goes into
    /// deploy.toml.
    New(NewArgs),
}

/// Flags of `token new`.
#[derive(Debug, clap::Args)]
pub struct NewArgs {
    /// Who will use it (shown as the actor of what it does).
    #[arg(long, value_name = "NAME")]
    pub subject: String,
    /// viewer (read), operator (read and change), or service (resolve
    /// tenants' effective configuration only).
    #[arg(long, value_enum)]
    pub role: Role,
}

/// Token roles on the command line.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Role {
    /// Read everything the API shows.
    Viewer,
    /// Read, and trigger operations.
    Operator,
    /// Document workers: resolve tenants' effective configuration only.
    Service,
}

pub fn run(cli: &Cli, command: &TokenCommand) -> CmdResult {
    let TokenCommand::New(args) = command;
    let valid = !args.subject.is_empty()
        && args.subject.len() <= 64
        && args
            .subject
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._@-".contains(c));
    if !valid {
        return Err(Failure::bad_input(
            "--subject must be 1 to 64 characters from A-Z a-z 0-9 . _ @ -",
        ));
    }
    let role = match args.role {
        Role::Viewer => TokenRole::Viewer,
        Role::Operator => TokenRole::Operator,
        Role::Service => TokenRole::Service,
    };
    let role_name = match role {
        TokenRole::Viewer => "viewer",
        TokenRole::Operator => "operator",
        TokenRole::Service => "service",
    };
    let token = auth::generate();
    let hash = auth::hash(&token);
    let lines = format!(
        "[[api.tokens]]\nsubject = \"{}\"\nrole = \"{role_name}\"\nsha256 = \"{hash}\"\n",
        args.subject
    );
    match cli.output {
        OutputFormat::Json => println!("{}", json!({ "token": token, "manifest_lines": lines })),
        OutputFormat::Human => println!(
            "Token (shown once, store it in your secret manager):\n  {token}\n\nAdd to deploy.toml:\n\n{lines}"
        ),
    }
    Ok(())
}
