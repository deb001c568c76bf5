use std::process::ExitCode;

use clap::{error::ErrorKind, Parser};
use user_api::{
    api,
    config::{self, Cli, Command, Config},
    migrate, probe,
    startup::Application,
    telemetry::{self, ErrorChain, Output},
};

#[tokio::main]
async fn main() -> ExitCode {
    if let Err(err) = dotenvy::dotenv() {
        if !err.not_found() {
            return fail(&format!(".env: {err}"));
        }
    }
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err)
            if matches!(
                err.kind(),
                ErrorKind::DisplayHelp | ErrorKind::DisplayVersion
            ) =>
        {
            err.exit()
        }
        Err(err) => return fail(&config::explain(&err)),
    };
    match cli.command {
        Some(Command::Openapi) => {
            print!("{}", api::openapi_yaml());
            ExitCode::SUCCESS
        }
        Some(Command::Healthcheck) => match probe::ready(cli.config.host, cli.config.port) {
            Ok(()) => ExitCode::SUCCESS,
            Err(reason) => fail(&reason),
        },
        Some(Command::Migrate(args)) => {
            let config = cli.config;
            if let Err(err) = telemetry::init(&config.log_filter, config.log_format, Output::Stderr)
            {
                return fail(&err);
            }
            ExitCode::from(migrate::finish(migrate::run(&config, &args).await))
        }
        Some(Command::Serve) | None => serve(cli.config).await,
    }
}

async fn serve(config: Config) -> ExitCode {
    // Held to the end: dropping it writes out the log lines still buffered.
    let _log_guard = match telemetry::init(&config.log_filter, config.log_format, Output::Stdout) {
        Ok(guard) => guard,
        Err(err) => return fail(&err),
    };
    let app = match Application::build(&config).await {
        Ok(app) => app,
        Err(err) => return fail(&ErrorChain(&err).to_string()),
    };
    let port = app.port();
    tracing::info!("listening on {}:{port}", config.host);
    tracing::info!("Swagger UI: http://localhost:{port}/docs");
    match app.run_until(shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => fail(&format!("server error: {err}")),
    }
}

/// SIGINT (Ctrl-C) or SIGTERM.
async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(signal) => signal,
                Err(_) => return std::future::pending().await,
            };
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
    tracing::info!("shutting down: finishing requests in flight");
}

fn fail(reason: &str) -> ExitCode {
    eprintln!("user-api: {reason}");
    ExitCode::FAILURE
}
