//! The `tollgate` binary: parse the CLI, load and validate the config, build
//! the services and run.

use clap::Parser;
use pingora::server::configuration::ServerConf;
use pingora::server::Server;
use pingora::services::listening::Service;
use tollgate::cli::{admin_call, run_admin, Cli, Command};
use tollgate::{app, config, sample_origin::SampleOrigin};

/// glibc's malloc contends on its arena locks under proxy load; mimalloc does not.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    tollgate::logging::init();
    let cli = Cli::parse();
    if let Some((admin, method, path, body)) = admin_call(&cli.command) {
        std::process::exit(run_admin(admin, method, &path, body));
    }
    match cli.command {
        Command::Check { config } => match config::check(&config, &config::process_env) {
            Ok(summary) => println!("{summary}"),
            Err(report) => {
                eprintln!("{report}");
                std::process::exit(1);
            }
        },
        Command::Openapi { config } => {
            match tollgate::openapi::generate(&config, &config::process_env) {
                Ok(document) => print!("{document}"),
                Err(e) => {
                    eprintln!("{e}");
                    std::process::exit(1);
                }
            }
        }
        Command::Run { config, upgrade } => {
            let cfg = match config::load(&config) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("{e}");
                    std::process::exit(1);
                }
            };
            // The logger was installed before the config was read.
            tollgate::logging::set_format(cfg.server.log_format);
            match app::build(cfg, upgrade) {
                Ok(server) => server.run_forever(),
                Err(e) => {
                    eprintln!("tollgate: {e}");
                    std::process::exit(1);
                }
            }
        }
        Command::SampleOrigin {
            listen,
            name,
            tls_cert,
            tls_key,
        } => {
            let conf = ServerConf {
                threads: 2,
                grace_period_seconds: Some(0),
                graceful_shutdown_timeout_seconds: Some(1),
                ..ServerConf::default()
            };
            let mut server = Server::new_with_opt_and_conf(None, conf);
            server.bootstrap();
            let mut svc = Service::new(
                "sample origin".to_string(),
                pingora::apps::http_app::HttpServer::new_app(SampleOrigin { name }),
            );
            match (tls_cert, tls_key) {
                (Some(cert), Some(key)) => {
                    if let Err(e) = svc.add_tls(&listen, &cert, &key) {
                        eprintln!("tollgate: cannot serve TLS: {e}");
                        std::process::exit(1);
                    }
                }
                _ => svc.add_tcp(&listen),
            }
            server.add_service(svc);
            server.run_forever();
        }
        Command::Accounts { .. } | Command::Keys { .. } => {}
    }
}
