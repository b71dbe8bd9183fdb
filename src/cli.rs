//! The command line: `run`, `check`, `sample-origin`, and the operator commands
//! (`accounts`, `keys`), which are clients of the admin API and print JSON.

use clap::{Args, Parser, Subcommand};
use serde_json::{json, Value};
use std::path::PathBuf;

/// tollgate: an edge proxy for market-data APIs.
#[derive(Debug, Parser)]
#[command(name = "tollgate", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve with a config file.
    Run {
        #[arg(long, short)]
        config: PathBuf,
        /// Take over the listening sockets of the running tollgate (which
        /// hands them over and drains when it gets SIGQUIT) instead of
        /// opening them: a binary upgrade without a refused connection.
        #[arg(long)]
        upgrade: bool,
    },
    /// Validate a config file; exits non-zero with every error found.
    Check {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Print the profile's OpenAPI 3.1 document (JSON) to stdout.
    Openapi {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Run the bundled sample market-data origin.
    SampleOrigin {
        #[arg(long, default_value = "127.0.0.1:8000")]
        listen: String,
        /// Reported in the `x-origin-server` response header.
        #[arg(long, default_value = "sample")]
        name: String,
        /// Serve TLS with this certificate chain (PEM); needs --tls-key.
        #[arg(long, requires = "tls_key")]
        tls_cert: Option<String>,
        /// The certificate's private key (PEM).
        #[arg(long, requires = "tls_cert")]
        tls_key: Option<String>,
    },
    /// Manage accounts through the admin API.
    Accounts {
        #[command(flatten)]
        admin: AdminArgs,
        #[command(subcommand)]
        command: AccountsCommand,
    },
    /// Manage keys through the admin API.
    Keys {
        #[command(flatten)]
        admin: AdminArgs,
        #[command(subcommand)]
        command: KeysCommand,
    },
}

/// Where the admin API is.
#[derive(Debug, Args)]
pub struct AdminArgs {
    #[arg(
        long,
        env = "TOLLGATE_ADMIN_URL",
        default_value = "http://127.0.0.1:9090",
        global = true
    )]
    pub admin_url: String,
    #[arg(
        long,
        env = "TOLLGATE_ADMIN_TOKEN",
        hide_env_values = true,
        global = true
    )]
    pub admin_token: Option<String>,
}

/// `tollgate accounts ...`
#[derive(Debug, Subcommand)]
pub enum AccountsCommand {
    /// Create an account on a plan.
    Create {
        account: String,
        #[arg(long)]
        plan: String,
        /// Starting credits, for plans with a per-account balance.
        #[arg(long)]
        credits: Option<i64>,
    },
    /// Show an account and its credit balance.
    Show { account: String },
    /// Change an account's credit balance.
    Credits {
        account: String,
        /// Credits to add (negative to remove).
        #[arg(long, allow_hyphen_values = true)]
        add: i64,
    },
}

/// `tollgate keys ...`
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create a key; prints its plaintext once.
    Create {
        #[arg(long)]
        account: String,
        #[arg(long)]
        name: String,
        /// RFC 3339, e.g. 2026-12-31T23:59:59Z
        #[arg(long)]
        expires_at: Option<String>,
    },
    /// List an account's active keys (never their secrets).
    List {
        #[arg(long)]
        account: String,
        /// Also show revoked and expired keys.
        #[arg(long)]
        all: bool,
    },
    /// Revoke a key by id.
    Revoke { key_id: String },
    /// A key's usage: lastUsedAt, last 50 calls, 7-day daily counts.
    Usage { key_id: String },
}

/// Everything but RFC 3986's unreserved characters is escaped in a path segment.
const UNRESERVED: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Runs an admin-API command; returns the process exit code.
pub fn run_admin(
    admin: &AdminArgs,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> i32 {
    let client = match reqwest::blocking::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!("tollgate: cannot build HTTP client: {e}");
            return 2;
        }
    };
    let url = format!("{}{}", admin.admin_url.trim_end_matches('/'), path);
    let mut req = client.request(method, &url);
    if let Some(t) = &admin.admin_token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    match req.send() {
        Err(e) => {
            eprintln!("tollgate: cannot reach the admin API at {url}: {e}");
            2
        }
        Ok(resp) => {
            let status = resp.status();
            let text = resp.text().unwrap_or_default();
            let pretty = serde_json::from_str::<Value>(&text)
                .ok()
                .and_then(|v| serde_json::to_string_pretty(&v).ok())
                .unwrap_or(text);
            if status.is_success() {
                println!("{pretty}");
                0
            } else {
                eprintln!("tollgate: admin API answered {status}");
                println!("{pretty}");
                1
            }
        }
    }
}

/// Maps an operator command to its admin-API call.
pub fn admin_call(cmd: &Command) -> Option<(&AdminArgs, reqwest::Method, String, Option<Value>)> {
    use reqwest::Method;
    let enc = |s: &str| percent_encoding::utf8_percent_encode(s, UNRESERVED).to_string();
    match cmd {
        Command::Accounts { admin, command } => Some(match command {
            AccountsCommand::Create {
                account,
                plan,
                credits,
            } => {
                let mut body = json!({"id": account, "plan": plan});
                if let Some(c) = credits {
                    body["credits"] = json!(c);
                }
                (admin, Method::POST, "/v1/accounts".into(), Some(body))
            }
            AccountsCommand::Credits { account, add } => (
                admin,
                Method::POST,
                format!("/v1/accounts/{}/credits", enc(account)),
                Some(json!({"add": add})),
            ),
            AccountsCommand::Show { account } => (
                admin,
                Method::GET,
                format!("/v1/accounts/{}", enc(account)),
                None,
            ),
        }),
        Command::Keys { admin, command } => Some(match command {
            KeysCommand::Create {
                account,
                name,
                expires_at,
            } => {
                let mut body = json!({"account": account, "name": name});
                if let Some(e) = expires_at {
                    body["expiresAt"] = json!(e);
                }
                (admin, Method::POST, "/v1/keys".into(), Some(body))
            }
            KeysCommand::List { account, all } => (
                admin,
                Method::GET,
                format!(
                    "/v1/keys?account={}{}",
                    enc(account),
                    if *all { "&include=all" } else { "" }
                ),
                None,
            ),
            KeysCommand::Revoke { key_id } => (
                admin,
                Method::DELETE,
                format!("/v1/keys/{}", enc(key_id)),
                None,
            ),
            KeysCommand::Usage { key_id } => (
                admin,
                Method::GET,
                format!("/v1/keys/{}/usage", enc(key_id)),
                None,
            ),
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list_path(args: &[&str]) -> Option<String> {
        let cli = Cli::try_parse_from(args).ok()?;
        admin_call(&cli.command).map(|(_, _, path, _)| path)
    }

    #[test]
    fn keys_list_shows_inactive_keys_only_with_all() {
        assert_eq!(
            list_path(&["tollgate", "keys", "list", "--account", "acme"]).as_deref(),
            Some("/v1/keys?account=acme")
        );
        assert_eq!(
            list_path(&["tollgate", "keys", "list", "--account", "acme", "--all"]).as_deref(),
            Some("/v1/keys?account=acme&include=all")
        );
    }
}
