//! The `jonction` command: `run`, `token`, `check-config`, `dialplan`, `version`.

use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use jonction::config::Config;
use jonction::token::{parse_ttl, Keys, TokenRequest};

/// SIP/H.323 gateway into LiveKit WebRTC rooms.
#[derive(Parser)]
#[command(name = "jonction", version = jonction::VERSION, about)]
struct Cli {
    /// Configuration file (TOML). Without one, safe loopback defaults apply.
    #[arg(long, short, global = true, env = "JONCTION_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway (and the embedded room server unless [livekit] url is set).
    Run,
    /// Mint a participant access token (printed on stdout).
    Token {
        /// Room to join.
        #[arg(long)]
        room: String,
        /// Participant identity (unique in the room).
        #[arg(long)]
        identity: String,
        /// Display name.
        #[arg(long, default_value = "")]
        name: String,
        /// Participant kind: standard, sip, agent, ingress, egress.
        #[arg(long, default_value = "standard")]
        kind: String,
        /// Validity, e.g. 90s, 6h, 1h30m.
        #[arg(long, default_value = "6h", value_parser = parse_ttl)]
        ttl: std::time::Duration,
        /// Do not grant publishing.
        #[arg(long)]
        no_publish: bool,
        /// Do not grant subscribing.
        #[arg(long)]
        no_subscribe: bool,
        /// Do not grant sending data packets.
        #[arg(long)]
        no_publish_data: bool,
        /// Attribute KEY=VALUE (repeatable).
        #[arg(long = "attribute", value_name = "KEY=VALUE")]
        attributes: Vec<String>,
    },
    /// Check the configuration and print the effective values.
    CheckConfig,
    /// Dialplan tools: check files, dry-run a call, run test cases.
    Dialplan {
        #[command(subcommand)]
        command: jonction::dialplan::cli::DialplanCommand,
    },
    /// Print the version.
    Version,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Version = cli.command {
        println!("jonction {}", jonction::VERSION);
        return ExitCode::SUCCESS;
    }
    if let Command::Dialplan { command } = &cli.command {
        // Needs no configuration file; it is read (with the environment) only for the
        // default directory `[dialplan] dir`.
        let mut dir = PathBuf::from(jonction::dialplan::cli::DEFAULT_DIR);
        if command.needs_default_dir() {
            match Config::load(cli.config.as_deref()) {
                Ok(c) => dir = c.dialplan.dir,
                Err(e) => {
                    eprintln!("jonction: configuration error: {e}");
                    return ExitCode::from(2);
                }
            }
        }
        let (out, code) = jonction::dialplan::cli::run(command, &dir);
        // Errors go to stderr; a test report (pass/fail per case) is the command's output.
        let report = matches!(
            command,
            jonction::dialplan::cli::DialplanCommand::Test { .. }
        );
        let _ = if code == 0 || report {
            std::io::stdout().lock().write_all(out.as_bytes())
        } else {
            std::io::stderr().lock().write_all(out.as_bytes())
        };
        return ExitCode::from(u8::try_from(code).unwrap_or(1));
    }
    let cfg = match Config::load(cli.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("jonction: configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    match cli.command {
        Command::Version | Command::Dialplan { .. } => ExitCode::SUCCESS,
        Command::CheckConfig => {
            // A closed stdout (`| head`) is not an error worth a panic.
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "configuration ok\n{cfg:#?}");
            ExitCode::SUCCESS
        }
        Command::Token {
            room,
            identity,
            name,
            kind,
            ttl,
            no_publish,
            no_subscribe,
            no_publish_data,
            attributes,
        } => {
            let mut req = TokenRequest::new(room, identity);
            req.name = name;
            req.kind = kind.to_lowercase();
            req.ttl = ttl;
            req.can_publish = !no_publish;
            req.can_subscribe = !no_subscribe;
            req.can_publish_data = !no_publish_data;
            let mut attrs = HashMap::new();
            for a in attributes {
                let Some((k, v)) = a.split_once('=') else {
                    eprintln!("jonction: --attribute wants KEY=VALUE, got {a:?}");
                    return ExitCode::from(2);
                };
                attrs.insert(k.to_string(), v.to_string());
            }
            req.attributes = attrs;
            let keys = Keys::new(&cfg.livekit.api_key, &cfg.livekit.api_secret);
            match keys.mint(&req) {
                Ok(t) => {
                    println!("{t}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("jonction: {e}");
                    ExitCode::from(2)
                }
            }
        }
        Command::Run => {
            jonction::logging::init(&cfg.log);
            let rt = match tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("jonction: cannot start the runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            match rt.block_on(jonction::gateway::run(cfg)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!("{e:#}");
                    eprintln!("jonction: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
